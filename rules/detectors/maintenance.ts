// Maintenance ladder (docs/domain.md#maintenance): upcoming -> due -> overdue -> lapsed 1/2/3 per
// service cycle, reset by a recorded visit, followed by a care message a few days later.
// Km-based steps fire from readings; date-based steps from readings and from the fleet clock's
// tick, so a parked car still gets them. Pure: state is JSON, time is event time or the tick.
import { VSS } from '../../proto/signals.js';
import type { MaintenanceConfig } from '../config/maintenance.js';
import { DAY_MS, addMonthsUtc, isoDate, parseIsoDate } from '../time.js';
import type { Detector, DetectorContext, DetectorResult, PromptDraft, Reading, RuleEvent, ServiceRecord } from '../types.js';

/** The ladder, in order. A step fires at most once per cycle. */
export const MAINTENANCE_STEPS = ['upcoming', 'due', 'overdue', 'lapsed1', 'lapsed2', 'lapsed3'] as const;
export type MaintenanceStep = (typeof MAINTENANCE_STEPS)[number];

export interface MaintenanceState {
  /** Service cycle: 0 until the first recorded visit, +1 per visit. Part of every dedup key. */
  cycle: number;
  /** Start of the cycle when it began at a recorded visit; absent = delivery (from the profile). */
  base?: { ts: number; odometer: number };
  /** Index into MAINTENANCE_STEPS of the furthest step fired this cycle; -1 = none. */
  step: number;
  /** dedupKey of the cycle's open prompt (a later step supersedes and resolves the earlier). */
  openKey?: string;
  /** When the due point was reached, and the odometer then (overdue and lapsed count from here). */
  dueAt?: number;
  dueOdometer?: number;
  /** Highest odometer seen (km). */
  odometer?: number;
  /** Latest time evaluated, so a late reading never moves the ladder's clock backwards. */
  evalTs?: number;
  /** A follow-up care message waiting for the fleet clock. */
  followup?: { at: number; key: string; date: string; odometer: number; items: string[] };
}

type Ctx = DetectorContext<MaintenanceConfig>;

/**
 * A shallow copy built field by field: every reading copies the state, and a spread of an object
 * that once lost a key (`delete`) is many times slower. Unset fields stay absent, as in JSON.
 */
function copyState(s: MaintenanceState, withFollowup = true): MaintenanceState {
  const c: MaintenanceState = { cycle: s.cycle, step: s.step };
  if (s.base !== undefined) c.base = s.base;
  if (s.openKey !== undefined) c.openKey = s.openKey;
  if (s.dueAt !== undefined) c.dueAt = s.dueAt;
  if (s.dueOdometer !== undefined) c.dueOdometer = s.dueOdometer;
  if (s.odometer !== undefined) c.odometer = s.odometer;
  if (s.evalTs !== undefined) c.evalTs = s.evalTs;
  if (withFollowup && s.followup !== undefined) c.followup = s.followup;
  return c;
}

/** Where the current cycle's due point lies. */
export interface DuePoint {
  first: boolean;
  startTs: number;
  dueKm: number;
  dueTs: number;
}

// The due point only changes with the profile, the config or the cycle's start, yet is needed on
// every reading: remember the last one (readings of one vehicle arrive in runs).
let lastDue: { iv: object; startTs: number; startKm: number; dp: DuePoint } | undefined;

export function duePoint(state: MaintenanceState, ctx: Ctx): DuePoint | undefined {
  const profile = ctx.profile;
  if (!profile) return undefined;
  const base = state.base;
  const iv = base ? ctx.config.interval[profile.powertrain] : ctx.config.firstService;
  const startTs = base ? base.ts : parseIsoDate(profile.deliveryDate);
  const startKm = base ? base.odometer : 0;
  const m = lastDue;
  if (m && m.iv === iv && m.startTs === startTs && m.startKm === startKm && m.dp.first === !base) {
    // Same inputs; a fresh copy so a caller may keep or change its own.
    return { first: m.dp.first, startTs, dueKm: m.dp.dueKm, dueTs: m.dp.dueTs };
  }
  const dp: DuePoint = { first: !base, startTs, dueKm: startKm + iv.km, dueTs: addMonthsUtc(startTs, iv.months) };
  lastDue = { iv, startTs, startKm, dp: { ...dp } };
  return dp;
}

/** The service-item list: the model's schedule plus what the vehicle's condition adds. */
export function serviceItems(ctx: Ctx): string[] {
  const profile = ctx.profile;
  if (!profile) return [];
  const items = [...ctx.config.items[profile.powertrain]];
  for (const code of ctx.view.activeDtcs) items.push(`dtc:${code}`);
  const v = ctx.view.lastVoltage12v;
  if (v !== undefined && v < ctx.config.condition.lowVoltage12v) items.push('battery_12v_test');
  const soh = ctx.view.lastSoh;
  if (profile.powertrain !== 'ICE' && soh !== undefined && soh < ctx.config.condition.sohBelowPct) items.push('hv_battery_health_check');
  return items;
}

