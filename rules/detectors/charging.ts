// charging.low_soc / charging.critical_soc, charging-session derivation and charging.habit.
// Pure: state is JSON, time is the reading's event time.
import { VSS, isDriving } from '../../proto/signals.js';
import type { ChargingConfig } from '../config/charging.js';
import type { ChargingSession, Detector, DetectorContext, DetectorResult, PromptDraft, Reading, RuleEvent } from '../types.js';

const NONE = Object.freeze([]) as unknown as RuleEvent[];
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface OpenSession {
  start: number;
  startSoc: number;
  lastSoc: number;
  dc: boolean;
}

interface SessionSummary {
  end: number;
  dc: boolean;
  /** true/false once judged; absent while the "left full" dwell is still being watched. */
  leftFull?: boolean;
}

export interface ChargingState {
  lowArmed: boolean;
  criticalArmed: boolean;
  /** Counts re-arms, so a later low-charge situation gets a new dedup key. */
  episode: number;
  openLow?: string;
  openCritical?: string;
  charging: boolean;
  session?: OpenSession;
  /** Sessions that ended within the habit window (oldest first). */
  sessions: SessionSummary[];
  /** Event time at which the last session ended full (watching how long it is left there). */
  fullSince?: number;
  /** Event time each habit situation last prompted. */
  habitFired: Record<string, number>;
}

type Ctx = DetectorContext<ChargingConfig>;

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** Estimated remaining range (km) from SOC, the model's usable capacity and consumption. */
export function estimateRangeKm(soc: number, cfg: ChargingConfig): number {
  return Math.max(0, Math.round(((soc / 100) * cfg.usableCapacityKwh * 100) / cfg.consumptionKwhPer100km));
}

function socPrompt(kind: 'charging.low_soc' | 'charging.critical_soc', key: string, soc: number, ts: number, ctx: Ctx): PromptDraft {
  const critical = kind === 'charging.critical_soc';
  const rangeKm = estimateRangeKm(soc, ctx.config);
  return {
    kind,
    dedupKey: key,
    severity: critical ? 'critical' : 'warning',
    audience: critical ? ['hmi', 'advisor'] : ['hmi'],
    urgent: critical,
    ts,
    evidence: { soc, isCharging: false, ts, thresholdPct: critical ? ctx.config.criticalSocPct : ctx.config.lowSocPct },
    params: { soc: Math.round(soc * 10) / 10, rangeKm },
    value: critical ? 100 : 60,
  };
}

function endSession(s: ChargingState, open: OpenSession, ts: number, soc: number | undefined, ctx: Ctx, events: RuleEvent[]): void {
  const endSoc = soc ?? open.lastSoc;
  const startSoc = open.startSoc < 0 ? endSoc : open.startSoc;
  const session: ChargingSession = {
    vin: ctx.vin,
    start: open.start,
    end: ts,
    startSoc,
    endSoc,
    energyKwh: Math.round(Math.max(0, endSoc - startSoc) * ctx.config.usableCapacityKwh) / 100,
    type: open.dc ? 'DC' : 'AC',
  };
  events.push({ type: 'charging_session', session });
  const windowStart = ts - ctx.config.habit.windowDays * DAY;
  const full = endSoc >= ctx.config.habit.fullSocPct;
  s.sessions = s.sessions.filter((x) => x.end >= windowStart);
  s.sessions.push(full ? { end: ts, dc: open.dc } : { end: ts, dc: open.dc, leftFull: false });
  s.fullSince = full ? ts : undefined;
}

/** Judge the full-dwell of the last session: left full for long enough, or taken off earlier. */
function judgeDwell(s: ChargingState, leftFull: boolean): void {
  const last = s.sessions[s.sessions.length - 1];
  if (last && last.leftFull === undefined) {
    // s is a shallow copy: copy the array before writing, the caller's state must not change
    s.sessions = s.sessions.slice();
    s.sessions[s.sessions.length - 1] = { ...last, leftFull };
  }
  s.fullSince = undefined;
}

function evaluateHabit(s: ChargingState, ts: number, ctx: Ctx, events: RuleEvent[]): void {
  const h = ctx.config.habit;
  const windowMs = h.windowDays * DAY;
  const recent = s.sessions.filter((x) => x.end >= ts - windowMs);
  if (recent.length < h.minSessions) return;
  const n = recent.length;
  const dc = recent.filter((x) => x.dc).length;
  const leftFull = recent.filter((x) => x.leftFull === true).length;
  const situations: [string, boolean][] = [
    ['dc_fast', dc / n > h.dcShareAbove],
    ['left_full', leftFull / n > h.fullDwellShareAbove],
  ];
  for (const [situation, hit] of situations) {
    if (!hit) continue;
    const last = s.habitFired[situation];
    if (last !== undefined && ts - last < windowMs) continue;
    s.habitFired = { ...s.habitFired, [situation]: ts };
    events.push({
      type: 'open',
      prompt: {
        kind: 'charging.habit',
        dedupKey: `${ctx.vin}:charging.habit:${situation}:${Math.floor(ts / windowMs)}`,
        severity: 'info',
        audience: ['hmi', 'lifecycle'],
        urgent: false,
        ts,
        evidence: { windowDays: h.windowDays, sessions: n, dcSessions: dc, leftFullSessions: leftFull },
        params: { situation, sessions: n, dcSharePct: Math.round((dc / n) * 100), leftFullSessions: leftFull, windowDays: h.windowDays },
        value: 20,
      },
    });
  }
}

