// Points influxd 1.6.7 refuses as input: a field type conflict, a point beyond a short retention
// policy, a timestamp it cannot parse or place. The writer reports them as TelemetryRefusedError
// with the server's reason (1.x still wrote the good points of the request); the pipeline narrows
// a refused chunk down, dead-letters just the refused readings and writes every other one.
import { InfluxDB } from '@influxdata/influxdb-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClock } from '../../ingest/clock.js';
import { createInfluxTelemetryStore } from '../../ingest/store/influx/store.js';
import { InfluxV1Transport } from '../../ingest/store/influx/transport.js';
import { TrackedWriter } from '../../ingest/store/influx/writer.js';
import { TelemetryRefusedError } from '../../ingest/store/telemetry-errors.js';
import { createMemoryStores } from '../../ingest/stores.js';
import { decodeTelemetryBatch } from '../../proto/codec.js';
import type { Sample } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';
import { DEFAULT_RULES_CONFIG } from '../../rules/config.js';
import { RulesPool } from '../../rules/pool.js';
import { influxNumber, influxQuery, startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { waitFor } from '../support/wait.js';
import {
  bev,
  counterValue,
  ensureWorkerBuilt,
  removeDirs,
  startIngestParts,
  tempDir,
  VIN_A,
  VIN_B,
  type Ingest,
} from '../unit/pipeline/harness.js';

const T0 = Date.UTC(2026, 2, 1, 8);
const MIN = 60_000;
const quiet = { warn: () => undefined, error: () => undefined };

let influxd: InfluxdHandle;
let pool: RulesPool;
let dbSeq = 0;
const dirs: string[] = [];
const running: Ingest[] = [];

beforeAll(async () => {
  ensureWorkerBuilt();
  pool = new RulesPool({ threads: 1, config: DEFAULT_RULES_CONFIG });
  influxd = await startInfluxd();
}, 180_000);
afterAll(async () => {
  for (const i of running.splice(0)) await i.stop();
  await pool?.close();
  await influxd?.stop();
  removeDirs(dirs);
});

async function freshDb(withDuration?: string): Promise<string> {
  const db = `r${process.pid}_${++dbSeq}`;
  await influxQuery(influxd.url, db, `CREATE DATABASE "${db}"${withDuration ? ` WITH DURATION ${withDuration}` : ''}`);
  return db;
}

const count = (db: string, field: string, where = ''): Promise<number> =>
  influxNumber(influxd.url, db, `SELECT COUNT("${field}") FROM "telemetry"${where}`);

/** Raw line protocol straight to influxd (someone else writing the same measurement). */
async function postLines(db: string, lines: string[]): Promise<void> {
  const r = await fetch(`${influxd.url}/write?db=${db}&precision=ms`, { method: 'POST', body: lines.join('\n') });
  if (r.status !== 204) throw new Error(`write: ${r.status} ${await r.text()}`);
}

function writerOn(db: string): TrackedWriter {
  const influx = new InfluxDB({
    url: influxd.url,
    transport: new InfluxV1Transport(new InfluxDB({ url: influxd.url }).transport, undefined),
  });
  return new TrackedWriter(influx, {
    org: 'o',
    bucket: db,
    batchSize: 5000,
    flushIntervalMs: 60_000,
    maxRetries: 0,
    maxBufferLines: 10_000,
    flushTimeoutMs: 10_000,
    gzipThreshold: Number.MAX_SAFE_INTEGER,
  });
}

async function refusal(p: Promise<void>): Promise<TelemetryRefusedError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TelemetryRefusedError);
  return err as TelemetryRefusedError;
}

