// Piscina worker: runs one lane (a batch of vehicles) through the engine. Small on purpose:
// the readings arrive packed in a transferred buffer, the results leave as one JSON string.
import { SIGNALS, SIGNAL_PATHS } from '../proto/signals.js';
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
  /** packLane() output: readings in a transferred buffer, the rest as a small JSON string. */
  lane: PackedLane;
}

export interface LaneTaskResult {
  /** JSON of EngineResult[], in the lane's item order. */
  results: string;
  /** Time the worker spent unpacking / running the engine / packing (ms). */
  unpackMs: number;
  engineMs: number;
  packMs: number;
}

/**
 * A lane's readings as float64s: per reading ts, signal count, (path index, encoded value)
 * pairs, DTC-list index or -1. Enums travel as their index, booleans as 0/1; anything the table
 * does not describe goes to `extras` by name. Everything else (VINs, states, profiles, DTC
 * lists) is one JSON string. No per-reading objects are cloned across the thread boundary.
 */
export interface PackedLane {
  buf: ArrayBuffer;
  /** Number of float64s used in buf. */
  length: number;
  meta: string;
}

interface LaneMeta {
  items: [vin: string, state: VehicleRuleState | 0, profile: Vehicle | 0, tick: 0 | 1, records: ServiceRecord[] | 0, readings: number][];
  dtcs: string[][];
  /** [reading number in the lane, signal name, value] for signals outside the table. */
  extras: [number, string, unknown][];
}

const PATH_INDEX: Record<string, number> = Object.fromEntries(SIGNAL_PATHS.map((p, i) => [p, i]));
const KIND = SIGNAL_PATHS.map((p) => SIGNALS[p].kind);
const ENUM_VALUES = SIGNAL_PATHS.map((p) => (SIGNALS[p].values ?? []) as readonly string[]);

/** The value as a float64, or NaN when it does not fit the table (then it travels by name). */
function encodeValue(idx: number, v: unknown): number {
  const kind = KIND[idx];
  if (kind === 'number') return typeof v === 'number' ? v : Number.NaN;
  if (kind === 'boolean') return v === true ? 1 : v === false ? 0 : Number.NaN;
  const i = typeof v === 'string' ? ENUM_VALUES[idx].indexOf(v) : -1;
  return i >= 0 ? i : Number.NaN;
}

function decodeValue(idx: number, x: number): unknown {
  const kind = KIND[idx];
  if (kind === 'number') return x;
  if (kind === 'boolean') return x === 1;
  return ENUM_VALUES[idx][x];
}

export function packLane(items: LaneItem[]): PackedLane {
  let size = 0;
  for (const it of items) {
    for (const r of it.readings) {
      size += 3;
      for (const _k in r.signals) size += 2;
    }
  }
  const f = new Float64Array(Math.max(1, size));
  const meta: LaneMeta = { items: new Array(items.length), dtcs: [], extras: [] };
  let o = 0;
  let ri = 0;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    for (const r of it.readings) {
      const sig = r.signals as Record<string, unknown>;
      f[o++] = r.ts;
      const countAt = o++;
      let n = 0;
      for (const k in sig) {
        const idx = PATH_INDEX[k];
        const v = sig[k];
        const x = idx === undefined ? Number.NaN : encodeValue(idx, v);
        if (x === x) {
          f[o++] = idx;
          f[o++] = x;
          n++;
        } else {
          meta.extras.push([ri, k, v]);
        }
      }
      f[countAt] = n;
      f[o++] = r.dtcs ? meta.dtcs.push(r.dtcs) - 1 : -1;
      ri++;
    }
    meta.items[i] = [it.vin, it.state ?? 0, it.profile ?? 0, it.tick ? 1 : 0, it.serviceRecords ?? 0, it.readings.length];
  }
  return { buf: f.buffer, length: o, meta: JSON.stringify(meta) };
}

export function unpackLane(lane: PackedLane): LaneItem[] {
  const meta = JSON.parse(lane.meta) as LaneMeta;
  const f = new Float64Array(lane.buf, 0, lane.length);
  const extras = new Map<number, [string, unknown][]>();
  for (const [ri, k, v] of meta.extras) {
    const list = extras.get(ri);
    if (list) list.push([k, v]);
    else extras.set(ri, [[k, v]]);
  }
  let o = 0;
  let ri = 0;
  return meta.items.map(([vin, state, profile, tick, records, count]) => {
    const readings: Reading[] = new Array(count);
    for (let j = 0; j < count; j++) {
      const ts = f[o++];
      const n = f[o++];
      const signals: Record<string, unknown> = {};
      for (let s = 0; s < n; s++) {
        const idx = f[o++];
        signals[SIGNAL_PATHS[idx]] = decodeValue(idx, f[o++]);
      }
      if (extras.size) {
        const extra = extras.get(ri);
        if (extra) for (const [k, v] of extra) signals[k] = v;
      }
      const d = f[o++];
      const r: Reading = { vin, ts, signals: signals as Reading['signals'] };
      if (d >= 0) r.dtcs = meta.dtcs[d];
      readings[j] = r;
      ri++;
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
  const items = unpackLane(task.lane);
  const t1 = performance.now();
  const now = task.now;
  const clock: FleetClock = { now: () => now };
  const results = items.map((it) => runItem(cached!.engine, it, clock));
  const t2 = performance.now();
  const text = JSON.stringify(results);
  const t3 = performance.now();
  return { results: text, unpackMs: t1 - t0, engineMs: t2 - t1, packMs: t3 - t2 };
}
