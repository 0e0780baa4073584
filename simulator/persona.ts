// Owner personas: the habits that make each simulated vehicle live a different, plausible life
// (when it drives, how it charges, whether it is serviced, whether it goes quiet).
import type { Powertrain } from '../proto/domain.js';
import { between, intBetween, pickWeighted, rngFor, type Rng } from './rng.js';

export type VehicleType = 'passenger' | 'commercial';

/**
 * nightly: AC at home when below ~70 %, to 80-90 %. full_and_leave: AC to 100 % and left plugged.
 * low_runner: plugs in only below 8-20 %, lets trips run to ~5 %. weekly: AC when below 40 %.
 * dc_heavy: no home charger, DC fast charges. depot: commercial overnight AC to 100 %.
 * never_plugs: a PHEV driven on fuel only.
 */
export const CHARGE_HABITS = ['nightly', 'full_and_leave', 'low_runner', 'weekly', 'dc_heavy', 'depot', 'never_plugs'] as const;
export type ChargeHabit = (typeof CHARGE_HABITS)[number];

/** on_time: within a couple of weeks of the due point; late: 1-4 months after; skips: never. */
export type ServiceDiscipline = 'on_time' | 'late' | 'skips';

export const ARCHETYPES = [
  'commuter',
  'weekend_driver',
  'high_mileage',
  'low_runner',
  'battery_abuser',
  'neglectful',
  'dormant_prone',
  'drifting',
  'lost',
  'fleet_van',
] as const;
export type Archetype = (typeof ARCHETYPES)[number];

export interface Persona {
  archetype: Archetype;
  /** Minutes east of UTC for the owner's local day (commute times, weekends). */
  tzOffsetMin: number;
  /** Drives to work on weekdays. */
  commutes: boolean;
  /** One-way commute distance, km. */
  commuteKm: number;
  /** Local hour (decimal) of the morning departure and of the evening return. */
  departHour: number;
  returnHour: number;
  /** Chance per weekend day of a long trip, and its one-way distance range. */
  weekendTripChance: number;
  weekendTripKm: [number, number];
  /** Commercial vans: distance per working day, and working days per week (5 or 6). */
  dailyKm: number;
  workdaysPerWeek: number;
  chargeHabit: ChargeHabit;
  /** BEV: state of charge at which a trip stops for a DC fast charge. */
  tripDcAtSoc: number;
  /** ICE/PHEV: fuel level (%) at which the owner refuels after a trip. */
  refuelAtFuel: number;
  /** Traction battery health lost per year, % (typical 1.5-2.5, fast ageing 5-9). */
  sohLossPerYear: number;
  /** 12 V resting-voltage loss per parked day (a healthy battery ~0.08 V/day). */
  v12SagPerDay: number;
  serviceDiscipline: ServiceDiscipline;
  /** Multiplies the fault-code catalogue's daily chances. */
  dtcProneness: number;
  /** Chance per day of starting a dormant spell (parked 14-40 days). */
  dormancyChancePerDay: number;
  /** Already parked this many days when the simulation starts (0 = just driven). */
  initialParkedDays: number;
  /** Drives less and less: the chance of driving on a day falls to 10 % over this many days. */
  fadeOverDays?: number;
  /** Stops reporting this many days after the simulation starts (telematics unit gone). */
  lostAfterDays?: number;
  /** Home position (used only when position reporting is enabled). */
  home: { lat: number; lon: number };
}

const HOMES_ZH = [
  { lat: 31.23, lon: 121.47 },
  { lat: 39.9, lon: 116.4 },
  { lat: 22.54, lon: 114.06 },
  { lat: 30.27, lon: 120.15 },
];
const HOMES_EN = [
  { lat: 51.51, lon: -0.13 },
  { lat: 53.48, lon: -2.24 },
  { lat: 40.71, lon: -74.0 },
  { lat: 37.77, lon: -122.42 },
];

function archetypeFor(rng: Rng, powertrain: Powertrain, vehicleType: VehicleType): Archetype {
  if (vehicleType === 'commercial') return 'fleet_van';
  const ev = powertrain !== 'ICE';
  return pickWeighted<Archetype>(rng, [
    ['commuter', 36],
    ['weekend_driver', 12],
    ['high_mileage', 8],
    ['low_runner', ev ? 10 : 0],
    ['battery_abuser', ev ? 8 : 0],
    ['neglectful', 12],
    ['dormant_prone', 8],
    ['drifting', 5],
    ['lost', 3],
  ]);
}

function habitFor(rng: Rng, archetype: Archetype, powertrain: Powertrain): ChargeHabit {
  if (powertrain === 'ICE') return 'never_plugs';
  if (archetype === 'fleet_van') return 'depot';
  if (archetype === 'low_runner') return 'low_runner';
  if (powertrain === 'PHEV')
    return pickWeighted<ChargeHabit>(rng, [
      ['nightly', 5],
      ['weekly', 2],
      ['never_plugs', 2],
    ]);
  if (archetype === 'battery_abuser')
    return pickWeighted<ChargeHabit>(rng, [
      ['full_and_leave', 1],
      ['dc_heavy', 1],
    ]);
  return pickWeighted<ChargeHabit>(rng, [
    ['nightly', 6],
    ['weekly', 3],
    ['full_and_leave', 1],
    ['dc_heavy', 1],
  ]);
}