describe('the writer on influxd 1.6.7', () => {
  it('a field type conflict, an unplaceable and an unparsable timestamp are refusals with the server reason; the good points are in', async () => {
    const db = await freshDb();
    const w = writerOn(db);
    const ok = (vin: string, k: number) => `telemetry,vin=${vin} Vehicle.Speed=${k} ${T0 + k * 1000}`;
    w.write([ok('A', 0), ok('A', 1)]);
    await w.flush();

    const cases: Array<[string, RegExp]> = [
      // the field is a float in this shard: a boolean is refused
      [
        `telemetry,vin=B Vehicle.Speed=true ${T0 + 5000}`,
        /^partial write: field type conflict: input field "Vehicle\.Speed" on measurement "telemetry" is type boolean, already exists as type float dropped=1$/,
      ],
      // milliseconds past what nanoseconds can hold
      [`telemetry,vin=B Vehicle.Speed=2 9999999999999999`, /^partial write: unable to parse '.*': time outside range/],
      [`telemetry,vin=B Vehicle.Speed=3 12x4`, /^partial write: unable to parse '.*': bad timestamp/],
    ];
    let k = 10;
    for (const [bad, reason] of cases) {
      w.write([ok('A', k), bad, ok('A', k + 1)]);
      const err = await refusal(w.flush());
      expect(err.status).toBe(400);
      expect(err.serverMessage).toMatch(reason);
      expect(err.refusedLines).toEqual([ok('A', k), bad, ok('A', k + 1)]);
      k += 10;
    }
    // 1.x wrote the good points of each refused request
    expect(await count(db, 'Vehicle.Speed', ` WHERE "vin" = 'A'`)).toBe(2 + 2 * cases.length);
    expect(await count(db, 'Vehicle.Speed', ` WHERE "vin" = 'B'`)).toBe(0);
    expect(w.refusedLines).toBe(3 * cases.length);
    // nothing is stuck: the next flush is fine
    w.write([ok('A', 100)]);
    await w.flush();
    expect(w.failedLines).toBe(0);
    await w.close();
  });

  it('two flushes in flight: a refusal is reported to the flush that sealed the refused point, not to the next one', async () => {
    const db = await freshDb();
    const w = writerOn(db);
    const ok = (vin: string, k: number) => `telemetry,vin=${vin} Vehicle.Speed=${k} ${T0 + k * 1000}`;
    w.write([ok('A', 0)]);
    await w.flush();
    w.write([ok('A', 1), `telemetry,vin=B Vehicle.Speed=true ${T0 + 2000}`]);
    const first = w.flush();
    // sealed while the first is still in flight (it waits for it: "everything written so far")
    w.write([ok('A', 3), ok('A', 4)]);
    const second = w.flush();
    const err = await refusal(first);
    expect(err.refusedLines).toHaveLength(2);
    await expect(second).resolves.toBeUndefined();
    expect(await count(db, 'Vehicle.Speed', ` WHERE "vin" = 'A'`)).toBe(4);
    await w.close();
  });

  it('a point beyond a 1 h retention policy is refused (no longer settled silently)', async () => {
    const db = await freshDb('1h');
    const store = await createInfluxTelemetryStore({ url: influxd.url, token: '', org: 'o', bucket: db, logger: quiet });
    const now = Math.floor(Date.now() / 1000) * 1000;
    await store.write(
      [
        { vin: VIN_A, ts: now - 60_000, signals: { [VSS.soc]: 50 } },
        { vin: VIN_A, ts: now - 3 * 86_400_000, signals: { [VSS.soc]: 40 } },
      ],
      () => ({}),
    );
    const err = await refusal(store.flush());
    expect(err.serverMessage).toBe('partial write: points beyond retention policy dropped=1');
    expect(await count(db, VSS.soc)).toBe(1);
    expect(store.stats()).toMatchObject({ failedLines: 0, refusedLines: 2 });
    await store.close();
  });
});

