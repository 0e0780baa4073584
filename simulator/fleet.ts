// A simulated fleet: profiles (VIN, model, powertrain, delivery, dealer, locale, type) and
// owner personas, drawn from one seed. The first vehicles are fixed archetypes so that even a
// small fleet shows every powertrain, vehicle type, lifecycle stage and owner behaviour.
import type { Locale, Powertrain, VehicleProfile } from '../proto/domain.js';
import { createVehicleModel, type VehicleModel } from './vehicle-model.js';
import { drawPersona, type Archetype, type Persona, type VehicleType } from './persona.js';
import { DAY } from './planner.js';
import { hashSeed, pickWeighted, rngFor, between } from './rng.js';
import { makeVin } from './vin.js';

export interface FleetVehicle {
  index: number;
  vin: string;
  /** Seed of this vehicle's own random streams. */
  seed: number;
  profile: VehicleProfile;
  persona: Persona;
  deliveryTs: number;
}

export interface Fleet {
  seed: number;
  start: number;
  vehicles: FleetVehicle[];
}

export const MAX_FLEET = 1_000_000;

const MODELS: Record<VehicleType, Record<Powertrain, { name: string; vds: string }>> = {
  passenger: {
    BEV: { name: 'Aurora EV', vds: 'AE2B5' },
    PHEV: { name: 'Meridian PHEV', vds: 'MP3C4' },
    ICE: { name: 'Sierra 1.5T', vds: 'SG1A4' },
  },
  commercial: {
    BEV: { name: 'Cargo eVan', vds: 'CE7V5' },
    PHEV: { name: 'Cargo PHEV Van', vds: 'CP7V4' },
    ICE: { name: 'Cargo 2.0 Van', vds: 'CD7V2' },
  },
};

const DEALERS: Record<Locale, string[]> = {
  'zh-CN': ['DLR-SH-001', 'DLR-BJ-002', 'DLR-SZ-003', 'DLR-HZ-004'],
  en: ['DLR-LDN-101', 'DLR-MAN-102', 'DLR-NYC-103'],
};

/** Delivery-age buckets in days: new owner, break-in, active, upgrade window. */
const AGE_BUCKETS: readonly (readonly [[number, number], number])[] = [
  [[1, 30], 8],
  [[30, 180], 15],
  [[180, 1095], 55],
  [[1095, 1460], 22],
];

/** Fixed first vehicles: [powertrain, type, archetype, age bucket]. */
const FIXED: readonly [Powertrain, VehicleType, Archetype, number][] = [
  ['BEV', 'passenger', 'commuter', 0],
  ['PHEV', 'passenger', 'commuter', 1],
  ['ICE', 'passenger', 'neglectful', 2],
  ['BEV', 'commercial', 'fleet_van', 3],
  ['ICE', 'commercial', 'fleet_van', 2],
  ['PHEV', 'commercial', 'fleet_van', 1],
  ['BEV', 'passenger', 'low_runner', 2],
  ['BEV', 'passenger', 'battery_abuser', 3],
  ['ICE', 'passenger', 'dormant_prone', 2],
  ['BEV', 'passenger', 'lost', 2],
  ['PHEV', 'passenger', 'weekend_driver', 3],
  ['BEV', 'passenger', 'high_mileage', 2],
  ['ICE', 'passenger', 'drifting', 2],
];

function timeZoneFor(locale: Locale, tzOffsetMin: number): string {
  if (locale === 'zh-CN') return 'Asia/Shanghai';
  if (tzOffsetMin === -300) return 'America/New_York';
  if (tzOffsetMin === -480) return 'America/Los_Angeles';
  return 'Europe/London';
}

export function createFleet(opts: { vehicles: number; seed: number; start: number }): Fleet {
  const { vehicles, seed, start } = opts;
  if (!Number.isInteger(vehicles) || vehicles < 1 || vehicles > MAX_FLEET)
    throw new RangeError(`vehicles must be an integer from 1 to ${MAX_FLEET}, got ${vehicles}`);
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be a number, got ${seed}`);
  if (!Number.isFinite(start)) throw new RangeError('start must be a finite epoch-millisecond time');
  const serialBase = hashSeed(seed, 0x5e71a1) % 400_000;
  const list: FleetVehicle[] = [];
  for (let i = 0; i < vehicles; i++) {
    const r = rngFor(seed, 0xf1ee7, i);
    const fixed = FIXED[i];
    const vehicleType: VehicleType = fixed ? fixed[1] : r() < 0.12 ? 'commercial' : 'passenger';
    const powertrain: Powertrain = fixed
      ? fixed[0]
      : pickWeighted<Powertrain>(r, [
          ['BEV', 45],
          ['PHEV', 25],
          ['ICE', 30],
        ]);
    const locale: Locale = r() < 0.7 ? 'zh-CN' : 'en';
    const bucket = fixed ? AGE_BUCKETS[fixed[3]][0] : pickWeighted(r, AGE_BUCKETS);
    const deliveryTs = start - Math.floor(between(r, bucket[0], bucket[1])) * DAY - Math.floor(r() * DAY);
    const persona = drawPersona(r, powertrain, vehicleType, locale, fixed?.[2]);
    const model = MODELS[vehicleType][powertrain];
    const deliveryYear = new Date(deliveryTs).getUTCFullYear();
    const vin = makeVin(
      vehicleType === 'commercial' ? 'LPC' : 'LPV',
      model.vds,
      deliveryYear,
      locale === 'zh-CN' ? 'S' : 'W',
      serialBase + i,
    );
    const dealers = DEALERS[locale];
    const profile: VehicleProfile = {
      model: model.name,
      powertrain,
      deliveryDate: new Date(deliveryTs).toISOString().slice(0, 10),
      dealerId: dealers[Math.floor(r() * dealers.length)],
      locale,
      vehicleType,
      timeZone: timeZoneFor(locale, persona.tzOffsetMin),
    };
    list.push({ index: i, vin, seed: hashSeed(seed, 0xca7, i), profile, persona, deliveryTs });
  }
  return { seed, start, vehicles: list };
}

/** The behaviour model of one fleet vehicle, starting at the fleet's start time. */
export function createFleetVehicleModel(
  fleet: Fleet,
  v: FleetVehicle,
  opts: { location?: boolean; transitions?: boolean } = {},
): VehicleModel {
  return createVehicleModel({
    vin: v.vin,
    seed: v.seed,
    powertrain: v.profile.powertrain,
    vehicleType: v.profile.vehicleType,
    startTs: fleet.start,
    persona: v.persona,
    deliveryTs: v.deliveryTs,
    location: opts.location,
    transitions: opts.transitions,
  });
}
