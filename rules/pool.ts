// The rules worker pool (Piscina): one lane per thread, vehicles sharded into lanes by VIN hash,
// one task per lane per run(). The caller serialises runs per VIN, so each vehicle's readings
// are applied in order. A lane whose worker fails is run in this thread instead (counted).
import { Piscina } from 'piscina';
import { distModule } from '../proto/paths.js';
import type { RulesConfig } from './config.js';
import { createEngine, type Engine } from './engine.js';
import type { EngineResult, FleetClock } from './types.js';
import { packLane, runItem, type LaneItem, type LaneTask, type LaneTaskResult } from './worker.js';

export type { LaneItem };

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
}

export class RulesPool {
  private readonly piscina: Piscina<LaneTask, LaneTaskResult>;
  private readonly lanes: number;
  private config!: RulesConfig;
  private configJson = '';
  private configVersion = 0;
  private fallback: Engine | undefined;
  private failed = 0;
  readonly timings: PoolTimings = { mainPackMs: 0, mainUnpackMs: 0, workerUnpackMs: 0, workerPackMs: 0, workerEngineMs: 0 };

  constructor(opts: { threads: number; config: RulesConfig }) {
    this.lanes = Math.max(1, Math.floor(opts.threads));
    this.piscina = new Piscina<LaneTask, LaneTaskResult>({
      filename: distModule('rules/worker.js'),
      name: 'process',
      minThreads: this.lanes,
      maxThreads: this.lanes,
      idleTimeout: 60_000,
    });
    this.setConfig(opts.config);
  }

  /** Lane tasks that failed in a worker (and were run in this thread instead). */
  get failures(): number {
    return this.failed;
  }

  setConfig(c: RulesConfig): void {
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

  async run(items: LaneItem[], now: number): Promise<EngineResult[]> {
    if (items.length === 0) return [];
    const t0 = performance.now();
    const laneItems: LaneItem[][] = Array.from({ length: this.lanes }, () => []);
    const laneIndex: number[][] = Array.from({ length: this.lanes }, () => []);
    for (let i = 0; i < items.length; i++) {
      const lane = this.lanes === 1 ? 0 : vinHash(items[i].vin) % this.lanes;
      laneItems[lane].push(items[i]);
      laneIndex[lane].push(i);
    }
    const tasks: { lane: number; task: LaneTask }[] = [];
    for (let lane = 0; lane < this.lanes; lane++) {
      if (laneItems[lane].length === 0) continue;
      tasks.push({ lane, task: { configVersion: this.configVersion, config: this.configJson, now, lane: packLane(laneItems[lane]) } });
    }
    this.timings.mainPackMs += performance.now() - t0;
    const config = this.config;
    const outcomes = await Promise.all(
      tasks.map(({ task }) =>
        // The reading buffer is moved (transferred), not copied; the rest of the task is small.
        this.piscina.run(task, { transferList: [task.lane.buf] }).then(
          (r) => ({ ok: true as const, r }),
          (err: unknown) => ({ ok: false as const, err }),
        ),
      ),
    );
    const results: EngineResult[] = new Array(items.length);
    const t1 = performance.now();
    outcomes.forEach((o, k) => {
      const lane = tasks[k].lane;
      let laneResults: EngineResult[];
      if (o.ok) {
        this.timings.workerUnpackMs += o.r.unpackMs;
        this.timings.workerEngineMs += o.r.engineMs;
        this.timings.workerPackMs += o.r.packMs;
        laneResults = JSON.parse(o.r.results) as EngineResult[];
      } else {
        this.failed++;
        laneResults = this.runHere(laneItems[lane], now, config);
      }
      laneIndex[lane].forEach((idx, j) => (results[idx] = laneResults[j]));
    });
    this.timings.mainUnpackMs += performance.now() - t1;
    return results;
  }

  private runHere(items: LaneItem[], now: number, config: RulesConfig): EngineResult[] {
    this.fallback ??= createEngine(config);
    const clock: FleetClock = { now: () => now };
    return items.map((it) => runItem(this.fallback!, it, clock));
  }

  async close(): Promise<void> {
    await this.piscina.destroy();
  }
}
