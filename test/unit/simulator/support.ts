// Helpers for the simulator tests: run one vehicle over a span and collect its readings.
import { createVehicleModel, type StepResult, type VehicleModelOptions } from '../../../simulator/vehicle-model.js';
import { drawPersona, type Archetype, type Persona } from '../../../simulator/persona.js';
import { rngFor } from '../../../simulator/rng.js';
import type { Powertrain } from '../../../proto/domain.js';

export const START = Date.UTC(2026, 0, 5); // a Monday
export const DAY = 86_400_000;
export const MIN = 60_000;

export function persona(archetype: Archetype, powertrain: Powertrain, over: Partial<Persona> = {}, seed = 1): Persona {
  const vehicleType = archetype === 'fleet_van' ? 'commercial' : 'passenger';
  return { ...drawPersona(rngFor(seed, 99), powertrain, vehicleType, 'zh-CN', archetype), ...over };
}

export function run(opts: Partial<VehicleModelOptions> & { powertrain: Powertrain }, days: number, everyMs = 15 * MIN): StepResult[] {
  const m = createVehicleModel({ vin: 'LPVAE2B5XT0000001', seed: 7, startTs: START, ...opts });
  const out: StepResult[] = [];
  const steps = Math.floor((days * DAY) / everyMs);
  for (let i = 0; i < steps; i++) out.push(m.step(everyMs));
  return out;
}
