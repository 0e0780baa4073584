import { describe, expect, it } from 'vitest';
import { createFleet, createFleetVehicleModel } from '../../../simulator/fleet.js';
import { isValidVin } from '../../../simulator/vin.js';
import { VehicleProfileSchema } from '../../../proto/domain.js';
import { START, DAY } from './support.js';

describe('createFleet', () => {
  const fleet = createFleet({ vehicles: 50, seed: 11, start: START });

  it('gives every vehicle a unique, valid VIN and a valid profile', () => {
    const vins = fleet.vehicles.map((v) => v.vin);
    expect(new Set(vins).size).toBe(50);
    for (const v of fleet.vehicles) {
      expect(isValidVin(v.vin), v.vin).toBe(true);
      expect(VehicleProfileSchema.safeParse(v.profile).success).toBe(true);
      expect(Date.parse(v.profile.deliveryDate)).toBeLessThanOrEqual(START);
    }
  });

  it('has every powertrain, vehicle type, locale and lifecycle stage in a fleet of 50', () => {
    const combos = new Set(fleet.vehicles.map((v) => `${v.profile.powertrain}/${v.profile.vehicleType}`));
    for (const pt of ['BEV', 'PHEV', 'ICE'])
      for (const t of ['passenger', 'commercial']) expect(combos, `${pt}/${t}`).toContain(`${pt}/${t}`);
    expect(new Set(fleet.vehicles.map((v) => v.profile.locale))).toEqual(new Set(['zh-CN', 'en']));
    const ages = fleet.vehicles.map((v) => (START - v.deliveryTs) / DAY);
    expect(ages.some((a) => a <= 30)).toBe(true); // new owner
    expect(ages.some((a) => a > 3 * 365)).toBe(true); // upgrade window
    expect(Math.max(...ages)).toBeLessThanOrEqual(4 * 366);
    expect(new Set(fleet.vehicles.map((v) => v.profile.dealerId)).size).toBeGreaterThan(2);
    const archetypes = new Set(fleet.vehicles.map((v) => v.persona.archetype));
    for (const a of ['commuter', 'low_runner', 'dormant_prone', 'drifting', 'lost', 'fleet_van', 'neglectful'])
      expect(archetypes).toContain(a);
  });

  it('is a pure function of its seed', () => {
    expect(createFleet({ vehicles: 50, seed: 11, start: START })).toEqual(fleet);
    expect(createFleet({ vehicles: 50, seed: 12, start: START }).vehicles.map((v) => v.vin)).not.toEqual(fleet.vehicles.map((v) => v.vin));
  });

  it('gives older vehicles a plausible odometer and service history', () => {
    const old = fleet.vehicles.filter((v) => START - v.deliveryTs > 2 * 365 * DAY && v.persona.serviceDiscipline === 'on_time');
    expect(old.length).toBeGreaterThan(0);
    for (const v of old) {
      const m = createFleetVehicleModel(fleet, v);
      const r = m.step(0);
      expect(r.signals['Vehicle.TraveledDistance']).toBeGreaterThan(5_000);
      expect(m.initialService).toBeDefined();
      expect(Date.parse(m.initialService!.date)).toBeGreaterThan(v.deliveryTs);
      expect(m.initialService!.odometer).toBeLessThanOrEqual(r.signals['Vehicle.TraveledDistance'] as number);
    }
  });

  it('rejects a bad fleet size', () => {
    expect(() => createFleet({ vehicles: 0, seed: 1, start: START })).toThrow(/vehicles/);
    expect(() => createFleet({ vehicles: 1.5, seed: 1, start: START })).toThrow(/vehicles/);
  });
});
