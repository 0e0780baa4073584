// battery.low_voltage_12v (parked, debounced, hysteresis) and battery.soh_degraded
// (below a threshold, or below the model's expected ageing curve).
import { VSS, isParked } from '../../proto/signals.js';
import type { BatteryConfig } from '../config/battery.js';
import { isoDateMs } from '../time.js';
import type { Detector, DetectorContext, DetectorResult, Reading, RuleEvent } from '../types.js';

const NONE = Object.freeze([]) as unknown as RuleEvent[];
const MINUTE = 60_000;
const YEAR = 365.25 * 24 * 3_600_000;

export interface BatteryState {
  /** Consecutive parked readings below the 12 V threshold, and when that run began. */
  lvBelow: number;
  lvSince?: number;
  lvOpen?: string;
  lvEpisode: number;
  sohBelowOpen?: string;
  sohCurveOpen?: string;
  sohEpisode: number;
}

type Ctx = DetectorContext<BatteryConfig>;

function lowVoltage(
  state: BatteryState,
  s: BatteryState | undefined,
  v: number,
  r: Reading,
  ctx: Ctx,
  events: RuleEvent[],
): BatteryState | undefined {
  const cfg = ctx.config.lowVoltage12v;
  // Under load or charging from the alternator the voltage says nothing about a no-start risk.
  if (!isParked(ctx.latest)) {
    if (state.lvBelow === 0) return s;
    return { ...(s ?? state), lvBelow: 0, lvSince: undefined };
  }
  if (v < cfg.thresholdV) {
    const out = { ...(s ?? state) };
    out.lvBelow = state.lvBelow + 1;
    out.lvSince = state.lvSince ?? r.ts;
    if (!state.lvOpen && (out.lvBelow >= cfg.consecutiveReadings || r.ts - out.lvSince >= cfg.minutes * MINUTE)) {
      out.lvEpisode = state.lvEpisode + 1;
      out.lvOpen = `${ctx.vin}:battery.low_voltage_12v:${out.lvEpisode}`;
      events.push({
        type: 'open',
        prompt: {
          kind: 'battery.low_voltage_12v',
          dedupKey: out.lvOpen,
          severity: 'warning',
          audience: ['hmi', 'advisor'],
          urgent: false,
          ts: r.ts,
          evidence: { voltage: v, since: out.lvSince, readingsBelow: out.lvBelow, thresholdV: cfg.thresholdV, parked: true },
          params: { voltage: Math.round(v * 100) / 100, thresholdV: cfg.thresholdV },
          value: 70,
        },
      });
    }
    return out;
  }
  if (state.lvBelow === 0 && !(state.lvOpen && v > cfg.recoverV)) return s;
  const out: BatteryState = { ...(s ?? state), lvBelow: 0, lvSince: undefined };
  if (state.lvOpen && v > cfg.recoverV) {
    events.push({ type: 'resolve', dedupKey: state.lvOpen, ts: r.ts, reason: 'voltage_recovered' });
    out.lvOpen = undefined;
  }
  return out;
}

/** The model's expected SOH at this time (100 % at delivery, linear decline). */
export function expectedSoh(deliveryDate: string | undefined, ts: number, cfg: BatteryConfig): number | undefined {
  if (!deliveryDate) return undefined;
  // parsed once per date string (rules/time.ts): this runs on every reading that carries SOH
  const delivered = isoDateMs(deliveryDate);
  if (!Number.isFinite(delivered) || ts <= delivered) return undefined;
  return 100 - cfg.soh.expectedDeclinePctPerYear * ((ts - delivered) / YEAR);
}

function sohDegraded(
  state: BatteryState,
  s: BatteryState | undefined,
  soh: number,
  r: Reading,
  ctx: Ctx,
  events: RuleEvent[],
): BatteryState | undefined {
  const cfg = ctx.config.soh;
  const expected = expectedSoh(ctx.profile?.deliveryDate, r.ts, ctx.config);
  const curveFloor = expected === undefined ? undefined : expected - cfg.curveMarginPct;
  const below = soh < cfg.thresholdPct;
  const underCurve = curveFloor !== undefined && soh < curveFloor;
  let out = s;
  const edit = () => (out ??= { ...state });

  if (state.sohBelowOpen && soh >= cfg.thresholdPct + cfg.hysteresisPct) {
    events.push({ type: 'resolve', dedupKey: state.sohBelowOpen, ts: r.ts, reason: 'soh_recovered' });
    edit().sohBelowOpen = undefined;
  }
  if (state.sohCurveOpen && (curveFloor === undefined || soh >= curveFloor + cfg.hysteresisPct)) {
    events.push({ type: 'resolve', dedupKey: state.sohCurveOpen, ts: r.ts, reason: 'soh_recovered' });
    edit().sohCurveOpen = undefined;
  }
  // One prompt per situation; falling under 80 % matters (warranty) even after a curve prompt.
  let reason: 'below_threshold' | 'faster_than_expected' | undefined;
  if (below && !state.sohBelowOpen) reason = 'below_threshold';
  else if (underCurve && !below && !state.sohCurveOpen && !state.sohBelowOpen) reason = 'faster_than_expected';
  if (!reason) return out;
  const o = edit();
  o.sohEpisode = state.sohEpisode + 1;
  const key = `${ctx.vin}:battery.soh_degraded:${reason}:${o.sohEpisode}`;
  if (reason === 'below_threshold') o.sohBelowOpen = key;
  else o.sohCurveOpen = key;
  const expectedPct = expected === undefined ? undefined : Math.round(expected * 10) / 10;
  events.push({
    type: 'open',
    prompt: {
      kind: 'battery.soh_degraded',
      dedupKey: key,
      severity: 'warning',
      audience: ['advisor', 'lifecycle'],
      urgent: false,
      ts: r.ts,
      evidence: { soh, thresholdPct: cfg.thresholdPct, expectedPct, curveMarginPct: cfg.curveMarginPct, ts: r.ts },
      params: {
        soh: Math.round(soh * 10) / 10,
        reason,
        thresholdPct: cfg.thresholdPct,
        ...(expectedPct !== undefined ? { expectedPct } : {}),
      },
      value: 50,
    },
  });
  return out;
}

function onReading(state: BatteryState, r: Reading, ctx: Ctx): DetectorResult<BatteryState> {
  // Only fresh measurements count: latest values would re-count an old reading.
  const v = r.signals[VSS.voltage12v];
  const soh = r.signals[VSS.soh];
  if (typeof v !== 'number' && typeof soh !== 'number') return { state, events: NONE };
  const events: RuleEvent[] = [];
  let s: BatteryState | undefined;
  if (typeof v === 'number') s = lowVoltage(state, s, v, r, ctx, events);
  if (typeof soh === 'number' && ctx.profile?.powertrain !== 'ICE') s = sohDegraded(s ?? state, s, soh, r, ctx, events);
  return { state: s ?? state, events: events.length ? events : NONE };
}

export const batteryDetector: Detector<BatteryState, BatteryConfig> = {
  family: 'battery',
  initial: () => ({ lvBelow: 0, lvEpisode: 0, sohEpisode: 0 }),
  onReading,
};
