// Rules throughput bench: readings/s through the worker pool with all detectors on a realistic
// fleet, and the same work in-thread on one core, in the same run. Deterministic (seeded).
import { VSS } from '../proto/signals.js';
import { DEFAULT_RULES_CONFIG, type RulesConfig } from '../rules/config.js';
import { createEngine } from '../rules/engine.js';
import { RulesPool } from '../rules/pool.js';
import type { FleetClock, Reading, RuleEvent, RuleStateJson, Signals, Vehicle, VehicleRuleState } from '../rules/types.js';
import { runItem, type LaneItem } from '../rules/worker.js';
import { mulberry32 } from '../simulator/rng.js';

export interface BenchRulesOptions {
  vehicles: number;
  readingsPerVehicle: number;
  threads: number;
  /** Readings per vehicle per run() call, like one journal batch (default 100). */
  batch?: number;
  seed?: number;
  config?: RulesConfig;
}

const MODELS: { model: string; powertrain: Vehicle['powertrain']; vehicleType: Vehicle['vehicleType'] }[] = [
  { model: 'Aurora', powertrain: 'BEV', vehicleType: 'passenger' },
  { model: 'Borealis', powertrain: 'PHEV', vehicleType: 'passenger' },
  { model: 'Cargo', powertrain: 'BEV', vehicleType: 'commercial' },
  { model: 'Classic', powertrain: 'ICE', vehicleType: 'passenger' },
];
const DTCS = ['P0300', 'P0420', 'C0035', 'U0121', 'P0A80', 'B0001', 'P1ABC'];
const VIN_CHARS = 'ABCDEFGHJKLMNPRSTUVWXYZ0123456789';
const STEP_MS = 30_000;
const DAY = 86_400_000;

/** One simulated vehicle: drives, parks, charges, sometimes raises a fault code. */
export class SimVehicle {
  readonly vin: string;
  readonly profile: Vehicle;
  private ts: number;
  private odo: number;
  private soc: number;
  private soh: number;
  private v12 = 12.6;
  private mode: 'drive' | 'park' | 'charge' = 'park';
  private modeLeft = 0;
  private dc = false;
  private dtcs: string[] = [];
  private n = 0;

  constructor(
    private readonly rnd: () => number,
    start: number,
  ) {
    let vin = 'LSV';
    for (let i = 0; i < 14; i++) vin += VIN_CHARS[Math.floor(rnd() * VIN_CHARS.length)];
    this.vin = vin;
    const m = MODELS[Math.floor(rnd() * MODELS.length)];
    const ageDays = Math.floor(rnd() * 3 * 365);
    this.profile = {
      vin,
      model: m.model,
      powertrain: m.powertrain,
      vehicleType: m.vehicleType,
      dealerId: `D${100 + Math.floor(rnd() * 20)}`,
      locale: rnd() < 0.7 ? 'zh-CN' : 'en',
      deliveryDate: new Date(start - ageDays * DAY).toISOString().slice(0, 10),
    };
    this.ts = start + Math.floor(rnd() * STEP_MS);
    this.odo = ageDays * (20 + rnd() * 60);
    this.soc = 30 + rnd() * 60;
    this.soh = 100 - (ageDays / 365) * (1 + rnd() * 4);
  }

