// Usage and lifecycle (docs/domain.md#usage-and-lifecycle): stage, activity and maturity tiers,
// usage.segment_changed on every change, usage.dormant_vehicle after a long park, and the daily
// utilisation summary for commercial vehicles. Time-based tiers come from the fleet clock's tick.
// State is a compact per-day ring (km, driving minutes) plus lifetime totals: small, JSON-only.
// Days are UTC calendar days.
import { VSS, isDriving } from '../../proto/signals.js';
import type { UsageConfig } from '../config/usage.js';
import { DAY_MS, addMonthsUtc, isoDate, isoDay, parseIsoDate, utcDay } from '../time.js';
import type { Detector, DetectorContext, DetectorResult, PromptDraft, Reading, RuleEvent, Segments } from '../types.js';

/** [UTC day number, km driven, minutes driven]. */
export type DayEntry = [number, number, number];

export interface UsageState {
  /** Event time of the first and the latest reading. */
  firstTs?: number;
  lastTs?: number;
  /** Event time of the latest reading that showed the vehicle driving. */
  lastDrivenTs?: number;
  /** Whether the latest reading showed driving (driving time accrues between driving readings). */
  driving: boolean;
  /** Latest odometer (km) and the distance seen since the first reading. */
  odometer?: number;
  totalKm: number;
  /** Per-day ring, oldest first, covering at most config.historyDays. */
  days: DayEntry[];
  segments?: Segments;
  /** Latest time evaluated, so a late reading never moves the tiers' clock backwards. */
  evalTs?: number;
  /** Open usage.dormant_vehicle prompt, resolved when the vehicle is driven. */
  dormantKey?: string;
  /** Last UTC day whose utilisation was reported (commercial vehicles). */
  utilDay?: number;
}

type Ctx = DetectorContext<UsageConfig>;

/**
 * A shallow copy built field by field: every reading copies the state, and a spread of an object
 * that once lost a key (`delete`) is many times slower. Unset fields stay absent, as in JSON.
 */
