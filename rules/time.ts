// Calendar helpers for time-based rules. Everything is UTC: rules run on event time, and a
// calendar month is counted on the UTC calendar so results do not depend on the host's zone.
// These run on every reading, so the common cases avoid Date objects and regexes.

export const DAY_MS = 86_400_000;

const ISO_DATE = /^\d{4}-\d{2}-\d{2}(T.*)?$/;
// Profiles repeat the same few delivery dates on every reading: parse each string once.
const parsed = new Map<string, number>();
const PARSED_MAX = 4096;

/** An ISO date or date-time in ms ('2026-01-31' is UTC midnight), NaN for anything else. */
export function isoDateMs(s: string): number {
  const hit = parsed.get(s);
  if (hit !== undefined) return hit;
  const t = ISO_DATE.test(s) ? Date.parse(s) : Number.NaN;
  if (parsed.size >= PARSED_MAX) parsed.clear();
  parsed.set(s, t);
  return t;
}

/** Parse an ISO date or date-time ('2026-01-31' is UTC midnight); throws on anything else. */
export function parseIsoDate(s: string): number {
  const t = isoDateMs(s);
  if (Number.isNaN(t)) throw new Error(`not an ISO date: ${JSON.stringify(s)}`);
  return t;
}

/** 1970-01-01 .. 9999-12-31 in ms: the fast path's range (outside it the Date-based version runs). */
const FAST_MIN_TS = 0;
const FAST_MAX_TS = 253_402_300_800_000;

/** Days since the epoch of a civil date (month 1..12); H. Hinnant's days_from_civil. */
function daysFromCivil(y: number, m: number, d: number): number {
  const yy = m <= 2 ? y - 1 : y;
  const era = Math.floor(yy / 400);
  const yoe = yy - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

function isLeap(y: number): boolean {
  return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Add calendar months in UTC, keeping the time of day. A day that does not exist in the target
 * month is clamped to its last day (Jan 31 + 1 month = Feb 28/29), as schedules are read by people.
 */
export function addMonthsUtc(ts: number, months: number): number {
  if (!(ts >= FAST_MIN_TS && ts < FAST_MAX_TS) || !Number.isInteger(ts) || !Number.isInteger(months) || Math.abs(months) > 12_000) {
    return addMonthsDate(ts, months);
  }
  // civil_from_days (H. Hinnant), integer arithmetic only.
  const days = Math.floor(ts / DAY_MS);
  const msOfDay = ts - days * DAY_MS;
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month0 = mp < 10 ? mp + 2 : mp - 10; // 0..11
  const year = yoe + era * 400 + (month0 <= 1 ? 1 : 0);
  const m = month0 + months;
  const targetY = year + Math.floor(m / 12);
  const targetM = m - Math.floor(m / 12) * 12;
  // Date.UTC reads years 0..99 as 19xx: leave anything unusual to the Date-based version.
  if (targetY < 1000 || targetY > 9999) return addMonthsDate(ts, months);
  const lastDay = targetM === 1 && isLeap(targetY) ? 29 : MONTH_DAYS[targetM];
  return daysFromCivil(targetY, targetM + 1, day < lastDay ? day : lastDay) * DAY_MS + msOfDay;
}

/** The reference implementation (Date-based); the fast path must agree with it. */
export function addMonthsDate(ts: number, months: number): number {
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