  next(): Reading {
    const r = this.rnd;
    if (this.modeLeft-- <= 0) {
      const x = r();
      this.mode = this.soc < 25 && this.profile.powertrain !== 'ICE' ? 'charge' : x < 0.5 ? 'drive' : 'park';
      this.modeLeft = 20 + Math.floor(r() * 200);
      this.dc = r() < 0.4;
    }
    this.ts += STEP_MS;
    const driving = this.mode === 'drive';
    const speed = driving ? 20 + r() * 90 : 0;
    this.odo += (speed * STEP_MS) / 3_600_000;
    if (this.profile.powertrain !== 'ICE') {
      if (driving) this.soc = Math.max(2, this.soc - speed * 0.0015);
      else if (this.mode === 'charge') this.soc = Math.min(100, this.soc + (this.dc ? 1.2 : 0.15));
      if (this.mode === 'charge' && this.soc >= 100 && r() < 0.02) this.modeLeft = 0;
    }
    this.v12 = driving ? 14.1 + r() * 0.3 : Math.max(10.8, this.v12 - 0.002 + (r() - 0.5) * 0.01);
    if (driving && this.v12 < 12) this.v12 = 14;
    if (!driving && this.v12 > 13) this.v12 = 12.5;
    // Fault codes now and then: appear, stay a while, clear.
    let dtcs: string[] | undefined;
    if (this.n % 20 === 0) {
      if (this.dtcs.length && r() < 0.3) this.dtcs = [];
      else if (r() < 0.02) this.dtcs = [...this.dtcs, DTCS[Math.floor(r() * DTCS.length)]];
      dtcs = this.dtcs;
    }
    const signals: Signals = {
      [VSS.odometer]: Math.round(this.odo * 10) / 10,
      [VSS.speed]: Math.round(speed),
      [VSS.lowVoltageSystemState]: driving ? 'ON' : 'OFF',
      [VSS.voltage12v]: Math.round(this.v12 * 100) / 100,
    };
    if (this.profile.powertrain !== 'ICE') {
      signals[VSS.soc] = Math.round(this.soc * 10) / 10;
      signals[VSS.isCharging] = this.mode === 'charge';
      signals[VSS.chargePortType] = this.mode === 'charge' ? (this.dc ? 'DC' : 'AC') : 'NONE';
      if (this.n % 120 === 0) signals[VSS.soh] = Math.round(this.soh * 10) / 10;
    } else {
      signals[VSS.fuelLevel] = 50;
    }
    this.n++;
    const reading: Reading = { vin: this.vin, ts: this.ts, signals };
    if (dtcs) reading.dtcs = dtcs;
    return reading;
  }

  get time(): number {
    return this.ts;
  }
}

export function makeFleet(vehicles: number, seed = 42, start = Date.parse('2026-01-01T00:00:00Z')): SimVehicle[] {
  const rnd = mulberry32(seed);
  return Array.from({ length: vehicles }, () => new SimVehicle(rnd, start));
}

function eventCount(results: readonly { events: readonly RuleEvent[] }[]): number {
  let n = 0;
  for (const r of results) n += r.events.length;
  return n;
}

