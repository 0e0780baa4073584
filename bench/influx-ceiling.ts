// InfluxDB write ceiling on this machine: pre-serialised line protocol posted straight to 1.x's
// /write in big batches (what the server can take), against the same volume through the store's
// real path (validation, Point serialisation, the client's WriteApi, flush accounting).
import { createInfluxTelemetryStore } from '../ingest/store/influx/store.js';
import { toLines } from '../ingest/store/influx/schema.js';
import { splitBucket } from '../ingest/store/influx/transport.js';
import type { Reading } from '../proto/domain.js';
import { VSS } from '../proto/signals.js';
import type { InfluxQLResponse } from '../ingest/store/influx/store.js';
import { drivingSample } from './load.js';

export interface InfluxCeilingOptions {
  url: string;
  /** A 1.x database (the raw path posts to /write?db=). */
  database: string;
  lines: number;
  batch: number;
  /** Vehicles the lines are spread over (series count). Default 1000. */
  vehicles?: number;
}

const BASE_TS = Date.UTC(2026, 0, 1);
/** What one pipeline write() typically carries. */
const FLUSH_EVERY_CHUNKS = 100;
const WRITE_CHUNK = 500;

function vinOf(i: number): string {
  return `BENCH${String(i).padStart(12, '0')}`;
}

/**
 * Reading i: vehicle i % vehicles, one per second per vehicle, with exactly the signals of the
 * end-to-end load's sample (bench/load.ts drivingSample), so the two ceilings and the end-to-end
 * figure count the same readings.
 */
function reading(i: number, vehicles: number, offsetMs: number): Reading {
  const v = i % vehicles;
  const step = Math.floor(i / vehicles);
  const s = drivingSample(BASE_TS + offsetMs + step * 1000, v + step, 80 - (step % 50) * 0.5);
  return { vin: vinOf(v), ts: s.ts, signals: s.signals };
}

const tags = (vin: string): Record<string, string> => ({ model: 'Bench EV', powertrain: 'BEV', dealer: `D-${vin.slice(-2)}` });

async function countLines(url: string, database: string, from: number, to: number): Promise<number> {
  const q = `SELECT COUNT("${VSS.speed}") FROM "telemetry" WHERE time >= ${from}ms AND time < ${to}ms`;
  const res = await fetch(`${url}/query?${new URLSearchParams({ db: database, q }).toString()}`);
  const json = (await res.json()) as InfluxQLResponse;
  return Number(json.results?.[0]?.series?.[0]?.values?.[0]?.[1] ?? 0);
}

async function rawPath(opts: InfluxCeilingOptions, vehicles: number, offsetMs: number, concurrency: number) {
  const { url, database, lines, batch } = opts;
  // serialised before the clock starts: this measures the server and HTTP, nothing of ours
  const bodies: string[] = [];
  for (let start = 0; start < lines; start += batch) {
    const readings: Reading[] = [];
    for (let i = start; i < Math.min(lines, start + batch); i++) readings.push(reading(i, vehicles, offsetMs));
    bodies.push(toLines(readings, tags).join('\n'));
  }
  const t0 = performance.now();
  let next = 0;
  const post = async (): Promise<void> => {
    while (next < bodies.length) {
      const body = bodies[next++];
      const res = await fetch(`${url}/write?db=${encodeURIComponent(database)}&precision=ms`, { method: 'POST', body });
      if (res.status !== 204) throw new Error(`raw write failed: ${res.status} ${await res.text()}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, post));
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, requests: bodies.length };
}

async function storePath(opts: InfluxCeilingOptions, vehicles: number, offsetMs: number, gzipThreshold: number | undefined) {
  const { url, database, lines, batch } = opts;
  const store = await createInfluxTelemetryStore({
    url,
    token: '',
    org: 'bench',
    bucket: database,
    batchSize: batch,
    flushIntervalMs: 1000,
    gzipThreshold,
  });
  const t0 = performance.now();
  for (let start = 0; start < lines; start += WRITE_CHUNK) {
    const readings: Reading[] = [];
    for (let i = start; i < Math.min(lines, start + WRITE_CHUNK); i++) readings.push(reading(i, vehicles, offsetMs));
    await store.write(readings, tags);
    // flush as ingest does (one chunk of the journal at a time): the WriteApi itself applies no
    // back-pressure, and a million queued lines overwhelm influxd with concurrent requests
    if ((start / WRITE_CHUNK) % FLUSH_EVERY_CHUNKS === FLUSH_EVERY_CHUNKS - 1) await store.flush();
  }
  await store.flush();
  const seconds = (performance.now() - t0) / 1000;
  await store.close();
  return { seconds, version: store.serverVersion };
}

export interface InfluxCeilingResult {
  raw?: { linesPerSec: number };
  rawConcurrent?: { linesPerSec: number };
  [key: string]: unknown;
}

export async function benchInfluxCeiling(opts: InfluxCeilingOptions): Promise<InfluxCeilingResult> {
  const { url, database, lines, batch } = opts;
  const vehicles = opts.vehicles ?? 1000;
  splitBucket(database);
  // each path writes its own time range, so every run stores new points rather than overwriting
  const span = Math.ceil(lines / vehicles) * 1000 + 1000;
  const summary = (seconds: number, offsetMs: number) => ({
    seconds: +seconds.toFixed(3),
    linesPerSec: Math.round(lines / seconds),
    stored: 0,
    offsetMs,
  });

  // warm-up outside the timings: creates the series and the shard, so no path pays for that
  await rawPath({ ...opts, lines: vehicles }, vehicles, -60_000, 1);

  const raw = await rawPath(opts, vehicles, 0, 1);
  const rawOut = { ...summary(raw.seconds, 0), requests: raw.requests, concurrency: 1 };
  rawOut.stored = await countLines(url, database, BASE_TS, BASE_TS + span);

  const raw2 = await rawPath(opts, vehicles, 3 * span, 2);
  const raw2Out = { ...summary(raw2.seconds, 3 * span), requests: raw2.requests, concurrency: 2 };
  raw2Out.stored = await countLines(url, database, BASE_TS + 3 * span, BASE_TS + 4 * span);

  const gz = await storePath(opts, vehicles, span, undefined);
  const gzOut = { ...summary(gz.seconds, span), gzip: 'client default: bodies over 1000 bytes' };
  gzOut.stored = await countLines(url, database, BASE_TS + span, BASE_TS + 2 * span);

  const plain = await storePath(opts, vehicles, 2 * span, Number.MAX_SAFE_INTEGER);
  const plainOut = { ...summary(plain.seconds, 2 * span), gzip: 'off' };
  plainOut.stored = await countLines(url, database, BASE_TS + 2 * span, BASE_TS + 3 * span);

  return {
    influxVersion: gz.version,
    lines,
    batch,
    vehicles,
    fieldsPerLine: Object.keys(drivingSample(0, 0).signals).length,
    raw: rawOut,
    rawConcurrent: raw2Out,
    writeApi: gzOut,
    writeApiNoGzip: plainOut,
    note: 'raw = pre-serialised line protocol, uncompressed POSTs to /write, one or two at a time; writeApi = store.write() of Readings (validation, serialisation, WriteApi batches) then flush()',
  };
}
