// `odopulse backtest`: replay stored history from InfluxDB through a candidate rule configuration and
// through the one in force, and print which prompts each would have produced and how they differ.
import { readFileSync } from 'node:fs';
import type { Reading } from '../proto/domain.js';
import { SIGNAL_PATHS, VSS } from '../proto/signals.js';
import { parseRulesConfig, type RulesConfig } from '../rules/config.js';
import { createEngine } from '../rules/engine.js';
import type { PromptKind, VehicleRuleState } from '../rules/types.js';
import type { IngestConfig } from '../ingest/config.js';
import { loadRulesConfigFile } from '../ingest/pipeline/rules-config.js';
import { openSqliteStores } from '../ingest/stores.js';
import { createInfluxTelemetryStore } from '../ingest/store/influx/store.js';
import type { TelemetryStore, VehicleStore } from '../ingest/store/ports.js';

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

/** Run one vehicle's history through a configuration, sweeping daily as ingest would. */
export function replayVehicle(
  config: RulesConfig,
  vin: string,
  profile: ReturnType<VehicleStore['get']>,
  readings: Reading[],
  to: number,
): BacktestPrompt[] {
  const engine = createEngine(config);
  let state: VehicleRuleState | undefined;
  let now = readings[0]?.ts ?? to;
  const clock = { now: () => now };
  const out: BacktestPrompt[] = [];
  const collect = (events: ReturnType<typeof engine.onTick>['events']) => {
    for (const e of events) if (e.type === 'open') out.push({ vin, kind: e.prompt.kind, dedupKey: e.prompt.dedupKey, ts: e.prompt.ts });
  };
  let nextSweep = now + DAY;
  for (const r of readings) {
    while (nextSweep < r.ts) {
      now = nextSweep;
      const t = engine.onTick(state, vin, profile, clock);
      state = t.state;
      collect(t.events);
      nextSweep += DAY;
    }
    now = r.ts;
    const res = engine.onReadings(state, vin, profile, [r], clock);
    state = res.state;
    collect(res.events);
  }
  while (nextSweep <= to) {
    now = nextSweep;
    const t = engine.onTick(state, vin, profile, clock);
    state = t.state;
    collect(t.events);
    nextSweep += DAY;
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

export async function runBacktestCli(cfg: IngestConfig, opts: { config: string; from: string; to: string; vin?: string }): Promise<number> {
  const from = Date.parse(opts.from);
  const to = Date.parse(opts.to);
  if (Number.isNaN(from) || Number.isNaN(to) || from >= to) throw new Error('--from and --to must be ISO times with from < to');
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
    const vins = opts.vin ? [opts.vin] : allVins(stores.vehicles);
    const cand: BacktestPrompt[] = [];
    const base: BacktestPrompt[] = [];
    for (const vin of vins) {
      const readings = await loadHistory(telemetry, vin, from, to);
      if (readings.length === 0) continue;
      const profile = stores.vehicles.get(vin);
      cand.push(...replayVehicle(parsed.config, vin, profile, readings, to));
      base.push(...replayVehicle(inForce, vin, profile, readings, to));
    }
    const result = {
      window: { from: new Date(from).toISOString(), to: new Date(to).toISOString() },
      vehicles: vins.length,
      candidate: { config: opts.config, prompts: cand.length, byKind: countByKind(cand) },
      inForce: { config: cfg.ODOPULSE_RULES_CONFIG ?? 'built-in defaults', prompts: base.length, byKind: countByKind(base) },
      difference: compare(cand, base),
      prompts: cand.slice(0, 200).map((p) => ({ ...p, ts: new Date(p.ts).toISOString() })),
    };
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return 0;
  } finally {
    await telemetry.close();
    stores.close();
  }
}

function allVins(vehicles: VehicleStore): string[] {
  const out: string[] = [];
  let cursor: string | undefined;
  do {
    const page = vehicles.list({ limit: 1000, cursor });
    out.push(...page.items.map((v) => v.vin));
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return out;
}
