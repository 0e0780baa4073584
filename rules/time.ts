// Calendar helpers for time-based rules. Everything is UTC: rules run on event time, and a
// calendar month is counted on the UTC calendar so results do not depend on the host's zone.

export const DAY_MS = 86_400_000;

/** Parse an ISO date or date-time ('2026-01-31' is UTC midnight); throws on anything else. */
export function parseIsoDate(s: string): number {
  const t = /^\d{4}-\d{2}-\d{2}(T.*)?$/.test(s) ? Date.parse(s) : Number.NaN;
  if (Number.isNaN(t)) throw new Error(`not an ISO date: ${JSON.stringify(s)}`);
  return t;
}

/**
 * Add calendar months in UTC, keeping the time of day. A day that does not exist in the target
 * month is clamped to its last day (Jan 31 + 1 month = Feb 28/29), as schedules are read by people.
 */
export function addMonthsUtc(ts: number, months: number): number {
  const d = new Date(ts);
  const y = d.getUTCFullYear();
  const m = d.getUTCMonth() + months;
  const targetY = y + Math.floor(m / 12);
  const targetM = ((m % 12) + 12) % 12;
  const lastDay = new Date(Date.UTC(targetY, targetM + 1, 0)).getUTCDate();
  const day = Math.min(d.getUTCDate(), lastDay);
  return Date.UTC(targetY, targetM, day, d.getUTCHours(), d.getUTCMinutes(), d.getUTCSeconds(), d.getUTCMilliseconds());
}

export function addDays(ts: number, days: number): number {
  return ts + days * DAY_MS;
}

/** Days since the epoch on the UTC calendar (the day a timestamp falls on). */
export function utcDay(ts: number): number {
  return Math.floor(ts / DAY_MS);
}

/** YYYY-MM-DD of a timestamp (UTC). */
export function isoDate(ts: number): string {
  return new Date(ts).toISOString().slice(0, 10);
}

/** YYYY-MM-DD of a UTC day number. */
export function isoDay(day: number): string {
  return isoDate(day * DAY_MS);
}
