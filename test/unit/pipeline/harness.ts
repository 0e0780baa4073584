// Shared set-up of the pipeline tests: the ingest parts wired as ingest/main.ts wires them, but on
// the in-memory stores and telemetry store, a real Journal in a temp dir and a real RulesPool.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import { createClock, type IngestClock } from '../../../ingest/clock.js';
import { backlogGate } from '../../../ingest/inbound/backlog-gate.js';
import { createInboundHandlers, type InboundDeps, type InboundHandlersControl } from '../../../ingest/inbound/handlers.js';
import type { InboundHandlers } from '../../../ingest/inbound/topics.js';
import { DecodedCache } from '../../../ingest/journal/decoded-cache.js';
import { Journal, type JournalEntry } from '../../../ingest/journal/journal.js';
import { createMetrics, type Metrics } from '../../../ingest/metrics.js';
import { Pipeline } from '../../../ingest/pipeline/pipeline.js';
import { RulesRunner } from '../../../ingest/pipeline/rules-runner.js';
import { TelemetryInputError } from '../../../ingest/store/influx/schema.js';
import { MemoryTelemetryStore } from '../../../ingest/store/memory/telemetry.js';
import type { Stores, TelemetryStore } from '../../../ingest/store/ports.js';
import { encodeTelemetryBatch } from '../../../proto/codec.js';
import type { Reading, Sample, Signals, VehicleProfile } from '../../../proto/domain.js';
import { distModule, PACKAGE_ROOT } from '../../../proto/paths.js';
import { VSS } from '../../../proto/signals.js';
import { DEFAULT_RULES_CONFIG } from '../../../rules/config.js';
import { RulesPool } from '../../../rules/pool.js';

export const VIN_A = 'LSVAU2180N2183294';
export const VIN_B = 'LSVAU2180N2183295';
export const T0 = Date.parse('2026-03-01T08:00:00Z');
export const MIN = 60_000;
export const HOUR = 60 * MIN;
export const DAY = 24 * HOUR;

export function bev(over: Partial<VehicleProfile> = {}): VehicleProfile {
  return {
    model: 'Aurora',
    powertrain: 'BEV',
    deliveryDate: '2025-12-01',
    dealerId: 'D001',
    locale: 'en',
    vehicleType: 'passenger',
    ...over,
  };
}

/** A parked sample with this state of charge. */
export function parked(ts: number, soc: number, extra: Signals = {}): Sample {
  return { ts, signals: { [VSS.soc]: soc, [VSS.isCharging]: false, [VSS.speed]: 0, [VSS.lowVoltageSystemState]: 'OFF', ...extra } };
}

/** A sample plugged in and charging. */
export function charging(ts: number, soc: number): Sample {
  return { ts, signals: { [VSS.soc]: soc, [VSS.isCharging]: true, [VSS.chargePortType]: 'AC', [VSS.speed]: 0 } };
}

export function payload(vin: string, seq: number, samples: Sample[], bootId = 'boot-1'): Buffer {
  return Buffer.from(encodeTelemetryBatch({ vin, bootId, seq, samples, dropped: 0 }));
}

/** A journal entry as Journal.pendingFor* returns it (readings decoded from the payload). */
export function entry(id: number, vin: string, samples: Sample[]): JournalEntry {
  return { id, vin, seq: id, receivedAt: samples[0].ts, payload: payload(vin, id, samples), influxDone: false };
}

export const key = (r: { vin: string; ts: number }): string => `${r.vin}@${r.ts}`;

export function tally(keys: Iterable<string>): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
}

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** The pool runs the compiled worker (dist/rules/worker.js): build it when it is missing or stale. */
export function ensureWorkerBuilt(): void {
  const worker = distModule('rules/worker.js');
  const src = Math.max(newestMtime(join(PACKAGE_ROOT, 'rules')), newestMtime(join(PACKAGE_ROOT, 'proto')));
  if (!existsSync(worker) || statSync(worker).mtimeMs < src) {
    try {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: PACKAGE_ROOT, stdio: 'ignore' });
    } catch {
      // errors elsewhere in the tree do not stop tsc from emitting; the check below decides
    }
  }
  expect(existsSync(worker)).toBe(true);
}

export function tempDir(dirs: string[]): string {
  const d = mkdtempSync(join(tmpdir(), 'odopulse-pipeline-'));
  dirs.push(d);
  return d;
}

export const removeDirs = (dirs: string[]): void => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));

