// `odopulse backtest`: replay stored history from InfluxDB through a candidate rule configuration and
// through the one in force, and print which prompts each would have produced and how they differ.
// The replay follows production: the pool's per-vehicle sequence (runItem), the vehicle's service
// records at their dates, daily sweeps. runBacktest() is the core, on any TelemetryStore and Stores.
import { readFileSync } from 'node:fs';
import type { Reading } from '../proto/domain.js';
import { SIGNAL_PATHS, VSS } from '../proto/signals.js';
import { parseRulesConfig, type RulesConfig } from '../rules/config.js';
import { createEngine, type Engine } from '../rules/engine.js';
import type { PromptKind, Segments, ServiceRecord, VehicleRuleState } from '../rules/types.js';
import { runItem, type LaneItem } from '../rules/worker.js';
import type { IngestConfig } from '../ingest/config.js';
import { loadRulesConfigFile } from '../ingest/pipeline/rules-config.js';
import { openSqliteStores } from '../ingest/stores.js';
import { createInfluxTelemetryStore } from '../ingest/store/influx/store.js';
import type { Stores, TelemetryStore, VehicleStore } from '../ingest/store/ports.js';

const DAY = 86_400_000;

export interface BacktestPrompt {
  vin: string;
  kind: PromptKind;
  dedupKey: string;
  ts: number;
}

/** Readings of one vehicle in [from, to), merged from the per-signal history, in time order. */
export async function loadHistory(store: TelemetryStore, vin: string, from: number, to: number): Promise<Reading[]> {
  const byTs = new Map<number, Reading>();
  const at = (ts: number) => {
    let r = byTs.get(ts);
    if (!r) byTs.set(ts, (r = { vin, ts, signals: {} }));
    return r;
  };
  for (const path of SIGNAL_PATHS) {
    for (const p of await store.history({ vin, signal: path, from, to })) {
      if (p.value !== null) (at(p.ts).signals as Record<string, unknown>)[path] = p.value;
    }
  }
  for (const p of await store.history({ vin, signal: VSS.dtcList, from, to })) {
    if (typeof p.value === 'string') at(p.ts).dtcs = p.value ? p.value.split(',') : [];
  }
  return [...byTs.values()].sort((a, b) => a.ts - b.ts);
}

/** When a service record takes effect: its date (UTC midnight for a plain date). */
function recordTime(rec: ServiceRecord): number {
  const t = Date.parse(rec.date);
  // unparsable: applied first, where the detector reports it as production would
  return Number.isNaN(t) ? -Infinity : t;
}

/**
 * Run one vehicle's history through an engine the way ingest does: each step goes through
 * runItem (rules/worker.ts), the per-vehicle sequence the pool runs in production. Service records
 * are applied at their dates (one dated before the window first: production's state includes it),
 * readings in between, and a sweep every day from a day after the first reading, all in time order;
 * at the same instant a record comes first, then readings, then the sweep, as within runItem.
 * Opens are counted as the prompt store does: once while their dedupKey is open.
 */
export function replayVehicle(
  engine: Engine,
  v: { vin: string; profile: Awaited<ReturnType<VehicleStore['get']>>; readings: Reading[]; serviceRecords?: ServiceRecord[]; to: number },
  /** Each change of the vehicle's segments, at the time the rules found it (audience backtests). */
  onSegments?: (segments: Segments, at: number) => void,
): BacktestPrompt[] {
  const { vin, profile, readings, to } = v;
  const records = (v.serviceRecords ?? [])
    .map((r) => ({ at: recordTime(r), rec: { date: r.date, odometer: r.odometer, items: r.items } }))
    .filter((r) => r.at < to)
    .sort((a, b) => a.at - b.at);
  let state: VehicleRuleState | undefined;
  let now = readings[0]?.ts ?? to;
  const clock = { now: () => now };
  const open = new Set<string>();
  const out: BacktestPrompt[] = [];
  const step = (at: number, work: Pick<LaneItem, 'readings' | 'serviceRecords' | 'tick'>) => {
    now = at;
    const res = runItem(engine, { vin, profile, state, ...work }, clock);
    state = res.state;
    for (const e of res.events) {
      if (e.type === 'segments') onSegments?.(e.segments, at);
      if (e.type === 'resolve') open.delete(e.dedupKey);
      else if (e.type === 'open' && !open.has(e.prompt.dedupKey)) {
        open.add(e.prompt.dedupKey);
        out.push({ vin, kind: e.prompt.kind, dedupKey: e.prompt.dedupKey, ts: e.prompt.ts });
      }
    }
  };
  let nextSweep = now + DAY;
  let ri = 0;
  let si = 0;
  for (;;) {
    const recordAt = si < records.length ? records[si].at : Infinity;
    const readingAt = ri < readings.length ? readings[ri].ts : Infinity;
    const sweepAt = nextSweep <= to ? nextSweep : Infinity;
    if (recordAt === Infinity && readingAt === Infinity && sweepAt === Infinity) break;
    if (recordAt <= readingAt && recordAt <= sweepAt) {
      const r = records[si++];
      step(r.at, { readings: [], serviceRecords: [r.rec] });
    } else if (readingAt <= sweepAt) {
      // the readings up to the next record or sweep, in one step as a journal chunk is
      const batch: Reading[] = [];
      while (ri < readings.length && readings[ri].ts < recordAt && readings[ri].ts <= sweepAt) batch.push(readings[ri++]);
      step(batch[batch.length - 1].ts, { readings: batch });
    } else {
      step(sweepAt, { readings: [], tick: true });
      nextSweep += DAY;
    }
  }
  return out;
}

