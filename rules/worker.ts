// Piscina worker: runs one lane (a batch of vehicles) through the engine. Small on purpose:
// the readings arrive packed in a transferred buffer (rules/lane.ts), the results leave as one
// JSON string, each new state as its own JSON text (what the store keeps: main never parses it).
// Each lane has its own worker (rules/pool.ts), which keeps the states it produced, so main sends
// a vehicle's state only when this worker may not hold the committed one.
import type { RulesConfig } from './config.js';
import { createEngine, type Engine } from './engine.js';
import { LaneReader, type LaneItem, type PackedLane } from './lane.js';
import type { EngineResult, FleetClock, Vehicle, VehicleRuleState } from './types.js';

export { LaneReader, packLane, unpackLane, type LaneItem, type PackItem, type PackedLane } from './lane.js';

export interface LaneTask {
  configVersion: number;
  /** JSON of the RulesConfig; parsed once per version per worker. */
  config: string;
  now: number;
  /** packLane() output: readings in a transferred buffer, the rest as a small JSON string. */
  lane: PackedLane;
  /** Item i's new state is held under token firstToken + i (main's counter, unique per pool). */
  firstToken: number;
}

/** An item's result but its state, which travels as its own text (`LaneTaskResult.states`). */
export interface LaneItemResult {
  events: EngineResult['events'];
  failures: EngineResult['failures'];
  latest: VehicleRuleState['latest'];
}

export interface LaneTaskResult {
  /** JSON of each item's events, failures and new latest signals (`LaneItemResult`), in lane order. */
  results: string;
  /** Each item's new state as JSON text (its journalId set when the item had one), in lane order. */
  states: string[];
  /**
   * Items whose pinned state or profile this worker does not hold (it restarted, or the entry is
   * another run's): nothing was run, main sends the lane again with those in full.
   */
  missing?: number[];
  /** Time the worker spent unpacking / running the engine / packing the rest (ms). */
  unpackMs: number;
  engineMs: number;
  packMs: number;
  /** Time spent serialising the new states: the store's work, done here instead of on main (ms). */
  stateJsonMs: number;
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
  // the engine makes each new state without it (rules/engine.ts Run); ingest's replay check reads it
  if (item.journalId !== undefined) state!.journalId = item.journalId;
  return { state: state!, events, failures };
}

let cached: { version: number; engine: Engine } | undefined;

/** What this worker produced per VIN: the state and the profile it was run with, by token. */
interface Held {
  token: number;
  state: VehicleRuleState;
  profile: Vehicle | undefined;
}
const held = new Map<string, Held>();
/** Bound on memory; an entry dropped is only a re-send (reported missing), never a wrong state. */
const HELD_MAX = 100_000;
const holds = (vin: string, expect: number): boolean => held.get(vin)?.token === expect;

export function process(task: LaneTask): LaneTaskResult {
  if (!cached || cached.version !== task.configVersion) {
    cached = { version: task.configVersion, engine: createEngine(JSON.parse(task.config) as RulesConfig) };
  }
  const t0 = performance.now();
  const reader = new LaneReader(task.lane);
  const missing = reader.missing(holds);
  if (missing.length) return { results: '', states: [], missing, unpackMs: performance.now() - t0, engineMs: 0, packMs: 0, stateJsonMs: 0 };
  let unpackMs = performance.now() - t0;
  let engineMs = 0;
  const now = task.now;
  const clock: FleetClock = { now: () => now };
  const results: EngineResult[] = new Array(reader.count);
  // not the items: their readings are to die young (LaneReader)
  const vins: string[] = new Array(reader.count);
  const profiles: (Vehicle | undefined)[] = new Array(reader.count);
  for (let i = 0; i < results.length; i++) {
    const ta = performance.now();
    const item = reader.read()!;
    if (item.pin) {
      // checked above; entries change only after the whole lane has run (below)
      const h = held.get(item.vin)!;
      if (item.pin.state) item.state = h.state;
      if (item.pin.profile) item.profile = h.profile;
      delete item.pin;
    }
    vins[i] = item.vin;
    profiles[i] = item.profile;
    const tb = performance.now();
    results[i] = runItem(cached.engine, item, clock);
    unpackMs += tb - ta;
    engineMs += performance.now() - tb;
  }
  const t2 = performance.now();
  const states: string[] = new Array(results.length);
  for (let i = 0; i < results.length; i++) states[i] = JSON.stringify(results[i].state);
  const t3 = performance.now();
  const rest: LaneItemResult[] = new Array(results.length);
  for (let i = 0; i < results.length; i++)
    rest[i] = { events: results[i].events, failures: results[i].failures, latest: results[i].state.latest };
  const text = JSON.stringify(rest);
  // only once the whole lane ran: a lane that throws leaves every entry as it was
  for (let i = 0; i < vins.length; i++) {
    const vin = vins[i];
    held.delete(vin); // re-inserted last: the oldest entry is the one dropped when over the bound
    held.set(vin, { token: task.firstToken + i, state: results[i].state, profile: profiles[i] });
  }
  for (const vin of held.keys()) {
    if (held.size <= HELD_MAX) break;
    held.delete(vin);
  }
  return { results: text, states, unpackMs, engineMs, packMs: performance.now() - t3, stateJsonMs: t3 - t2 };
}