function stepKey(vin: string, cycle: number, step: MaintenanceStep): string {
  return step.startsWith('lapsed') ? `${vin}:maintenance.lapsed:c${cycle}:l${step.slice(6)}` : `${vin}:maintenance.${step}:c${cycle}`;
}

/** The furthest step reached at `at`; records the due point in `next` when it is reached. */
function furthestStep(next: MaintenanceState, dp: DuePoint, at: number, cfg: MaintenanceConfig): number {
  const odo = next.odometer;
  const kmAtLeast = (km: number) => odo !== undefined && odo >= km;
  let reached = -1;
  if (kmAtLeast(dp.dueKm - cfg.upcoming.km) || at >= dp.dueTs - cfg.upcoming.days * DAY_MS) reached = 0;
  if (next.dueAt === undefined && (kmAtLeast(dp.dueKm) || at >= dp.dueTs)) {
    // Whichever came first: the due date if it has passed, else now (the km point was just crossed).
    next.dueAt = Math.min(dp.dueTs, at);
    next.dueOdometer = Math.min(odo ?? dp.dueKm, dp.dueKm);
  }
  if (next.dueAt === undefined) return reached;
  reached = 1;
  const dueAt = next.dueAt;
  if (kmAtLeast((next.dueOdometer ?? dp.dueKm) + cfg.overdue.km) || at >= dueAt + cfg.overdue.days * DAY_MS) reached = 2;
  // The furthest lapsed level whose date has passed (the last match wins, as in a forward scan).
  const lapsedTs = lapsedDates(dueAt, cfg.lapsedMonths);
  for (let i = lapsedTs.length - 1; i >= 0; i--) {
    if (at >= lapsedTs[i]) return 3 + i;
  }
  return reached;
}

// The lapsed levels' dates only change with the due date: remember the last vehicle's (as lastDue).
let lastLapsed: { dueAt: number; months: readonly number[]; dates: number[] } | undefined;

function lapsedDates(dueAt: number, months: readonly number[]): number[] {
  const m = lastLapsed;
  if (m && m.dueAt === dueAt && m.months === months) return m.dates;
  lastLapsed = { dueAt, months, dates: months.map((n) => addMonthsUtc(dueAt, n)) };
  return lastLapsed.dates;
}

function stepPrompt(step: MaintenanceStep, state: MaintenanceState, dp: DuePoint, at: number, ctx: Ctx): PromptDraft {
  const cfg = ctx.config;
  const odo = state.odometer;
  const items = serviceItems(ctx);
  const params: PromptDraft['params'] = {
    dueKm: dp.dueKm,
    dueDate: isoDate(dp.dueTs),
    items,
    cycle: state.cycle,
    service: dp.first ? 'first' : 'regular',
  };
  if (odo !== undefined) params.odometer = Math.round(odo);
  const evidence: Record<string, unknown> = {
    at: new Date(at).toISOString(),
    odometer: odo,
    dueKm: dp.dueKm,
    dueDate: isoDate(dp.dueTs),
    activeDtcs: ctx.view.activeDtcs,
    voltage12v: ctx.view.lastVoltage12v,
    soh: ctx.view.lastSoh,
  };
  let severity: PromptDraft['severity'] = 'info';
  let audience: PromptDraft['audience'] = ['hmi', 'advisor'];
  let value = 50;
  if (step === 'upcoming') {
    params.kmRemaining = Math.max(0, Math.round(dp.dueKm - (odo ?? 0)));
    params.daysRemaining = Math.max(0, Math.ceil((dp.dueTs - at) / DAY_MS));
  } else if (step === 'due' || step === 'overdue') {
    severity = 'warning';
    value = step === 'due' ? 60 : 70;
    evidence.dueAt = new Date(state.dueAt ?? at).toISOString();
    if (step === 'overdue') {
      params.kmPast = Math.max(0, Math.round((odo ?? 0) - (state.dueOdometer ?? dp.dueKm)));
      params.daysPast = Math.max(0, Math.floor((at - (state.dueAt ?? at)) / DAY_MS));
    }
  } else {
    const level = Number(step.slice(6));
    params.level = level;
    params.months = cfg.lapsedMonths[level - 1];
    params.dueReached = isoDate(state.dueAt ?? at);
    evidence.dueAt = new Date(state.dueAt ?? at).toISOString();
    evidence.level = level;
    audience = level === 3 ? ['lifecycle', 'advisor'] : ['lifecycle'];
    value = 40;
  }
  const kind = step.startsWith('lapsed') ? 'maintenance.lapsed' : (`maintenance.${step}` as PromptDraft['kind']);
  return { kind, dedupKey: stepKey(ctx.vin, state.cycle, step), severity, audience, urgent: false, ts: at, evidence, params, value };
}