/** Draw a persona for a vehicle; the same rng state always gives the same persona. */
export function drawPersona(
  rng: Rng,
  powertrain: Powertrain,
  vehicleType: VehicleType,
  locale: 'zh-CN' | 'en' = 'zh-CN',
  forced?: Archetype,
): Persona {
  const archetype = forced ?? archetypeFor(rng, powertrain, vehicleType);
  const zh = locale === 'zh-CN';
  const homes = zh ? HOMES_ZH : HOMES_EN;
  const homeIdx = Math.floor(rng() * homes.length);
  const home = { lat: homes[homeIdx].lat + between(rng, -0.2, 0.2), lon: homes[homeIdx].lon + between(rng, -0.2, 0.2) };
  const tzOffsetMin = zh ? 480 : homeIdx >= 2 ? (homeIdx === 2 ? -300 : -480) : 0;
  const fastAgeing = archetype === 'battery_abuser' || rng() < 0.08;
  const p: Persona = {
    archetype,
    tzOffsetMin,
    commutes: archetype !== 'weekend_driver' && rng() < 0.85,
    commuteKm: between(rng, 6, 35),
    departHour: between(rng, 6.8, 8.8),
    returnHour: between(rng, 17, 19.2),
    weekendTripChance: between(rng, 0.15, 0.45),
    weekendTripKm: [40, between(rng, 120, 280)],
    dailyKm: 0,
    workdaysPerWeek: 5,
    chargeHabit: habitFor(rng, archetype, powertrain),
    tripDcAtSoc: between(rng, 15, 22),
    refuelAtFuel: between(rng, 12, 25),
    sohLossPerYear: fastAgeing ? between(rng, 5, 9) : between(rng, 1.2, 2.5),
    v12SagPerDay: rng() < 0.15 ? between(rng, 0.1, 0.13) : between(rng, 0.075, 0.09),
    serviceDiscipline: pickWeighted<ServiceDiscipline>(rng, [
      ['on_time', 6],
      ['late', 3],
      ['skips', 1],
    ]),
    dtcProneness: rng() < 0.15 ? between(rng, 2, 4) : between(rng, 0.5, 1.2),
    dormancyChancePerDay: 0.002,
    initialParkedDays: 0,
    home,
  };
  switch (archetype) {
    case 'weekend_driver':
      p.weekendTripChance = between(rng, 0.4, 0.7);
      break;
    case 'high_mileage':
      p.commuteKm = between(rng, 40, 80);
      p.weekendTripChance = between(rng, 0.5, 0.8);
      break;
    case 'low_runner':
      p.tripDcAtSoc = between(rng, 4.5, 6.5);
      break;
    case 'neglectful':
      p.serviceDiscipline = 'skips';
      p.v12SagPerDay = between(rng, 0.09, 0.12);
      p.dtcProneness = between(rng, 1.5, 3);
      break;
    case 'dormant_prone':
      p.dormancyChancePerDay = between(rng, 0.015, 0.03);
      p.initialParkedDays = intBetween(rng, 8, 30);
      break;
    case 'drifting':
      p.fadeOverDays = between(rng, 30, 60);
      break;
    case 'lost':
      p.lostAfterDays = between(rng, 1, 12);
      break;
    case 'fleet_van':
      p.commutes = false;
      p.dailyKm = between(rng, 150, 380);
      p.workdaysPerWeek = rng() < 0.6 ? 6 : 5;
      p.departHour = between(rng, 7, 8.5);
      p.weekendTripChance = 0;
      p.tripDcAtSoc = between(rng, 12, 18);
      p.serviceDiscipline = rng() < 0.8 ? 'on_time' : 'late';
      break;
    default:
      break;
  }
  if (p.chargeHabit === 'dc_heavy') p.tripDcAtSoc = between(rng, 20, 28);
  return p;
}

/** The persona a vehicle gets when none is given: a pure function of its seed. */
export function defaultPersona(seed: number, powertrain: Powertrain, vehicleType: VehicleType = 'passenger'): Persona {
  return drawPersona(rngFor(seed, 0x5e25), powertrain, vehicleType);
}

/** Rough average distance per day, used to give already-delivered vehicles a plausible odometer. */
export function averageKmPerDay(p: Persona): number {
  if (p.archetype === 'fleet_van') return (p.dailyKm * p.workdaysPerWeek) / 7;
  const commute = p.commutes ? (2 * p.commuteKm * 5) / 7 : 4;
  const weekend = (2 * p.weekendTripChance * (p.weekendTripKm[0] + p.weekendTripKm[1])) / 7;
  return commute + weekend + 3;
}
