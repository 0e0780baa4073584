// The rules engine: runs the detectors in a fixed order over a vehicle's readings, each behind
// its own try/catch, and keeps the vehicle's JSON rule state. Pure: no I/O, no Date.now().
import { VSS } from '../proto/signals.js';
import { resolveModelConfig, type FamilyConfigs, type RulesConfig } from './config.js';
import { DEFAULT_DETECTORS } from './detectors/index.js';
import type {
  Detector,
  DetectorContext,
  DetectorFailure,
  DetectorResult,
  EngineResult,
  Family,
  FleetClock,
  Reading,
  RuleEvent,
  Segments,
  ServiceRecord,
  Signals,
  Vehicle,
  VehicleRuleState,
  VehicleView,
} from './types.js';

export interface Engine {
  onReadings(
    state: VehicleRuleState | undefined,
    vin: string,
    profile: Vehicle | undefined,
    readings: Reading[],
    clock: FleetClock,
  ): EngineResult;
  onTick(state: VehicleRuleState | undefined, vin: string, profile: Vehicle | undefined, clock: FleetClock): EngineResult;
  onServiceRecord(
    state: VehicleRuleState | undefined,
    vin: string,
    profile: Vehicle | undefined,
    record: ServiceRecord,
    clock: FleetClock,
  ): EngineResult;
}

export function initialVehicleState(vin: string): VehicleRuleState {
  return { vin, lastTs: 0, latest: {}, latestTs: 0, activeDtcs: [], families: {} };
}

function isSegments(v: unknown): v is Segments {
  const s = v as Segments | undefined;
  return !!s && typeof s === 'object' && typeof s.stage === 'string' && typeof s.activity === 'string' && typeof s.maturity === 'string';
}

function byTs(a: Reading, b: Reading): number {
  return a.ts - b.ts;
}

