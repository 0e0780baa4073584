// The rules worker pool: one lane per worker thread (a Piscina of one thread each), vehicles
// sharded into lanes by VIN hash, one task per lane per run(). The caller serialises runs per
// VIN, so each vehicle's readings are applied in order. A lane whose worker fails is run in this
// thread instead (counted).
//
// Vehicle state is pinned to its lane's worker: the worker keeps each state it produced under a
// token, and main sends a state only when the worker may not hold exactly that one (first run,
// a commit rolled back, a state loaded from the store, a fallback run); otherwise only the
// readings cross. The worker checks the token and reports what it lacks (it restarted, or it
// dropped the entry), and main sends those in full in the same run().
//
// States cross as JSON text both ways (RuleStateJson): the worker serialises each new state once,
// main keeps that text and the store writes it as it is; the object graph lives in the worker.
import type { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { distModule } from '../proto/paths.js';
import type { RulesConfig } from './config.js';
import { createEngine, type Engine } from './engine.js';
import type { LanePin } from './lane.js';
import { parseState, toStateJson } from './state-json.js';
import type { DetectorFailure, FleetClock, RuleEvent, RuleStateJson, Signals, Vehicle } from './types.js';
import { packLane, runItem, type LaneItemResult, type LaneTask, type LaneTaskResult, type PackItem } from './worker.js';

/** One vehicle's work in a run(): its committed state as JSON text, and the journal id it applies up to. */
export type PoolItem = PackItem;

/**
 * A vehicle's outcome: its new state as JSON text (journalId set from the item), events, failures,
 * and the state's latest signals as an object (what main reads of a state between runs).
 */
export interface PoolResult {
  state: RuleStateJson;
  latest: Signals;
  events: RuleEvent[];
  failures: DetectorFailure[];
}

/** FNV-1a: a stable, cheap hash so a VIN always lands in the same lane. */
export function vinHash(vin: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < vin.length; i++) {
    h ^= vin.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Time spent on dispatch (packing, messaging, unpacking) vs engine work, for the bench. */
export interface PoolTimings {
  mainPackMs: number;
  mainUnpackMs: number;
  workerUnpackMs: number;
  workerPackMs: number;
  workerEngineMs: number;
  /** The new states' JSON, made in the workers: the store's serialisation, not dispatch. */
  workerStateJsonMs: number;
}

/** How often states and profiles crossed to the workers or stayed with them (bench, tests). */
export interface PinStats {
  statesSent: number;
  statesPinned: number;
  profilesSent: number;
  profilesPinned: number;
  /** Items sent again in full because their worker lacked what main counted on (restart, bound). */
  resent: number;
}

/** A copy of a profile, so a caller changing the object later cannot fake a match. */
function snapshot(p: Vehicle): Vehicle {
  const c = { ...p } as Record<string, unknown>;
  for (const k in c) if (c[k] !== null && typeof c[k] === 'object') c[k] = JSON.parse(JSON.stringify(c[k]));
  return c as unknown as Vehicle;
}

function sameProfile(a: Vehicle, b: Vehicle): boolean {
  const x = a as unknown as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  let n = 0;
  for (const k in x) {
    n++;
    const v = x[k];
    const w = y[k];
    if (v === w) continue;
    if (v === null || w === null || typeof v !== 'object' || typeof w !== 'object' || JSON.stringify(v) !== JSON.stringify(w)) return false;
  }
  for (const _ in y) n--;
  return n === 0;
}

export class RulesPool {
  private readonly workers: Piscina<LaneTask, LaneTaskResult>[];
  private readonly lanes: number;
  private config!: RulesConfig;
  private configJson = '';
  private configVersion = 0;
  private fallback: Engine | undefined;
  private failed = 0;
  /** The token of each state a worker produced (the objects run() returned). */
  private readonly tokens = new WeakMap<RuleStateJson, number>();
  /** Per VIN, what its lane's worker holds as far as this thread knows: token and profile. */
  private readonly held = new Map<string, { token: number; profile: Vehicle | undefined }>();
  private nextToken = 1;
  readonly timings: PoolTimings = {
    mainPackMs: 0,
    mainUnpackMs: 0,
    workerUnpackMs: 0,
    workerPackMs: 0,
    workerEngineMs: 0,
    workerStateJsonMs: 0,
  };
  readonly pins: PinStats = { statesSent: 0, statesPinned: 0, profilesSent: 0, profilesPinned: 0, resent: 0 };

  constructor(opts: { threads: number; config: RulesConfig }) {
    this.lanes = Math.max(1, Math.floor(opts.threads));
    // One Piscina per lane: a lane's tasks always reach the same thread (its states are there);
    // Piscina replaces a thread that dies, and the new one reports its states missing.
    this.workers = Array.from(
      { length: this.lanes },
      () =>
        new Piscina<LaneTask, LaneTaskResult>({
          filename: distModule('rules/worker.js'),
          name: 'process',
          minThreads: 1,
          maxThreads: 1,
          idleTimeout: 60_000,
        }),
    );
    this.setConfig(opts.config);
  }

  /** Lane tasks that failed in a worker (and were run in this thread instead). */
  get failures(): number {
    return this.failed;
  }

  /** The lanes' worker threads (tests stop one to check a restart). */
  get threads(): Worker[] {
    return this.workers.flatMap((w) => w.threads);
  }

  setConfig(c: RulesConfig): void {
    // The pinned states stay valid: a state is data, the same whichever config produced it.
    this.config = c;
    this.configJson = JSON.stringify(c);
    this.configVersion++;
    this.fallback = undefined;
  }

  /** The workers answer: one empty vehicle through the pool within `timeoutMs` (health check). */
  async ping(now: number, timeoutMs = 2000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const run = this.run([{ vin: 'HEALTHCHECK000000', readings: [] }], now).then(
      (r) => r.length === 1,
      () => false,
    );
    try {
      return await Promise.race([run, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Run each item on its state. The states returned are pinned by identity: pass them back
   * unchanged (or a new object for a changed state). An item's `journalId` is written into its
   * new state (the engine itself ignores it).
   */
  async run(items: PoolItem[], now: number): Promise<PoolResult[]> {
    if (items.length === 0) return [];
    const t0 = performance.now();
    const laneItems: PoolItem[][] = Array.from({ length: this.lanes }, () => []);
    const laneIndex: number[][] = Array.from({ length: this.lanes }, () => []);
    for (let i = 0; i < items.length; i++) {
      const lane = this.lanes === 1 ? 0 : vinHash(items[i].vin) % this.lanes;
      laneItems[lane].push(items[i]);
      laneIndex[lane].push(i);
    }
    const tasks: { lane: number; task: LaneTask; pins: (LanePin | undefined)[] }[] = [];
    for (let lane = 0; lane < this.lanes; lane++) {
      const li = laneItems[lane];
      if (li.length === 0) continue;
      const pins = li.map((it) => this.pinFor(it));
      const firstToken = this.nextToken;
      this.nextToken += li.length;
      const task = { configVersion: this.configVersion, config: this.configJson, now, firstToken, lane: packLane(li, pins) };
      tasks.push({ lane, task, pins });
    }
    this.timings.mainPackMs += performance.now() - t0;
    const config = this.config;
    const outcomes = await Promise.all(
      tasks.map(({ lane, task, pins }) =>
        this.runLane(lane, task, laneItems[lane], pins).then(
          (r) => ({ ok: true as const, r }),
          (err: unknown) => ({ ok: false as const, err }),
        ),
      ),
    );
    const results: PoolResult[] = new Array(items.length);
    const t1 = performance.now();
    outcomes.forEach((o, k) => {
      const { lane, task } = tasks[k];
      const li = laneItems[lane];
      let laneResults: PoolResult[];
      if (o.ok) {
        const rest = JSON.parse(o.r.results) as LaneItemResult[];
        const states = o.r.states;
        laneResults = new Array(li.length);
        for (let j = 0; j < li.length; j++) {
          const it = li[j];
          const state: RuleStateJson = { vin: it.vin, journalId: it.journalId, json: states[j] };
          laneResults[j] = { state, latest: rest[j].latest, events: rest[j].events, failures: rest[j].failures };
          this.holdsNow(it, state, task.firstToken + j);
        }
      } else {
        this.failed++;
        // what the worker holds is unknown now: send these in full next time
        for (const it of li) this.held.delete(it.vin);
        laneResults = this.runHere(li, now, config);
      }
      laneIndex[lane].forEach((idx, j) => (results[idx] = laneResults[j]));
    });
    this.timings.mainUnpackMs += performance.now() - t1;
    return results;
  }

  /** What of this item its worker already holds, or undefined when everything is sent. */
  private pinFor(it: PoolItem): LanePin | undefined {
    const h = this.held.get(it.vin);
    const state = !!h && it.state !== undefined && this.tokens.get(it.state) === h.token;
    const profile = !!h && it.profile !== undefined && h.profile !== undefined && sameProfile(it.profile, h.profile);
    if (it.state) this.pins[state ? 'statesPinned' : 'statesSent']++;
    if (it.profile) this.pins[profile ? 'profilesPinned' : 'profilesSent']++;
    return state || profile ? { expect: h!.token, state, profile } : undefined;
  }

  /** The lane's worker now holds `state` under `token`, run with the item's profile. */
  private holdsNow(it: PoolItem, state: RuleStateJson, token: number): void {
    this.tokens.set(state, token);
    const h = this.held.get(it.vin);
    const profile =
      it.profile === undefined ? undefined : h?.profile && sameProfile(it.profile, h.profile) ? h.profile : snapshot(it.profile);
    this.held.set(it.vin, { token, profile });
  }

  private async runLane(lane: number, task: LaneTask, items: PoolItem[], pins: (LanePin | undefined)[]): Promise<LaneTaskResult> {
    const worker = this.workers[lane];
    // The reading buffer is moved (transferred), not copied; the rest of the task is small.
    let r = await worker.run(task, { transferList: [task.lane.buf] });
    this.addTimings(r);
    if (r.missing) {
      // The worker ran nothing (rare: it restarted, or dropped entries over its bound). Send the
      // lane again, those items in full; the others' entries are still there, unchanged.
      this.pins.resent += r.missing.length;
      for (const i of r.missing) pins[i] = undefined;
      const t0 = performance.now();
      const again: LaneTask = { ...task, lane: packLane(items, pins) };
      this.timings.mainPackMs += performance.now() - t0;
      r = await worker.run(again, { transferList: [again.lane.buf] });
      this.addTimings(r);
      // only if the worker restarted in between: run the lane here instead
      if (r.missing) throw new Error('rules worker reported states missing twice');
    }
    return r;
  }

  private addTimings(r: LaneTaskResult): void {
    this.timings.workerUnpackMs += r.unpackMs;
    this.timings.workerEngineMs += r.engineMs;
    this.timings.workerPackMs += r.packMs;
    this.timings.workerStateJsonMs += r.stateJsonMs;
  }

  private runHere(items: PoolItem[], now: number, config: RulesConfig): PoolResult[] {
    this.fallback ??= createEngine(config);
    const clock: FleetClock = { now: () => now };
    return items.map((it) => {
      const r = runItem(this.fallback!, { ...it, state: it.state && parseState(it.state) }, clock);
      return { state: toStateJson(r.state), latest: r.state.latest, events: r.events, failures: r.failures };
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.destroy()));
  }
}
