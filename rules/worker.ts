// Piscina worker: runs one lane (a batch of vehicles) through the engine. Small on purpose:
// the task is a compact JSON string (signal paths replaced by indices), the result one string.
import { SIGNAL_PATHS } from '../proto/signals.js';
import type { RulesConfig } from './config.js';
import { createEngine, type Engine } from './engine.js';
import type { EngineResult, FleetClock, Reading, ServiceRecord, Vehicle, VehicleRuleState } from './types.js';

/** One vehicle's work in a run(). */
export interface LaneItem {
  vin: string;
  state?: VehicleRuleState;
  profile?: Vehicle;
  readings: Reading[];
  serviceRecords?: ServiceRecord[];
  tick?: boolean;
}

export interface LaneTask {
  configVersion: number;
  /** JSON of the RulesConfig; parsed once per version per worker. */
  config: string;
  now: number;
  /** packLane() output. */
  items: string;
}

export interface LaneTaskResult {
  /** JSON of EngineResult[], in the lane's item order. */
  results: string;
  /** Time the worker spent unpacking / running the engine / packing (ms). */
  unpackMs: number;
  engineMs: number;
  packMs: number;
}

const PATH_INDEX = new Map<string, number>(SIGNAL_PATHS.map((p, i) => [p, i]));

type PackedItem = [vin: string, state: VehicleRuleState | 0, profile: Vehicle | 0, tick: 0 | 1, records: ServiceRecord[] | 0, flat: unknown[]];

/**
 * Readings as one flat array: ts, signal count, then (path index | unknown path name, value)
 * pairs, then the DTC list or 0. The long VSS path names would otherwise dominate the payload.
 */
export function packLane(items: LaneItem[]): string {
  const out: PackedItem[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    const flat: unknown[] = [];
    for (const r of it.readings) {
      const sig = r.signals as Record<string, unknown>;
      flat.push(r.ts, 0);
      const countAt = flat.length - 1;
      let n = 0;
      for (const k in sig) {
        flat.push(PATH_INDEX.get(k) ?? k, sig[k]);
        n++;
      }
      flat[countAt] = n;
      flat.push(r.dtcs ?? 0);
    }
    out[i] = [it.vin, it.state ?? 0, it.profile ?? 0, it.tick ? 1 : 0, it.serviceRecords ?? 0, flat];
  }
  return JSON.stringify(out);
}

export function unpackLane(text: string): LaneItem[] {
  const packed = JSON.parse(text) as PackedItem[];
  return packed.map(([vin, state, profile, tick, records, flat]) => {
    const readings: Reading[] = [];
    for (let i = 0; i < flat.length; ) {
      const ts = flat[i++] as number;
      const n = flat[i++] as number;
      const signals: Record<string, unknown> = {};
      for (let j = 0; j < n; j++) {
        const k = flat[i++];
        signals[typeof k === 'number' ? SIGNAL_PATHS[k] : (k as string)] = flat[i++];
      }
      const dtcs = flat[i++];
      const r: Reading = { vin, ts, signals: signals as Reading['signals'] };
      if (Array.isArray(dtcs)) r.dtcs = dtcs as string[];
      readings.push(r);
    }
    const item: LaneItem = { vin, readings };
    if (state) item.state = state;
    if (profile) item.profile = profile;
    if (tick) item.tick = true;
    if (records) item.serviceRecords = records;
    return item;
  });
}

/** The same sequence for a vehicle everywhere: service records, then readings, then the sweep. */
export function runItem(engine: Engine, item: LaneItem, clock: FleetClock): EngineResult {
  let state = item.state;
  const events: EngineResult['events'] = [];
  const failures: EngineResult['failures'] = [];
  const take = (r: EngineResult) => {
    state = r.state;
    for (const e of r.events) events.push(e);
    for (const f of r.failures) failures.push(f);
  };
  for (const rec of item.serviceRecords ?? []) take(engine.onServiceRecord(state, item.vin, item.profile, rec, clock));
  if (item.readings.length || !state) take(engine.onReadings(state, item.vin, item.profile, item.readings, clock));
  if (item.tick) take(engine.onTick(state, item.vin, item.profile, clock));
  return { state: state!, events, failures };
}

let cached: { version: number; engine: Engine } | undefined;

export function process(task: LaneTask): LaneTaskResult {
  if (!cached || cached.version !== task.configVersion) {
    cached = { version: task.configVersion, engine: createEngine(JSON.parse(task.config) as RulesConfig) };
  }
  const t0 = performance.now();
  const items = unpackLane(task.items);
  const t1 = performance.now();
  const now = task.now;
  const clock: FleetClock = { now: () => now };
  const results = items.map((it) => runItem(cached!.engine, it, clock));
  const t2 = performance.now();
  const text = JSON.stringify(results);
  const t3 = performance.now();
  return { results: text, unpackMs: t1 - t0, engineMs: t2 - t1, packMs: t3 - t2 };
}
