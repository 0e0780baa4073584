// One local day of a vehicle's life, planned at local midnight from a per-day random stream
// (so the plan never depends on how finely the caller samples).
import { between, intBetween, type Rng } from './rng.js';
import type { Persona } from './persona.js';

export const HOUR = 3_600_000;
export const DAY = 86_400_000;

export interface Trip {
  start: number;
  km: number;
  /** Average speed, km/h. */
  speed: number;
  /** Ends at home (where the owner charges). */
  home: boolean;
  /** Ends at the dealer: a service visit is recorded on arrival. */
  service?: boolean;
}

export interface DayContext {
  dayStart: number;
  /** 0 = Sunday ... 6 = Saturday, in the owner's local time. */
  weekday: number;
  serviceToday: boolean;
}

function errandPair(rng: Rng, at: number): Trip[] {
  const km = between(rng, 3, 12);
  const speed = between(rng, 22, 40);
  const back = at + (km / speed) * HOUR + between(rng, 0.5, 2) * HOUR;
  return [
    { start: at, km, speed, home: false },
    { start: back, km: km * between(rng, 0.9, 1.1), speed, home: true },
  ];
}

function vanDay(rng: Rng, p: Persona, ctx: DayContext): Trip[] {
  const legs = intBetween(rng, 3, 5);
  const dayKm = p.dailyKm * between(rng, 0.75, 1.25);
  const trips: Trip[] = [];
  let at = ctx.dayStart + (p.departHour + between(rng, -0.3, 0.3)) * HOUR;
  for (let i = 0; i < legs; i++) {
    const km = (dayKm / legs) * between(rng, 0.7, 1.3);
    const speed = between(rng, 35, 70);
    trips.push({ start: at, km, speed, home: i === legs - 1 });
    at += (km / speed) * HOUR + between(rng, 0.3, 1) * HOUR;
  }
  return trips;
}

/** The trips of one day; empty for a day parked. */
export function planTrips(rng: Rng, p: Persona, ctx: DayContext): Trip[] {
  const { dayStart, weekday } = ctx;
  const workday = weekday >= 1 && weekday <= 5;
  if (ctx.serviceToday) {
    const out = dayStart + between(rng, 9, 10.5) * HOUR;
    const km = between(rng, 6, 18);
    return [
      { start: out, km, speed: 30, home: false, service: true },
      { start: out + between(rng, 1.5, 3) * HOUR, km, speed: 30, home: true },
    ];
  }
  if (p.archetype === 'fleet_van') {
    const works = workday || (weekday === 6 && p.workdaysPerWeek >= 6);
    return works && rng() > 0.04 ? vanDay(rng, p, ctx) : [];
  }
  if (workday) {
    if (p.commutes && rng() < 0.92) {
      const speed = between(rng, 25, 45);
      const km = p.commuteKm * between(rng, 0.95, 1.1);
      const trips: Trip[] = [
        { start: dayStart + (p.departHour + between(rng, -0.3, 0.3)) * HOUR, km, speed, home: false },
        { start: dayStart + (p.returnHour + between(rng, -0.5, 0.5)) * HOUR, km, speed, home: true },
      ];
      if (rng() < 0.2) trips.push(...errandPair(rng, dayStart + between(rng, 19.8, 20.5) * HOUR));
      return trips;
    }
    return rng() < 0.35 ? errandPair(rng, dayStart + between(rng, 10, 15) * HOUR) : [];
  }
  if (rng() < p.weekendTripChance) {
    const km = between(rng, p.weekendTripKm[0], p.weekendTripKm[1]);
    const speed = between(rng, 70, 100);
    const out = dayStart + between(rng, 8.5, 11) * HOUR;
    const back = out + (km / speed) * HOUR + between(rng, 2, 5) * HOUR;
    return [
      { start: out, km, speed, home: false },
      { start: back, km: km * between(rng, 0.97, 1.05), speed, home: true },
    ];
  }
  return rng() < 0.6 ? errandPair(rng, dayStart + between(rng, 10, 14) * HOUR) : [];
}