export async function benchRules(opts: BenchRulesOptions): Promise<object> {
  const config = opts.config ?? DEFAULT_RULES_CONFIG;
  const batch = Math.max(1, Math.min(opts.batch ?? 100, opts.readingsPerVehicle));
  // the first round is warm-up, not measured: without a second one every figure would be empty
  if (opts.readingsPerVehicle < 2 * batch)
    throw new Error(`rules bench: readingsPerVehicle (${opts.readingsPerVehicle}) must be at least twice the batch (${batch})`);
  const fleet = makeFleet(opts.vehicles, opts.seed ?? 42);
  const engine = createEngine(config);
  const pool = new RulesPool({ threads: opts.threads, config });
  const poolStates = new Map<string, RuleStateJson>();
  const localStates = new Map<string, VehicleRuleState>();
  let poolMs = 0;
  let localMs = 0;
  // Process CPU time (all threads): unlike wall time, not inflated by other load on the machine.
  let poolCpuMs = 0;
  let localCpuMs = 0;
  let readings = 0;
  let poolEvents = 0;
  let localEvents = 0;
  let poolFailures = 0;
  try {
    // Warm-up (not measured): workers start, JIT settles, vehicles gain history.
    for (let done = 0; done < opts.readingsPerVehicle; done += batch) {
      const n = Math.min(batch, opts.readingsPerVehicle - done);
      const items: LaneItem[] = fleet.map((v) => {
        const rs: Reading[] = new Array(n);
        for (let i = 0; i < n; i++) rs[i] = v.next();
        return { vin: v.vin, profile: v.profile, readings: rs };
      });
      const now = items.reduce((m, it) => Math.max(m, it.readings[it.readings.length - 1].ts), 0);
      const clock: FleetClock = { now: () => now };
      const warm = done === 0;

      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const pr = await pool.run(
        items.map((it) => ({ ...it, state: poolStates.get(it.vin) })),
        now,
      );
      const t1 = performance.now();
      const c1 = process.cpuUsage();
      const lr = items.map((it) => runItem(engine, { ...it, state: localStates.get(it.vin) }, clock));
      const t2 = performance.now();
      const c2 = process.cpuUsage();

      for (let i = 0; i < items.length; i++) {
        poolStates.set(items[i].vin, pr[i].state);
        localStates.set(items[i].vin, lr[i].state);
        poolFailures += pr[i].failures.length + lr[i].failures.length;
      }
      if (warm) {
        for (const k of Object.keys(pool.timings) as (keyof typeof pool.timings)[]) pool.timings[k] = 0;
        for (const k of Object.keys(pool.pins) as (keyof typeof pool.pins)[]) pool.pins[k] = 0;
        continue;
      }
      poolMs += t1 - t0;
      localMs += t2 - t1;
      poolCpuMs += (c1.user + c1.system - c0.user - c0.system) / 1000;
      localCpuMs += (c2.user + c2.system - c1.user - c1.system) / 1000;
      readings += n * items.length;
      poolEvents += eventCount(pr);
      localEvents += eventCount(lr);
    }
  } finally {
    await pool.close();
  }
  const t = pool.timings;
  const pins = pool.pins;
  // The new states' JSON is not dispatch: the store needs it wherever rules run (before, main made
  // it in ruleStates.save); the workers make it now, shown apart and left out of the overhead.
  const dispatchMs = t.mainPackMs + t.mainUnpackMs + t.workerUnpackMs + t.workerPackMs;
  const poolRate = readings / (poolMs / 1000);
  const localRate = readings / (localMs / 1000);
  const target = { readingsPerSecond: 200_000, threads: 2, maxOverheadPct: 10 };
  const overheadPct = (100 * dispatchMs) / (dispatchMs + t.workerEngineMs);
  return {
    bench: 'rules',
    vehicles: opts.vehicles,
    readingsPerVehicle: opts.readingsPerVehicle,
    measuredReadings: readings,
    batchPerVehicle: batch,
    threads: opts.threads,
    pool: { readingsPerSecond: Math.round(poolRate), ms: Math.round(poolMs), events: poolEvents },
    inThread: { readingsPerSecond: Math.round(localRate), ms: Math.round(localMs), events: localEvents },
    ratio: Math.round((poolRate / localRate) * 100) / 100,
    parallelEfficiencyPct: Math.round((poolRate / (localRate * opts.threads)) * 1000) / 10,
    dispatchOverheadPct: Math.round(overheadPct * 10) / 10,
    /** CPU cost per reading (all threads, GC included); the pool's extra share is its total overhead. */
    cpu: {
      poolUsPerReading: Math.round((poolCpuMs * 1000 * 100) / readings) / 100,
      inThreadUsPerReading: Math.round((localCpuMs * 1000 * 100) / readings) / 100,
      poolExtraPct: Math.round(((poolCpuMs - localCpuMs) / poolCpuMs) * 1000) / 10,
      /** What the pool would do with `threads` otherwise idle cores: threads / pool CPU per reading. */
      projectedReadingsPerSecond: Math.round((opts.threads * readings) / (poolCpuMs / 1000)),
    },
    dispatchMs: {
      mainPack: Math.round(t.mainPackMs),
      mainUnpack: Math.round(t.mainUnpackMs),
      workerUnpack: Math.round(t.workerUnpackMs),
      workerPack: Math.round(t.workerPackMs),
      workerEngine: Math.round(t.workerEngineMs),
      workerStateJson: Math.round(t.workerStateJsonMs),
    },
    /** States and profiles sent to the workers vs left pinned there, over the measured rounds. */
    pins: { ...pins },
    detectorFailures: poolFailures,
    sameEvents: poolEvents === localEvents,
    target,
    meetsTarget: poolRate >= target.readingsPerSecond && overheadPct < target.maxOverheadPct,
  };
}