function copyState(s: UsageState, withDormantKey = true): UsageState {
  const c: UsageState = { driving: s.driving, totalKm: s.totalKm, days: s.days };
  if (s.firstTs !== undefined) c.firstTs = s.firstTs;
  if (s.lastTs !== undefined) c.lastTs = s.lastTs;
  if (s.lastDrivenTs !== undefined) c.lastDrivenTs = s.lastDrivenTs;
  if (s.odometer !== undefined) c.odometer = s.odometer;
  if (s.segments !== undefined) c.segments = s.segments;
  if (s.evalTs !== undefined) c.evalTs = s.evalTs;
  if (withDormantKey && s.dormantKey !== undefined) c.dormantKey = s.dormantKey;
  if (s.utilDay !== undefined) c.utilDay = s.utilDay;
  return c;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

function addToDay(days: DayEntry[], day: number, km: number, minutes: number, keepDays: number): DayEntry[] {
  // Common case (nothing to prune, same or later day as the last entry): one copy, no filter.
  const n = days.length;
  let keepAll = true;
  for (let i = 0; i < n; i++) {
    if (!(days[i][0] > day - keepDays)) {
      keepAll = false;
      break;
    }
  }
  const out = keepAll ? days.slice() : days.filter((d) => d[0] > day - keepDays);
  const last = out[out.length - 1];
  if (last && last[0] === day) out[out.length - 1] = [day, last[1] + km, last[2] + minutes];
  else if (!last || last[0] < day) out.push([day, km, minutes]);
  else {
    // An in-order reading never lands on an older day; keep the ring sorted anyway.
    const i = out.findIndex((d) => d[0] >= day);
    if (out[i][0] === day) out[i] = [day, out[i][1] + km, out[i][2] + minutes];
    else out.splice(i, 0, [day, km, minutes]);
  }
  return out;
}

/** Distance over the `window` days ending with the day of `at` (inclusive). */
export function recentKm(state: UsageState, at: number, window: number): number {
  const today = utcDay(at);
  const days = state.days;
  let sum = 0;
  for (let i = 0; i < days.length; i++) {
    const d = days[i];
    if (d[0] > today - window && d[0] <= today) sum += d[1];
  }
  return sum;
}

/** Stage and maturity boundaries as epoch ms; they depend only on the delivery date and config. */
interface Boundaries {
  deliveryDate: string;
  cfg: UsageConfig;
  delivery: number;
  upgradeTs: number;
  newOwnerEnd: number;
  noviceTs: number;
  skilledTs: number;
}

// Readings of one vehicle arrive in runs: remembering the last vehicle's boundaries saves the
// calendar arithmetic on nearly every reading.
let lastBounds: Boundaries | undefined;

function boundaries(deliveryDate: string, cfg: UsageConfig): Boundaries {
  const b = lastBounds;
  if (b && b.cfg === cfg && b.deliveryDate === deliveryDate) return b;
  const delivery = parseIsoDate(deliveryDate);
  lastBounds = {
    deliveryDate,
    cfg,
    delivery,
    upgradeTs: addMonthsUtc(delivery, cfg.stage.upgradeMonths),
    newOwnerEnd: delivery + cfg.stage.newOwnerDays * DAY_MS,
    noviceTs: addMonthsUtc(delivery, cfg.maturity.noviceMonths),
    skilledTs: addMonthsUtc(delivery, cfg.maturity.skilledMonths),
  };
  return lastBounds;
}

export function computeSegments(state: UsageState, at: number, ctx: Ctx): Segments | undefined {
  const profile = ctx.profile;
  if (!profile || state.firstTs === undefined || state.lastTs === undefined) return undefined;
  const cfg = ctx.config;
  const b = boundaries(profile.deliveryDate, cfg);
  const odo = state.odometer ?? 0;

  let stage: Segments['stage'];
  if (at >= b.upgradeTs || odo >= cfg.stage.upgradeKm) stage = 'upgrade_window';
  else if (at < b.newOwnerEnd) stage = 'new_owner';
  else if (odo < cfg.stage.breakInKm) stage = 'break_in';
  else stage = 'active_owner';

  // Worst first. "active" needs a drive in the last days and no marked drop in distance; a car
  // between active and dormant (not driven for a week, or driving far less than it used to) is
  // "declining": the owner the lifecycle system should try to retain.
  const a = cfg.activity;
  const drivenRef = state.lastDrivenTs ?? state.firstTs;
  let activity: Segments['activity'];
  if (at - state.lastTs >= a.lostDays * DAY_MS) activity = 'lost';
  else if (at - drivenRef >= a.dormantDays * DAY_MS) activity = 'dormant';
  else if (at - drivenRef < a.activeDays * DAY_MS && !distanceDeclining(state, at, cfg)) activity = 'active';
  else activity = 'declining';

  // "Under 3 months or 3,000 km": familiarity needs both time with the car and distance.
  const m = cfg.maturity;
  let maturity: Segments['maturity'];
  if (at < b.noviceTs || odo < m.noviceKm) maturity = 'novice';
  else if (at < b.skilledTs || odo < m.skilledKm) maturity = 'skilled';
  else maturity = 'veteran';
  return { stage, activity, maturity };
}

/** Last window's distance under declineRatio x the vehicle's own average for such a window. */
function distanceDeclining(state: UsageState, at: number, cfg: UsageConfig): boolean {
  const a = cfg.activity;
  if (state.firstTs === undefined) return false;
  const historyDays = (at - state.firstTs) / DAY_MS;
  if (historyDays < a.declineMinHistoryDays || state.totalKm <= 0) return false;
  const averageWindowKm = (state.totalKm / historyDays) * a.declineWindowDays;
  return recentKm(state, at, a.declineWindowDays) < a.declineRatio * averageWindowKm;
}

const sameSegments = (x: Segments | undefined, y: Segments) =>
  x !== undefined && x.stage === y.stage && x.activity === y.activity && x.maturity === y.maturity;

function segmentPrompt(from: Segments | undefined, to: Segments, at: number, state: UsageState, ctx: Ctx): PromptDraft {
  const changed = (['stage', 'activity', 'maturity'] as const).filter((k) => from?.[k] !== to[k]);
  return {
    kind: 'usage.segment_changed',
    dedupKey: `${ctx.vin}:usage.segment_changed:${to.stage}/${to.activity}/${to.maturity}:${isoDate(at)}`,
    severity: 'info',
    audience: ['lifecycle'],
    urgent: false,
    ts: at,
    evidence: {
      from: from ?? null,
      to,
      at: new Date(at).toISOString(),
      odometer: state.odometer,
      lastDrivenAt: state.lastDrivenTs === undefined ? null : new Date(state.lastDrivenTs).toISOString(),
      lastTelemetryAt: state.lastTs === undefined ? null : new Date(state.lastTs).toISOString(),
      km30d: round1(recentKm(state, at, 30)),
    },
    params: {
      stage: to.stage,
      activity: to.activity,
      maturity: to.maturity,
      fromStage: from?.stage ?? 'none',
      fromActivity: from?.activity ?? 'none',
      fromMaturity: from?.maturity ?? 'none',
      changed: [...changed],
    },
    value: 10,
  };
}

function dormantPrompt(key: string, drivenRef: number, at: number, ctx: Ctx): PromptDraft {
  const params: PromptDraft['params'] = { parkedDays: Math.floor((at - drivenRef) / DAY_MS), lastDriven: isoDate(drivenRef) };
  const v = ctx.view.lastVoltage12v;
  if (v !== undefined) params.voltage12v = round1(v);
  return {
    kind: 'usage.dormant_vehicle',
    dedupKey: key,
    severity: 'info',
    audience: ['hmi', 'lifecycle'],
    urgent: false,
    ts: at,
    evidence: { lastDrivenAt: new Date(drivenRef).toISOString(), at: new Date(at).toISOString(), voltage12v: v },
    params,
    value: 30,
  };
}

function utilisationPrompt(day: number, state: UsageState, ctx: Ctx, at: number): PromptDraft {
  const entry = state.days.find((d) => d[0] === day);
  const km = entry ? entry[1] : 0;
  const minutes = entry ? entry[2] : 0;
  const date = isoDay(day);
  return {
    kind: 'usage.utilisation',
    dedupKey: `${ctx.vin}:usage.utilisation:${date}`,
    severity: 'info',
    audience: ['lifecycle'],
    urgent: false,
    ts: at,
    evidence: { date, km, drivingMinutes: minutes, odometer: state.odometer },
    params: { date, km: round1(km), hours: round1(minutes / 60) },
    value: 5,
  };
}

/** Re-derive tiers and the time-based prompts at `at` (reading time or the fleet clock). */
function evaluate(state: UsageState, at: number, ctx: Ctx, owned = false, events: RuleEvent[] = []): DetectorResult<UsageState> {
  if (!ctx.profile || state.firstTs === undefined) return { state, events };
  const now = Math.max(at, state.evalTs ?? at);
  // `owned`: `state` is a copy made in this call (by accumulate), so it may be updated in place.
  const next: UsageState = owned ? state : copyState(state);
  const prevSegments = state.segments;
  next.evalTs = now;

  const segments = computeSegments(next, now, ctx);
  if (segments && !sameSegments(prevSegments, segments)) {
    events.push({ type: 'segments', segments });
    events.push({ type: 'open', prompt: segmentPrompt(prevSegments, segments, now, next, ctx) });
    next.segments = segments;
  }

  const drivenRef = next.lastDrivenTs ?? next.firstTs!;
  if (!next.dormantKey && now - drivenRef >= ctx.config.dormantVehicleDays * DAY_MS) {
    const key = `${ctx.vin}:usage.dormant_vehicle:${new Date(drivenRef).toISOString()}`;
    events.push({ type: 'open', prompt: dormantPrompt(key, drivenRef, now, ctx) });
    next.dormantKey = key;
  }

  if (ctx.profile.vehicleType === 'commercial') {
    // Only the latest completed day is reported: after a gap without ticks the days between are skipped.
    const lastComplete = utcDay(now - ctx.config.utilisationDelayMinutes * 60_000) - 1;
    if (lastComplete >= utcDay(next.firstTs!) && (next.utilDay === undefined || lastComplete > next.utilDay)) {
      // A vehicle that stopped reporting altogether has no utilisation to report.
      if (next.segments?.activity !== 'lost') events.push({ type: 'open', prompt: utilisationPrompt(lastComplete, next, ctx, now) });
      next.utilDay = lastComplete;
    }
  }
  return { state: next, events };
}

/** Fold one reading into the counters (distance, driving time, last-seen times). */
function accumulate(state: UsageState, reading: Reading, ctx: Ctx): { state: UsageState; events: RuleEvent[] } {
  const cfg = ctx.config;
  const ts = reading.ts;
  const next = copyState(state);
  const events: RuleEvent[] = [];
  const inOrder = state.lastTs === undefined || ts >= state.lastTs;
  const driving = isDriving(ctx.latest);
  if (next.firstTs === undefined || ts < next.firstTs) next.firstTs = ts;
  if (!inOrder) {
    // A late reading only tells us the car was driven then; the counters already moved on.
    if (driving && ts > (next.lastDrivenTs ?? -Infinity)) next.lastDrivenTs = ts;
    return { state: next, events };
  }

  let km = 0;
  const odo = ctx.latest[VSS.odometer];
  if (typeof odo === 'number' && Number.isFinite(odo)) {
    const delta = state.odometer === undefined ? 0 : odo - state.odometer;
    // Negative or implausible steps (cluster swap, bad sample) rebase without counting distance.
    if (delta > 0 && delta <= cfg.maxOdometerStepKm) km = delta;
    next.odometer = odo;
  }
  let minutes = 0;
  if (state.driving && state.lastTs !== undefined && ts - state.lastTs <= cfg.maxDriveGapMinutes * 60_000) {
    minutes = (ts - state.lastTs) / 60_000;
  }
  next.totalKm = state.totalKm + km;
  next.days = addToDay(state.days, utcDay(ts), km, minutes, cfg.historyDays);
  next.lastTs = ts;
  next.driving = driving;
  if (driving) {
    next.lastDrivenTs = ts;
    if (next.dormantKey) {
      events.push({ type: 'resolve', dedupKey: next.dormantKey, ts, reason: 'driven' });
      return { state: copyState(next, false), events };
    }
  }
  return { state: next, events };
}

export const usageDetector: Detector<UsageState, UsageConfig> = {
  family: 'usage',

  initial: () => ({ driving: false, totalKm: 0, days: [] }),

  onReading(state: UsageState, reading: Reading, ctx: Ctx): DetectorResult<UsageState> {
    const acc = accumulate(state, reading, ctx);
    return evaluate(acc.state, reading.ts, ctx, true, acc.events);
  },

  onTick(state: UsageState, now: number, ctx: Ctx): DetectorResult<UsageState> {
    const pruned =
      state.days.length && state.days[0][0] <= utcDay(now) - ctx.config.historyDays
        ? { ...state, days: state.days.filter((d) => d[0] > utcDay(now) - ctx.config.historyDays) }
        : state;
    return evaluate(pruned, now, ctx);
  },
};
