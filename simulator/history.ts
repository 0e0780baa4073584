// The past of a vehicle delivered before the simulation starts: plausible odometer, battery
// health and service history, so a fleet begins with every lifecycle stage present.
import type { Powertrain } from '../proto/domain.js';
import { averageKmPerDay, type Persona } from './persona.js';
import { addMonths, serviceInterval, serviceItems } from './catalogue.js';
import { between, type Rng } from './rng.js';
import { DAY } from './planner.js';

export interface ServiceVisit {
  /** ISO 8601 time of the visit (contract: service-records `date`). */
  date: string;
  odometer: number;
  items: string[];
}

export interface History {
  odometer: number;
  avgKmPerDay: number;
  lastServiceTs: number;
  lastServiceOdo: number;
  serviceCount: number;
  lastVisit?: ServiceVisit;
}

export const round1 = (x: number): number => Math.round(x * 10) / 10;

/** When the cycle that started at (ts, odo) falls due, assuming avg km a day. */
export function dueTime(powertrain: Powertrain, first: boolean, startTs: number, avgKm: number): number {
  const iv = serviceInterval(powertrain, first);
  return Math.min(addMonths(startTs, iv.months), startTs + (iv.km / Math.max(avgKm, 1)) * DAY);
}

export function buildHistory(rng: Rng, persona: Persona, powertrain: Powertrain, deliveryTs: number, startTs: number): History {
  const avg = averageKmPerDay(persona) * between(rng, 0.8, 1.2);
  const odoAt = (ts: number) => (Math.max(0, ts - deliveryTs) / DAY) * avg;
  const h: History = {
    odometer: round1(odoAt(startTs) + between(rng, 0, 30)),
    avgKmPerDay: avg,
    lastServiceTs: deliveryTs,
    lastServiceOdo: 0,
    serviceCount: 0,
  };
  if (persona.serviceDiscipline === 'skips') return h;
  for (let i = 0; i < 40; i++) {
    const due = dueTime(powertrain, h.serviceCount === 0, h.lastServiceTs, avg);
    const visit = persona.serviceDiscipline === 'on_time' ? due - between(rng, 0, 12) * DAY : due + between(rng, 30, 120) * DAY;
    if (visit > startTs - DAY) break;
    const odo = round1(odoAt(visit));
    h.lastVisit = { date: new Date(visit).toISOString(), odometer: odo, items: serviceItems(powertrain, h.serviceCount === 0) };
    h.lastServiceTs = visit;
    h.lastServiceOdo = odo;
    h.serviceCount++;
  }
  return h;
}
