// Static vehicle facts the simulator draws on: energy specs per powertrain/type, the fault
// codes a car may raise (with how often and how long), and the maintenance schedule.
import type { Powertrain } from '../proto/domain.js';
import type { VehicleType } from './persona.js';

export interface VehicleSpec {
  /** Usable traction battery when new, kWh (0 for ICE). */
  batteryKwh: number;
  kwhPerKm: number;
  /** Fuel tank, litres (0 for BEV), and consumption in litres per 100 km. */
  tankL: number;
  lPer100: number;
  /** Home/depot AC and public DC charging power, kW. */
  acKw: number;
  dcKw: number;
  /** PHEV: charge level below which the engine takes over (charge-sustaining). */
  socFloor: number;
}

export function specFor(powertrain: Powertrain, vehicleType: VehicleType): VehicleSpec {
  const van = vehicleType === 'commercial';
  switch (powertrain) {
    case 'BEV':
      return van
        ? { batteryKwh: 75, kwhPerKm: 0.26, tankL: 0, lPer100: 0, acKw: 22, dcKw: 80, socFloor: 0 }
        : { batteryKwh: 68, kwhPerKm: 0.16, tankL: 0, lPer100: 0, acKw: 7, dcKw: 100, socFloor: 0 };
    case 'PHEV':
      return {
        batteryKwh: van ? 25 : 18,
        kwhPerKm: van ? 0.28 : 0.2,
        tankL: van ? 60 : 45,
        lPer100: van ? 8.5 : 5.8,
        acKw: 6.6,
        dcKw: 0,
        socFloor: 15,
      };
    case 'ICE':
      return { batteryKwh: 0, kwhPerKm: 0, tankL: van ? 75 : 50, lPer100: van ? 10.5 : 7.2, acKw: 0, dcKw: 0, socFloor: 0 };
  }
}

export interface DtcDef {
  code: string;
  powertrains: readonly Powertrain[];
  /** Chance per day for an average owner (persona.dtcProneness multiplies it). */
  perDay: number;
  /** Intermittent faults clear by themselves after this many days; undefined = until repaired. */
  clearDays?: [number, number];
}

const ALL: readonly Powertrain[] = ['BEV', 'PHEV', 'ICE'];
const EV: readonly Powertrain[] = ['BEV', 'PHEV'];
const COMBUSTION: readonly Powertrain[] = ['PHEV', 'ICE'];

/** Realistic faults (SAE J2012): the traction-battery ones persist until a workshop fixes them. */
export const DTC_DEFS: readonly DtcDef[] = [
  { code: 'P0A80', powertrains: EV, perDay: 1 / 1100 },
  { code: 'P0AA6', powertrains: EV, perDay: 1 / 2500 },
  { code: 'P0D27', powertrains: EV, perDay: 1 / 1200, clearDays: [0.2, 2] },
  { code: 'P0300', powertrains: COMBUSTION, perDay: 1 / 500, clearDays: [0.5, 4] },
  { code: 'P0420', powertrains: COMBUSTION, perDay: 1 / 900 },
  { code: 'P0171', powertrains: COMBUSTION, perDay: 1 / 800, clearDays: [1, 10] },
  { code: 'P0455', powertrains: COMBUSTION, perDay: 1 / 1500, clearDays: [2, 15] },
  { code: 'C0035', powertrains: ALL, perDay: 1 / 900, clearDays: [0.2, 3] },
  { code: 'B1000', powertrains: ALL, perDay: 1 / 1000, clearDays: [0.1, 2] },
  { code: 'U0100', powertrains: ALL, perDay: 1 / 1000, clearDays: [0.05, 1] },
  { code: 'U0121', powertrains: ALL, perDay: 1 / 2000, clearDays: [0.1, 1] },
];

/** Raised at cranking when the 12 V battery is weak; clears once it has been recharged. */
export const LOW_SYSTEM_VOLTAGE_DTC = 'P0562';

/** docs/domain.md#maintenance-schedules defaults: first service 5,000 km / 6 months, then per powertrain. */
export function serviceInterval(powertrain: Powertrain, first: boolean): { km: number; months: number } {
  if (first) return { km: 5_000, months: 6 };
  return powertrain === 'BEV' ? { km: 20_000, months: 24 } : { km: 10_000, months: 12 };
}

export function addMonths(ts: number, months: number): number {
  const d = new Date(ts);
  d.setUTCMonth(d.getUTCMonth() + months);
  return d.getTime();
}

export function serviceItems(powertrain: Powertrain, first: boolean): string[] {
  const items = ['inspection'];
  if (powertrain !== 'BEV') items.push('engine_oil', 'oil_filter');
  if (!first) items.push('cabin_filter', 'brake_fluid_check');
  if (powertrain !== 'ICE') items.push('traction_battery_check');
  return items;
}