/** Most readings change nothing: answer that without copying the state (the hot path). */
function quiet(state: ChargingState, soc: number | undefined, charging: boolean, dcNow: boolean, cfg: ChargingConfig): boolean {
  if (charging !== state.charging || state.fullSince !== undefined) return false;
  if (charging && (!state.session || soc !== state.session.lastSoc || (dcNow && !state.session.dc))) return false;
  if (soc === undefined) return true;
  if (soc > cfg.rearmSocPct && (!state.lowArmed || !state.criticalArmed)) return false;
  return charging || !((soc < cfg.criticalSocPct && state.criticalArmed) || (soc < cfg.lowSocPct && state.lowArmed));
}

function onReading(state: ChargingState, r: Reading, ctx: Ctx): DetectorResult<ChargingState> {
  if (ctx.profile?.powertrain === 'ICE') return { state, events: NONE };
  const sig = r.signals;
  const touches =
    sig[VSS.soc] !== undefined ||
    sig[VSS.isCharging] !== undefined ||
    sig[VSS.chargePortType] !== undefined ||
    state.fullSince !== undefined;
  if (!touches) return { state, events: NONE };

  const cfg = ctx.config;
  const soc = num(ctx.latest[VSS.soc]);
  const charging = ctx.latest[VSS.isCharging] === true;
  const dcNow = ctx.latest[VSS.chargePortType] === 'DC';
  if (quiet(state, soc, charging, dcNow, cfg)) return { state, events: NONE };
  const s: ChargingState = { ...state };
  const events: RuleEvent[] = [];
  const ts = r.ts;

  // Session derivation: IsCharging false -> true -> false.
  if (charging && !state.charging) {
    // SOC not known yet: -1 until the first value arrives, so the energy is not overstated.
    const startSoc = soc ?? -1;
    s.session = { start: ts, startSoc, lastSoc: startSoc, dc: dcNow };
    if (s.fullSince !== undefined) judgeDwell(s, false);
    // Plugged in: the low-charge situation is being dealt with.
    if (s.openLow) events.push({ type: 'resolve', dedupKey: s.openLow, ts, reason: 'charging' });
    if (s.openCritical) events.push({ type: 'resolve', dedupKey: s.openCritical, ts, reason: 'charging' });
    s.openLow = undefined;
    s.openCritical = undefined;
  } else if (charging && state.session) {
    if (soc !== state.session.lastSoc || (dcNow && !state.session.dc)) {
      const startSoc = state.session.startSoc < 0 && soc !== undefined ? soc : state.session.startSoc;
      s.session = { ...state.session, startSoc, lastSoc: soc ?? state.session.lastSoc, dc: state.session.dc || dcNow };
    }
  } else if (!charging && state.charging && state.session) {
    endSession(s, state.session, ts, soc, ctx, events);
    s.session = undefined;
    evaluateHabit(s, ts, ctx, events);
  }
  s.charging = charging;

  // "Left at 100 % for hours": judged when it drives off / drains, or once the dwell has passed.
  if (!charging && s.fullSince !== undefined && state.fullSince !== undefined) {
    const dwellMs = cfg.habit.fullDwellHours * HOUR;
    const drove = isDriving(ctx.latest);
    const drained = soc !== undefined && soc < cfg.habit.fullSocPct - 2;
    if (ts - s.fullSince >= dwellMs) {
      judgeDwell(s, true);
      evaluateHabit(s, ts, ctx, events);
    } else if (drove || drained) {
      judgeDwell(s, false);
    }
  }

  if (soc !== undefined) {
    if (soc > cfg.rearmSocPct && (!s.lowArmed || !s.criticalArmed)) {
      s.lowArmed = true;
      s.criticalArmed = true;
      s.episode = state.episode + 1;
    }
    if (!charging) {
      if (soc < cfg.criticalSocPct && s.criticalArmed) {
        const key = `${ctx.vin}:charging.critical_soc:${s.episode}`;
        events.push({ type: 'open', prompt: socPrompt('charging.critical_soc', key, soc, ts, ctx) });
        if (s.openLow) events.push({ type: 'resolve', dedupKey: s.openLow, ts, reason: 'escalated' });
        s.openLow = undefined;
        s.openCritical = key;
        s.criticalArmed = false;
        s.lowArmed = false;
      } else if (soc < cfg.lowSocPct && s.lowArmed) {
        const key = `${ctx.vin}:charging.low_soc:${s.episode}`;
        events.push({ type: 'open', prompt: socPrompt('charging.low_soc', key, soc, ts, ctx) });
        s.openLow = key;
        s.lowArmed = false;
      }
    }
  }
  return { state: s, events: events.length ? events : NONE };
}

/** The fleet clock completes a full-dwell when a parked, full car sends nothing more. */
function onTick(state: ChargingState, now: number, ctx: Ctx): DetectorResult<ChargingState> {
  if (state.fullSince === undefined || state.charging) return { state, events: NONE };
  if (now - state.fullSince < ctx.config.habit.fullDwellHours * HOUR) return { state, events: NONE };
  const s: ChargingState = { ...state };
  const events: RuleEvent[] = [];
  judgeDwell(s, true);
  evaluateHabit(s, state.fullSince + ctx.config.habit.fullDwellHours * HOUR, ctx, events);
  return { state: s, events: events.length ? events : NONE };
}

export const chargingDetector: Detector<ChargingState, ChargingConfig> = {
  family: 'charging',
  initial: () => ({ lowArmed: true, criticalArmed: true, episode: 0, charging: false, sessions: [], habitFired: {} }),
  onReading,
  onTick,
};
