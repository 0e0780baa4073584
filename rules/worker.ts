// Piscina worker: runs one lane (a batch of vehicles) through the engine. Small on purpose:
// the readings arrive packed in a transferred buffer (rules/lane.ts), the results leave as one
// JSON string.
import type { RulesConfig } from './config.js';
import { createEngine, type Engine } from './engine.js';
import { LaneReader, type LaneItem, type PackedLane } from './lane.js';
import type { EngineResult, FleetClock } from './types.js';

export { LaneReader, packLane, unpackLane, type LaneItem, type PackedLane } from './lane.js';

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
  const reader = new LaneReader(task.lane);
  let unpackMs = performance.now() - t0;
  let engineMs = 0;
  const now = task.now;
  const clock: FleetClock = { now: () => now };
  const results: EngineResult[] = new Array(reader.count);
  for (let i = 0; i < results.length; i++) {
    const ta = performance.now();
    const item = reader.read()!;
    const tb = performance.now();
    results[i] = runItem(cached.engine, item, clock);
    unpackMs += tb - ta;
    engineMs += performance.now() - tb;
  }
  const t2 = performance.now();
  const text = JSON.stringify(results);
  const t3 = performance.now();
  return { results: text, unpackMs, engineMs, packMs: t3 - t2 };
}