function sorted(readings: Reading[]): Reading[] {
  // NaN timestamps compare false and are skipped by the caller; a bad entry must not throw here.
  for (let i = 1; i < readings.length; i++)
    if (!(readings[i]?.ts >= readings[i - 1]?.ts)) return readings.filter((r) => r && Number.isFinite(r.ts)).sort(byTs);
  return readings;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** One run over one vehicle: a working copy of its state plus the shared per-run context. */
class Run {
  readonly state: VehicleRuleState;
  readonly events: RuleEvent[] = [];
  readonly failures: DetectorFailure[] = [];
  readonly view: VehicleView;
  readonly ctx: DetectorContext;
  private readonly failed = new Set<string>();

  constructor(
    prev: VehicleRuleState | undefined,
    vin: string,
    profile: Vehicle | undefined,
    private readonly configs: FamilyConfigs,
    clock: FleetClock,
  ) {
    const p = prev ?? initialVehicleState(vin);
    // A stored state from an older version may lack fields: normalise rather than crash.
    this.state = {
      vin,
      lastTs: Number.isFinite(p.lastTs) ? p.lastTs : 0,
      latest: { ...p.latest },
      latestTs: Number.isFinite(p.latestTs) ? p.latestTs : 0,
      activeDtcs: Array.isArray(p.activeDtcs) ? p.activeDtcs : [],
      families: { ...p.families },
    };
    this.view = { activeDtcs: this.state.activeDtcs };
    this.refreshView();
    this.ctx = { vin, profile, config: undefined, clock, latest: this.state.latest, activeDtcs: this.state.activeDtcs, view: this.view };
  }

  refreshView(): void {
    const l = this.state.latest;
    const v = this.view;
    v.activeDtcs = this.state.activeDtcs;
    const volt = l[VSS.voltage12v];
    const soh = l[VSS.soh];
    const odo = l[VSS.odometer];
    if (typeof volt === 'number') v.lastVoltage12v = volt;
    if (typeof soh === 'number') v.lastSoh = soh;
    if (typeof odo === 'number') v.odometer = odo;
    const usage = this.state.families.usage as { segments?: unknown } | undefined;
    if (usage && isSegments(usage.segments)) v.segments = usage.segments;
  }

  /** The hot path: one reading through one detector (same isolation as step()). */
  reading(d: Detector, r: Reading): void {
    const fam = d.family;
    const st = this.state;
    try {
      const ctx = this.ctx;
      ctx.config = this.configs[fam];
      ctx.activeDtcs = st.activeDtcs;
      const res = d.onReading(fam in st.families ? st.families[fam] : d.initial(), r, ctx);
      st.families[fam] = res.state;
      const ev = res.events;
      for (let i = 0; i < ev.length; i++) this.events.push(ev[i]);
    } catch (err) {
      this.fail(fam, err);
    }
  }

  private fail(fam: Family, err: unknown): void {
    if (this.failed.has(fam)) return;
    this.failed.add(fam);
    this.failures.push({ family: fam, vin: this.state.vin, message: errorMessage(err) });
  }

  /** Run one detector step; a throw is recorded once per family and the family's state is kept. */
  step(d: Detector, kind: 'reading' | 'tick' | 'service', arg: Reading | ServiceRecord | number): void {
    const fam = d.family;
    const st = this.state;
    try {
      const prev = fam in st.families ? st.families[fam] : d.initial();
      const ctx = this.ctx;
      ctx.config = this.configs[fam];
      ctx.activeDtcs = st.activeDtcs;
      let res: DetectorResult<unknown> | undefined;
      if (kind === 'reading') res = d.onReading(prev, arg as Reading, ctx);
      else if (kind === 'tick') res = d.onTick?.(prev, arg as number, ctx);
      else res = d.onServiceRecord?.(prev, arg as ServiceRecord, ctx);
      if (!res) return;
      st.families[fam] = res.state;
      for (let i = 0; i < res.events.length; i++) this.events.push(res.events[i]);
    } catch (err) {
      this.fail(fam, err);
    }
  }

  /** Apply a reading to latest; returns false for a stale or replayed reading (not run through detectors). */
  apply(r: Reading): boolean {
    const st = this.state;
    const sig: Signals = r.signals ?? {};
    const latest = st.latest as Record<string, unknown>;
    if (!(r.ts > st.lastTs)) {
      // At-least-once delivery replays readings, and late ones must not re-run time-based logic:
      // they may only fill signals never seen before.
      for (const k in sig) if (!(k in latest)) latest[k] = (sig as Record<string, unknown>)[k];
      return false;
    }
    for (const k in sig) latest[k] = (sig as Record<string, unknown>)[k];
    st.lastTs = r.ts;
    st.latestTs = r.ts;
    if (Array.isArray(r.dtcs)) st.activeDtcs = r.dtcs.slice();
    this.refreshView();
    return true;
  }

  result(): EngineResult {
    return { state: this.state, events: this.events, failures: this.failures };
  }
}

export function createEngine(config: RulesConfig, detectors: readonly Detector[] = DEFAULT_DETECTORS): Engine {
  const byModel = new Map<string, FamilyConfigs>();
  const configsFor = (profile: Vehicle | undefined): FamilyConfigs => {
    const model = profile?.model ?? '';
    let c = byModel.get(model);
    if (!c) {
      c = resolveModelConfig(config, profile?.model);
      byModel.set(model, c);
    }
    return c;
  };
  const list = [...detectors];

  return {
    onReadings(state, vin, profile, readings, clock) {
      const run = new Run(state, vin, profile, configsFor(profile), clock);
      const rs = sorted(readings);
      for (let i = 0; i < rs.length; i++) {
        const r = rs[i];
        if (!r || !Number.isFinite(r.ts) || !run.apply(r)) continue;
        for (let j = 0; j < list.length; j++) run.reading(list[j], r);
      }
      return run.result();
    },
    onTick(state, vin, profile, clock) {
      const run = new Run(state, vin, profile, configsFor(profile), clock);
      const now = clock.now();
      for (const d of list) if (d.onTick) run.step(d, 'tick', now);
      return run.result();
    },
    onServiceRecord(state, vin, profile, record, clock) {
      const run = new Run(state, vin, profile, configsFor(profile), clock);
      for (const d of list) if (d.onServiceRecord) run.step(d, 'service', record);
      return run.result();
    },
  };
}