describe('the pipeline on influxd 1.6.7', () => {
  async function startOn(db: string, store: Awaited<ReturnType<typeof createInfluxTelemetryStore>>, clock = createClock('event')) {
    const stores = createMemoryStores();
    await stores.vehicles.upsert(VIN_A, bev(), T0);
    await stores.vehicles.upsert(VIN_B, bev(), T0);
    // the app's own too-old screen off: influxd's retention policy is what refuses here
    const i = await startIngestParts({ dir: tempDir(dirs), stores, telemetry: store, pool, clock, limits: { telemetryRetentionDays: 0 } });
    running.push(i);
    return i;
  }

  it('field type conflict: the conflicting readings are dead-lettered with the reason, every other reading is in InfluxDB', async () => {
    const db = await freshDb();
    // someone else made Vehicle.Speed a boolean in this shard
    await postLines(db, [`telemetry,vin=OTHER Vehicle.Speed=true ${T0 - 3_600_000}`]);
    const store = await createInfluxTelemetryStore({ url: influxd.url, token: '', org: 'o', bucket: db, logger: quiet });
    const i = await startOn(db, store);
    const soc = (m: number, speed?: number): Sample => ({
      ts: T0 + m * MIN,
      signals: speed === undefined ? { [VSS.soc]: 60 - m } : { [VSS.soc]: 60 - m, [VSS.speed]: speed },
    });
    await i.send(VIN_A, 1, [soc(0), soc(1), soc(2, 30), soc(3), soc(4)]);
    await i.send(VIN_B, 1, [soc(5), soc(6), soc(7), soc(8, 40), soc(9, 45)]);
    await i.send(VIN_A, 2, [soc(10), soc(11), soc(12)]);
    i.pipeline.start();

    await waitFor(() => i.journal.lag().influx === 0, { what: 'the chunk to be done' });
    expect(await count(db, VSS.soc)).toBe(13 - 3);
    expect(await count(db, VSS.soc, ` WHERE "vin" = '${VIN_B}'`)).toBe(3);
    const dead = await i.stores.deadLetters.list(10);
    expect(dead).toHaveLength(2);
    for (const d of dead) {
      expect(d.reason).toMatch(
        /^influx: partial write: field type conflict: input field "Vehicle\.Speed" on measurement "telemetry" is type float, already exists as type boolean dropped=1 \(HTTP 400;/,
      );
    }
    const refusedTimes = dead.flatMap((d) => decodeTelemetryBatch(Buffer.from(d.payloadBase64, 'base64')).samples.map((s) => s.ts)).sort();
    expect(refusedTimes).toEqual([T0 + 2 * MIN, T0 + 8 * MIN, T0 + 9 * MIN]);
    expect(await counterValue(i.metrics.deadLetters, { reason: 'influx_refused' })).toBe(2);
    expect(await counterValue(i.metrics.influxErrors)).toBe(0);

    // the next chunk is written without a backoff
    await i.send(VIN_A, 3, [soc(20), soc(21)]);
    await waitFor(async () => i.journal.lag().influx === 0 && (await count(db, VSS.soc)) === 12, { what: 'the next chunk in InfluxDB' });
    expect(await counterValue(i.metrics.influxErrors)).toBe(0);
    expect(await i.stores.deadLetters.count()).toBe(2);
  });

  it('retention: points older than a 1 h policy are dead-lettered, the recent ones of the same chunk written', async () => {
    const db = await freshDb('1h');
    const store = await createInfluxTelemetryStore({ url: influxd.url, token: '', org: 'o', bucket: db, logger: quiet });
    const i = await startOn(db, store, createClock('wall'));
    const now = Math.floor(Date.now() / 1000) * 1000;
    const at = (ts: number, soc: number): Sample => ({ ts, signals: { [VSS.soc]: soc } });
    const old = now - 3 * 86_400_000;
    await i.send(VIN_A, 1, [at(old, 70), at(old + MIN, 69), at(now - 10 * MIN, 68)]);
    await i.send(VIN_B, 1, [at(now - 9 * MIN, 50), at(now - 8 * MIN, 49)]);
    i.pipeline.start();

    await waitFor(() => i.journal.lag().influx === 0, { what: 'the chunk to be done' });
    expect(await count(db, VSS.soc)).toBe(3);
    const dead = await i.stores.deadLetters.list(10);
    expect(dead).toHaveLength(1);
    expect(dead[0].topic).toBe(`telemetry/${VIN_A}`);
    expect(dead[0].reason).toMatch(/^influx: partial write: points beyond retention policy dropped=1 \(HTTP 400; 2 sample\(s\) of seq 1/);
    expect(decodeTelemetryBatch(Buffer.from(dead[0].payloadBase64, 'base64')).samples.map((s) => s.ts)).toEqual([old, old + MIN]);
    expect(await counterValue(i.metrics.influxErrors)).toBe(0);

    await i.send(VIN_B, 2, [at(now - 5 * MIN, 48)]);
    await waitFor(async () => i.journal.lag().influx === 0 && (await count(db, VSS.soc)) === 4, { what: 'the next chunk in InfluxDB' });
    expect(await counterValue(i.metrics.influxErrors)).toBe(0);
  });
});
