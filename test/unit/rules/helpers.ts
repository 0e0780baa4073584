// Shared builders for the rules unit tests.
import { expect } from 'vitest';
import { VSS } from '../../../proto/signals.js';
import { DEFAULT_RULES_CONFIG, resolveModelConfig, type FamilyConfigs } from '../../../rules/config.js';
import type { PoolResult } from '../../../rules/pool.js';
import { parseState } from '../../../rules/state-json.js';
import type {
  Detector,
  DetectorContext,
  EngineResult,
  FleetClock,
  Reading,
  RuleEvent,
  Signals,
  Vehicle,
  PromptDraft,
} from '../../../rules/types.js';

export const VIN = 'LSVAB4BR0NN123456';
export const T0 = Date.parse('2026-03-01T08:00:00Z');
export const MIN = 60_000;
export const HOUR = 60 * MIN;
export const DAY = 24 * HOUR;

export const clockAt = (t: number): FleetClock => ({ now: () => t });

/** The pool agrees with the in-thread engine: states (parsed from their text), events, failures; and each `latest` is its state's. */
export function expectSameAsEngine(got: readonly PoolResult[], want: readonly EngineResult[]): void {
  expect(got.map(({ state, events, failures }) => ({ state: parseState(state), events, failures }))).toEqual(
    JSON.parse(JSON.stringify(want)),
  );
  for (const r of got) expect(r.latest).toEqual(parseState(r.state).latest);
}

export function profile(over: Partial<Vehicle> = {}): Vehicle {
  return {
    vin: VIN,
    model: 'Aurora',
    powertrain: 'BEV',
    deliveryDate: '2025-03-01',
    dealerId: 'D001',
    locale: 'en',
    vehicleType: 'passenger',
    ...over,
  };
}

export function reading(ts: number, signals: Signals, dtcs?: string[]): Reading {
  const r: Reading = { vin: VIN, ts, signals };
  if (dtcs) r.dtcs = dtcs;
  return r;
}

export const soc = (v: number, charging = false, extra: Signals = {}): Signals => ({
  [VSS.soc]: v,
  [VSS.isCharging]: charging,
  ...extra,
});

/**
 * Drive one detector through readings the way the engine does (latest merged in), collecting
 * its events; returns the final state too.
 */
export function drive<S, C>(
  det: Detector<S, C>,
  readings: Reading[],
  opts: { family: keyof FamilyConfigs; configs?: FamilyConfigs; profile?: Vehicle; state?: S; latest?: Signals },
): { state: S; events: RuleEvent[]; latest: Signals } {
  const configs = opts.configs ?? resolveModelConfig(DEFAULT_RULES_CONFIG, opts.profile?.model);
  let state = opts.state ?? det.initial();
  const latest: Signals = { ...(opts.latest ?? {}) };
  const events: RuleEvent[] = [];
  for (const r of readings) {
    Object.assign(latest, r.signals);
    const ctx: DetectorContext<C> = {
      vin: VIN,
      profile: opts.profile,
      config: configs[opts.family] as C,
      clock: clockAt(r.ts),
      latest,
      activeDtcs: r.dtcs ?? [],
      view: { activeDtcs: r.dtcs ?? [] },
    };
    const res = det.onReading(state, r, ctx);
    state = res.state;
    events.push(...res.events);
  }
  return { state, events, latest };
}

export function opened(events: RuleEvent[], kind?: string): PromptDraft[] {
  return events.flatMap((e) => (e.type === 'open' && (!kind || e.prompt.kind === kind) ? [e.prompt] : []));
}

export function resolved(events: RuleEvent[]): string[] {
  return events.flatMap((e) => (e.type === 'resolve' ? [e.dedupKey] : []));
}