export function countByKind(prompts: BacktestPrompt[]): Record<string, number> {
  const c: Record<string, number> = {};
  for (const p of prompts) c[p.kind] = (c[p.kind] ?? 0) + 1;
  return c;
}

export function compare(candidate: BacktestPrompt[], inForce: BacktestPrompt[], sample = 10) {
  const a = countByKind(candidate);
  const b = countByKind(inForce);
  const kinds = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const perKind = Object.fromEntries(kinds.map((k) => [k, { candidate: a[k] ?? 0, inForce: b[k] ?? 0, delta: (a[k] ?? 0) - (b[k] ?? 0) }]));
  const key = (p: BacktestPrompt) => `${p.vin}|${p.dedupKey}`;
  const inB = new Set(inForce.map(key));
  const inA = new Set(candidate.map(key));
  const changed = new Map<string, { vin: string; added: string[]; removed: string[] }>();
  const touch = (vin: string) => changed.get(vin) ?? changed.set(vin, { vin, added: [], removed: [] }).get(vin)!;
  for (const p of candidate) if (!inB.has(key(p))) touch(p.vin).added.push(p.kind);
  for (const p of inForce) if (!inA.has(key(p))) touch(p.vin).removed.push(p.kind);
  return { perKind, changedVehicles: changed.size, sampleOfChangedVehicles: [...changed.values()].slice(0, sample) };
}

export interface BacktestOptions {
  /** The configuration tried, and the one in force it is compared with. */
  candidate: RulesConfig;
  inForce: RulesConfig;
  /** The history window [from, to), epoch ms. */
  from: number;
  to: number;
  /** Only this vehicle (default: every registered one). */
  vin?: string;
}

export interface BacktestRun {
  /** Vehicles looked at (those without readings in the window produce nothing). */
  vehicles: number;
  candidate: BacktestPrompt[];
  inForce: BacktestPrompt[];
}

/** The backtest itself: history from `telemetry`, profiles and service records from `stores`. */
export async function runBacktest(
  telemetry: TelemetryStore,
  stores: Pick<Stores, 'vehicles'>,
  opts: BacktestOptions,
): Promise<BacktestRun> {
  const candidate = createEngine(opts.candidate);
  const inForce = createEngine(opts.inForce);
  const vins = opts.vin ? [opts.vin] : await allVins(stores.vehicles);
  const run: BacktestRun = { vehicles: vins.length, candidate: [], inForce: [] };
  for (const vin of vins) {
    const readings = await loadHistory(telemetry, vin, opts.from, opts.to);
    if (readings.length === 0) continue;
    const v = {
      vin,
      profile: await stores.vehicles.get(vin),
      readings,
      serviceRecords: await stores.vehicles.serviceRecords(vin),
      to: opts.to,
    };
    run.candidate.push(...replayVehicle(candidate, v));
    run.inForce.push(...replayVehicle(inForce, v));
  }
  return run;
}

/** The backtest's window from the command line: ISO times, from before to. */
export function parseWindow(opts: { from: string; to: string }): { from: number; to: number } {
  const from = Date.parse(opts.from);
  const to = Date.parse(opts.to);
  if (Number.isNaN(from) || Number.isNaN(to) || from >= to) throw new Error('--from and --to must be ISO times with from < to');
  return { from, to };
}

export async function runBacktestCli(cfg: IngestConfig, opts: { config: string; from: string; to: string; vin?: string }): Promise<number> {
  const { from, to } = parseWindow(opts);
  const parsed = parseRulesConfig(readFileSync(opts.config, 'utf8'));
  if (!parsed.ok) throw new Error(`rule configuration ${opts.config}: ${parsed.error}`);
  const inForce = loadRulesConfigFile(cfg.ODOPULSE_RULES_CONFIG);
  const stores = openSqliteStores(cfg.ODOPULSE_DATA_DIR);
  const telemetry = await createInfluxTelemetryStore({
    url: cfg.INFLUX_URL,
    token: cfg.INFLUX_TOKEN,
    org: cfg.INFLUX_ORG,
    bucket: cfg.INFLUX_BUCKET,
  });
  try {
    const run = await runBacktest(telemetry, stores, { candidate: parsed.config, inForce, from, to, vin: opts.vin });
    const cand = run.candidate;
    const base = run.inForce;
    const result = {
      window: { from: new Date(from).toISOString(), to: new Date(to).toISOString() },
      vehicles: run.vehicles,
      candidate: { config: opts.config, prompts: cand.length, byKind: countByKind(cand) },
      inForce: { config: cfg.ODOPULSE_RULES_CONFIG ?? 'built-in defaults', prompts: base.length, byKind: countByKind(base) },
      difference: compare(cand, base),
      prompts: cand.slice(0, 200).map((p) => ({ ...p, ts: new Date(p.ts).toISOString() })),
    };
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return 0;
  } finally {
    await telemetry.close();
    await stores.close();
  }
}

export async function allVins(vehicles: VehicleStore): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await vehicles.list({ limit: 1000, cursor });
    out.push(...page.items.map((v) => v.vin));
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return out;
}
