// Owner decisions as pure functions of the persona and the car's state: whether to plug in on
// arriving home, and whether today is the day to visit the dealer.
import type { Powertrain } from '../proto/domain.js';
import { addMonths, serviceInterval } from './catalogue.js';
import type { ChargeHabit, ServiceDiscipline } from './persona.js';
import { DAY } from './planner.js';
import { between, type Rng } from './rng.js';

/** Target charge for a home AC session on arrival, or null when the owner does not plug in. */
export function homeChargeTarget(habit: ChargeHabit, soc: number, r: Rng): number | null {
  switch (habit) {
    case 'nightly':
      return soc < 70 ? between(r, 80, 90) : null;
    case 'full_and_leave':
      return soc < 96 ? 100 : null;
    case 'weekly':
      return soc < 40 ? 90 : null;
    case 'depot':
      return 100;
    case 'low_runner':
      return soc < between(r, 8, 20) ? 90 : null;
    default:
      return null; // dc_heavy has no home charger; never_plugs never plugs in
  }
}

export interface ServiceState {
  powertrain: Powertrain;
  discipline: ServiceDiscipline;
  odometer: number;
  lastServiceOdo: number;
  lastServiceTs: number;
  serviceCount: number;
  avgKmPerDay: number;
}

/** The next due point (docs/domain.md#maintenance-schedules): whichever of distance or months comes first. */
export function serviceDue(s: ServiceState): { km: number; ts: number } {
  const iv = serviceInterval(s.powertrain, s.serviceCount === 0);
  return { km: s.lastServiceOdo + iv.km, ts: addMonths(s.lastServiceTs, iv.months) };
}

/**
 * on_time owners book within the upcoming window (800 km / 20 days before due); late ones 1-4
 * months after; skippers never. `lateRng` is per service cycle so the delay stays fixed.
 */
export function wantsService(s: ServiceState, dayStart: number, r: Rng, lateRng: Rng): boolean {
  const due = serviceDue(s);
  if (s.discipline === 'on_time') return (s.odometer >= due.km - 800 || dayStart >= due.ts - 20 * DAY) && r() < 0.35;
  if (s.discipline === 'late') {
    const lateDays = between(lateRng, 30, 120);
    return (dayStart >= due.ts + lateDays * DAY || s.odometer >= due.km + lateDays * s.avgKmPerDay) && r() < 0.3;
  }
  return false;
}