/**
 * Advance the ladder to `at`. When one evaluation jumps past several steps (a vehicle first seen
 * late, a long gap), only the furthest is sent: earlier invitations would be stale on arrival.
 */
function evaluate(state: MaintenanceState, at: number, ctx: Ctx, odometer?: number): DetectorResult<MaintenanceState> {
  const dp = duePoint(state, ctx);
  if (!dp) {
    if (odometer === undefined) return { state, events: [] };
    const moved = copyState(state);
    moved.odometer = odometer;
    return { state: moved, events: [] };
  }
  const now = Math.max(at, state.evalTs ?? at);
  // One copy per call: the caller's state is never changed.
  const next = copyState(state);
  if (odometer !== undefined) next.odometer = odometer;
  next.evalTs = now;
  const prevStep = state.step;
  const reached = furthestStep(next, dp, now, ctx.config);
  if (reached <= prevStep) return { state: next, events: [] };
  const step = MAINTENANCE_STEPS[reached];
  const prompt = stepPrompt(step, next, dp, now, ctx);
  const events: RuleEvent[] = [];
  if (state.openKey) events.push({ type: 'resolve', dedupKey: state.openKey, ts: now, reason: `superseded by ${step}` });
  events.push({ type: 'open', prompt });
  next.step = reached;
  next.openKey = prompt.dedupKey;
  return { state: next, events };
}

function emitFollowup(state: MaintenanceState, now: number, ctx: Ctx): DetectorResult<MaintenanceState> {
  const f = state.followup;
  if (!f || now < f.at || !ctx.profile) return { state, events: [] };
  const next = copyState(state, false);
  if (now > f.at + ctx.config.followupMaxLateDays * DAY_MS) return { state: next, events: [] };
  const prompt: PromptDraft = {
    kind: 'maintenance.followup',
    dedupKey: f.key,
    severity: 'info',
    audience: ['lifecycle'],
    urgent: false,
    ts: now,
    evidence: { serviceDate: f.date, odometer: f.odometer, items: f.items },
    params: { serviceDate: f.date, odometer: Math.round(f.odometer), items: f.items },
    value: 20,
  };
  return { state: next, events: [{ type: 'open', prompt }] };
}

export const maintenanceDetector: Detector<MaintenanceState, MaintenanceConfig> = {
  family: 'maintenance',

  initial: () => ({ cycle: 0, step: -1 }),

  onReading(state: MaintenanceState, reading: Reading, ctx: Ctx): DetectorResult<MaintenanceState> {
    const raw = reading.signals[VSS.odometer] ?? ctx.latest[VSS.odometer];
    const odometer = typeof raw === 'number' && Number.isFinite(raw) && raw > (state.odometer ?? -1) ? raw : undefined;
    return evaluate(state, reading.ts, ctx, odometer);
  },

  onTick(state: MaintenanceState, now: number, ctx: Ctx): DetectorResult<MaintenanceState> {
    const f = emitFollowup(state, now, ctx);
    const e = evaluate(f.state, now, ctx);
    return { state: e.state, events: [...f.events, ...e.events] };
  },

  onServiceRecord(state: MaintenanceState, record: ServiceRecord, ctx: Ctx): DetectorResult<MaintenanceState> {
    const ts = parseIsoDate(record.date);
    if (typeof record.odometer !== 'number' || !Number.isFinite(record.odometer) || record.odometer < 0) {
      throw new Error(`service record odometer must be a non-negative number, got ${JSON.stringify(record.odometer)}`);
    }
    // A visit older than the current cycle's start (or the same visit again) changes nothing.
    const delivery = ctx.profile ? parseIsoDate(ctx.profile.deliveryDate) : undefined;
    if (state.base && ts <= state.base.ts) return { state, events: [] };
    if (!state.base && delivery !== undefined && ts < delivery) return { state, events: [] };
    const events: RuleEvent[] = [];
    if (state.openKey) events.push({ type: 'resolve', dedupKey: state.openKey, ts, reason: 'serviced' });
    const cycle = state.cycle + 1;
    const next: MaintenanceState = {
      cycle,
      step: -1,
      base: { ts, odometer: record.odometer },
      odometer: Math.max(state.odometer ?? 0, record.odometer),
      followup: {
        at: ts + ctx.config.followupDays * DAY_MS,
        key: `${ctx.vin}:maintenance.followup:c${cycle}`,
        date: isoDate(ts),
        odometer: record.odometer,
        items: record.items.slice(0, 32),
      },
    };
    if (state.evalTs !== undefined) next.evalTs = state.evalTs;
    return { state: next, events };
  },
};