/** A logger that keeps what it is told, for assertions and for the message of a failing test. */
export function memoryLog() {
  const lines: { level: string; o: object; m?: string }[] = [];
  const at = (level: string) => (o: object, m?: string) => void lines.push({ level, o, m });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

/**
 * A TelemetryStore in front of the in-memory one that can play an outage (`down`: write and flush
 * reject, nothing reaches the store) or refuse readings as bad input (`refuse`: TelemetryInputError
 * for a whole call, nothing of it stored, as the Influx store does). Counts, per (vin, ts), the
 * readings whose write was confirmed by a flush.
 */
export class TestTelemetry implements TelemetryStore {
  readonly inner = new MemoryTelemetryStore();
  down = false;
  refuse: ((r: Reading) => boolean) | undefined;
  /** Rejected writes and flushes while down. */
  failures = 0;
  /** The VINs of each call refused as bad input. */
  readonly refusedCalls: string[][] = [];
  /** Confirmed writes per reading key (vin@ts). */
  readonly written = new Map<string, number>();
  /** Readings per write() call that got through, in order (one call per chunk). */
  readonly calls: number[] = [];
  private unconfirmed: Reading[] = [];

  async write(readings: Reading[], tags: (vin: string) => Record<string, string>): Promise<void> {
    if (this.down) {
      this.failures++;
      throw new Error('InfluxDB unavailable (test outage)');
    }
    const refuse = this.refuse;
    if (refuse && readings.some((r) => refuse(r))) {
      this.refusedCalls.push([...new Set(readings.map((r) => r.vin))]);
      throw new TelemetryInputError('refused by the test store');
    }
    await this.inner.write(readings, tags);
    this.calls.push(readings.length);
    this.unconfirmed.push(...readings);
  }

  async flush(): Promise<void> {
    const batch = this.unconfirmed;
    this.unconfirmed = [];
    if (this.down) {
      this.failures++;
      throw new Error('InfluxDB did not confirm the lines (test outage)');
    }
    await this.inner.flush();
    for (const r of batch) this.written.set(key(r), (this.written.get(key(r)) ?? 0) + 1);
  }

  latest(vin: string) {
    return this.inner.latest(vin);
  }
  history(q: Parameters<TelemetryStore['history']>[0]) {
    return this.inner.history(q);
  }
  count(q: Parameters<TelemetryStore['count']>[0]) {
    return this.inner.count(q);
  }
  ping() {
    return this.inner.ping();
  }
  close() {
    return this.inner.close();
  }
}

export interface Ingest {
  journal: Journal;
  decoded: DecodedCache;
  stores: Stores;
  telemetry: TelemetryStore;
  metrics: Metrics;
  clock: IngestClock;
  rules: RulesRunner;
  pipeline: Pipeline;
  handlers: InboundHandlers & InboundHandlersControl;
  log: ReturnType<typeof memoryLog>;
  /** Publish one telemetry batch through the inbound handler (resolves once journalled). */
  send(vin: string, seq: number, samples: Sample[], bootId?: string): Promise<void>;
  /** Stop the loops and close the journal (the stores and telemetry store stay, as on disk). */
  stop(): Promise<void>;
}

/** One ingest process: a fresh journal handle, decoded cache, rules runner and pipeline on `dir`. */
export async function startIngestParts(o: {
  dir: string;
  stores: Stores;
  telemetry: TelemetryStore;
  pool: RulesPool;
  chunk?: number;
  rulesStepReadings?: number;
  webhookUrls?: string[];
  /** Default: an event clock, as the demo runs. */
  clock?: IngestClock;
  limits?: InboundDeps['limits'];
  /** ODOPULSE_BACKLOG_READINGS (default: no back-pressure). */
  backlogReadings?: number;
  /** How long an InfluxDB chunk may wait to fill (default: the pipeline's). */
  influxGatherMs?: number;
}): Promise<Ingest> {
  const journal = new Journal(o.dir);
  const decoded = new DecodedCache();
  const metrics = createMetrics();
  const clock = o.clock ?? createClock('event');
  const log = memoryLog();
  const rules = await RulesRunner.open({ pool: o.pool, stores: o.stores, clock, metrics, webhookUrls: o.webhookUrls ?? [], log });
  const pipeline = new Pipeline({
    journal,
    decoded,
    stores: o.stores,
    telemetry: o.telemetry,
    rules,
    clock,
    metrics,
    log,
    chunk: o.chunk,
    rulesStepReadings: o.rulesStepReadings,
    influxGatherMs: o.influxGatherMs,
  });
  const handlers = createInboundHandlers({
    journal,
    decoded,
    stores: o.stores,
    metrics,
    clock,
    limits: o.limits,
    onJournalled: () => pipeline.wake(),
    gate: backlogGate(o.backlogReadings ?? 0, pipeline, metrics),
    onOnline: () => {},
    onAcks: () => {},
  });
  let stopped = false;
  return {
    journal,
    decoded,
    stores: o.stores,
    telemetry: o.telemetry,
    metrics,
    clock,
    rules,
    pipeline,
    handlers,
    log,
    send: (vin, seq, samples, bootId) => handlers.telemetry(vin, payload(vin, seq, samples, bootId), `client-${vin}`),
    async stop() {
      if (stopped) return;
      stopped = true;
      const loops = pipeline.stop(); // at once: a test may stop right after a given step
      await handlers.drained(); // what the handlers were still writing, as ingest/main.ts waits for
      await loops;
      await handlers.flushSequences();
      journal.close();
    },
  };
}

/** The value of a counter for one label set (0 when never incremented). */
export async function counterValue(
  counter: { get(): Promise<{ values: { value: number; labels: Partial<Record<string, string | number>> }[] }> },
  labels: Record<string, string> = {},
): Promise<number> {
  const m = await counter.get();
  const hit = m.values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
  return hit?.value ?? 0;
}

/** A test file's rules pool: one worker, built before its first test, closed after its last. */
export function rulesPoolFixture(): { readonly pool: RulesPool } {
  let pool: RulesPool | undefined;
  beforeAll(() => {
    ensureWorkerBuilt();
    pool = new RulesPool({ threads: 1, config: DEFAULT_RULES_CONFIG });
  }, 180_000);
  afterAll(async () => {
    await pool?.close();
  });
  return {
    get pool(): RulesPool {
      if (!pool) throw new Error('the rules pool is built in beforeAll');
      return pool;
    },
  };
}

/** The fixture of a pipeline test file: its rules pool, and the ingests and temp dirs each test starts, stopped and removed after it. */
export function pipelineFixture(): { readonly pool: RulesPool; dirs: string[]; running: Ingest[] } {
  const rules = rulesPoolFixture();
  const dirs: string[] = [];
  const running: Ingest[] = [];
  afterEach(async () => {
    for (const i of running.splice(0)) await i.stop();
    removeDirs(dirs);
  });
  return {
    get pool(): RulesPool {
      return rules.pool;
    },
    dirs,
    running,
  };
}
