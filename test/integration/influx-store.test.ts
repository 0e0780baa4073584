// The InfluxDB telemetry store against a real influxd 1.6.7 (temp dir, free loopback port).
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Reading } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';
import {
  createInfluxTelemetryStore,
  InfluxConfigError,
  TelemetryFlushError,
  TelemetryRefusedError,
  type InfluxTelemetryStoreOptions,
} from '../../ingest/store/influx/store.js';
import { quoteString } from '../../ingest/store/influx/schema.js';
import { influxNumber, influxQuery, startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { waitFor } from '../support/wait.js';
import { telemetryStoreSuite } from '../ports/telemetry-store.suite.js';

const VIN = 'LSVAU2180N2183294';
const T0 = Date.UTC(2026, 2, 1);
const noTags = (): Record<string, string> => ({});
const quiet = { warn: () => undefined, error: () => undefined };
const speeds = (n: number, start = T0): Reading[] =>
  Array.from({ length: n }, (_, i) => ({ vin: VIN, ts: start + i * 1000, signals: { [VSS.speed]: i } }));

let influxd: InfluxdHandle;
let dbSeq = 0;

async function freshDb(): Promise<string> {
  const db = `t${process.pid}_${++dbSeq}`;
  await influxQuery(influxd.url, db, `CREATE DATABASE "${db}"`);
  return db;
}

async function countIn(db: string, from = '"telemetry"'): Promise<number> {
  return influxNumber(influxd.url, db, `SELECT COUNT("${VSS.speed}") FROM ${from}`);
}

function storeOpts(db: string, extra: Partial<InfluxTelemetryStoreOptions> = {}): InfluxTelemetryStoreOptions {
  return { url: influxd.url, token: '', org: 'odopulse', bucket: db, logger: quiet, ...extra };
}

beforeAll(async () => {
  influxd = await startInfluxd();
});
afterAll(async () => {
  await influxd?.stop();
});

telemetryStoreSuite('influxd 1.6.7', async () => {
  const db = await freshDb();
  const store = await createInfluxTelemetryStore(storeOpts(db));
  return {
    store,
    async cleanup() {
      await store.close().catch(() => undefined);
      await influxQuery(influxd.url, db, `DROP DATABASE "${db}"`);
    },
  };
});

/** A pass-through HTTP proxy in front of influxd that records every request (and can hold writes). */
async function recordingProxy(
  target: string,
  holdWritesMs = 0,
): Promise<{ url: string; seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders }>; close(): Promise<void> }> {
  const seen: Array<{ method: string; url: string; headers: IncomingHttpHeaders }> = [];
  const t = new URL(target);
  const server: Server = createServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
    const hold = req.url?.startsWith('/write') ? holdWritesMs : 0;
    const up = httpRequest({ host: t.hostname, port: t.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      setTimeout(() => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      }, hold);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  return { url: `http://127.0.0.1:${addr.port}`, seen, close: () => new Promise((r) => server.close(() => r())) };
}

describe('InfluxDB store on influxd 1.6.7', () => {
  it('detects 1.x from /ping and writes through the client WriteApi, mapped to /write with Basic auth', async () => {
    const db = await freshDb();
    const proxy = await recordingProxy(influxd.url);
    try {
      const store = await createInfluxTelemetryStore(
        storeOpts(db, { url: proxy.url, token: 'ingest:s3cret', batchSize: 5, flushIntervalMs: 60_000 }),
      );
      expect(store.apiVersion).toBe('v1');
      expect(store.serverVersion).toMatch(/^1\.6\./);
      await store.write(speeds(12), noTags);
      await store.flush();
      const writes = proxy.seen.filter((r) => r.url.startsWith('/write'));
      // 12 lines in batches of 5: the client's batching, not one request per write() call
      expect(writes.map((w) => w.url)).toEqual(Array(3).fill(`/write?db=${db}&precision=ms`));
      for (const w of writes) {
        expect(w.method).toBe('POST');
        expect(w.headers['user-agent']).toMatch(/^influxdb-client-js\/1\./);
        expect(w.headers.authorization).toBe(`Basic ${Buffer.from('ingest:s3cret').toString('base64')}`);
      }
      expect(proxy.seen.some((r) => r.url.startsWith('/api/v2'))).toBe(false);
      expect(await countIn(db)).toBe(12);
      expect(await store.count({ vin: VIN, signal: VSS.speed, from: T0, to: T0 + 60_000 })).toBe(12);
      const q = proxy.seen.find((r) => r.url.startsWith('/query'));
      expect(q?.headers.authorization).toMatch(/^Basic /);
      expect(store.stats()).toEqual({ acceptedLines: 12, failedLines: 0, refusedLines: 0 });
      await store.close();
    } finally {
      await proxy.close();
    }
  });

  it('a flush covers what was written before it, not writes that arrive while it runs', async () => {
    const db = await freshDb();
    const store = await createInfluxTelemetryStore(storeOpts(db, { flushIntervalMs: 60_000 }));
    await store.write(speeds(4), noTags);
    const first = store.flush();
    await store.write(speeds(3, T0 + 100_000), noTags);
    await first;
    expect(await countIn(db)).toBe(4);
    await store.flush();
    expect(await countIn(db)).toBe(7);
    await store.close();
  });

  it('flush waits for batches the client sent in the background before it was called', async () => {
    const db = await freshDb();
    // influxd's answers to writes are held back, so both batches are still in flight at flush()
    const proxy = await recordingProxy(influxd.url, 1000);
    try {
      const store = await createInfluxTelemetryStore(storeOpts(db, { url: proxy.url, batchSize: 5, flushIntervalMs: 60_000 }));
      await store.write(speeds(10), noTags);
      await waitFor(() => proxy.seen.filter((r) => r.url.startsWith('/write')).length === 2, {
        what: 'both writes in flight',
        intervalMs: 5,
      });
      await store.flush();
      expect(await countIn(db)).toBe(10);
      await store.close();
    } finally {
      await proxy.close();
    }
  });

  it('writes to a database/retention-policy bucket; points older than the policy are refused with the server reason', async () => {
    const db = await freshDb();
    await influxQuery(influxd.url, db, `CREATE RETENTION POLICY "week" ON "${db}" DURATION 7d REPLICATION 1`);
    const store = await createInfluxTelemetryStore(storeOpts(`${db}/week`));
    // inside the week, whatever today's date is
    const recent = Math.floor((Date.now() - 86_400_000) / 1000) * 1000;
    await store.write(speeds(3, recent), noTags);
    await store.flush();
    expect(await countIn(db, `"${db}"."week"."telemetry"`)).toBe(3);
    expect(await countIn(db)).toBe(0);
    expect(await store.count({ vin: VIN, signal: VSS.speed, from: recent, to: recent + 60_000 })).toBe(3);
    expect((await store.latest(VIN))?.ts).toBe(recent + 2000);
    // a year old: influxd answers 400 "points beyond retention policy"; re-writing could never help,
    // so it is a refusal (the pipeline dead-letters such points), not a failure to retry
    await store.write(speeds(2, recent - 365 * 86_400_000), noTags);
    const refused = await store.flush().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(TelemetryRefusedError);
    expect((refused as TelemetryRefusedError).serverMessage).toBe('partial write: points beyond retention policy dropped=2');
    expect(store.stats()).toEqual({ acceptedLines: 3, failedLines: 0, refusedLines: 2 });
    expect(await countIn(db, `"${db}"."week"."telemetry"`)).toBe(3);
    await store.close();
  });

  it('string literals survive the round trip: a hostile tag value matches itself exactly', async () => {
    const db = await freshDb();
    const store = await createInfluxTelemetryStore(storeOpts(db));
    const dealer = `D'1" OR ''=', x=y`;
    await store.write(speeds(2), () => ({ dealer }));
    // a tag value line protocol cannot carry is cleaned, not a poison batch that fails forever
    await store.write(speeds(1, T0 + 50_000), () => ({ dealer: 'tab\there\\' }));
    await store.flush();
    const tagValues = await influxQuery(influxd.url, db, 'SHOW TAG VALUES FROM "telemetry" WITH KEY = "dealer"');
    expect(tagValues.results?.[0]?.series?.[0]?.values.map((v) => v[1]).sort()).toEqual([dealer, 'tab here/'].sort());
    const [res] = await store.query(`SELECT COUNT("${VSS.speed}") FROM "telemetry" WHERE "dealer" = ${quoteString(dealer)}`);
    expect(res.series[0].values[0][1]).toBe(2);
    const [none] = await store.query(`SELECT COUNT("${VSS.speed}") FROM "telemetry" WHERE "dealer" = ${quoteString("D'1")}`);
    expect(none.series).toEqual([]);
    await store.close();
  });

  it('refuses to start when the version cannot be detected', async () => {
    await expect(
      createInfluxTelemetryStore({ url: 'http://127.0.0.1:9', token: '', org: 'o', bucket: 'b', timeoutMs: 2000 }),
    ).rejects.toThrow(InfluxConfigError);
    await expect(createInfluxTelemetryStore({ url: 'ftp://x', token: '', org: 'o', bucket: 'b' })).rejects.toThrow(/http/);
  });
});

describe('InfluxDB store when influxd goes away', () => {
  let own: InfluxdHandle;
  beforeAll(async () => {
    own = await startInfluxd();
  });
  afterAll(async () => {
    await own?.stop();
  });

  it('flush rejects while influxd is down and succeeds after it is back and the caller re-writes', async () => {
    const store = await createInfluxTelemetryStore({
      url: own.url,
      token: '',
      org: 'o',
      bucket: own.database,
      apiVersion: 'v1',
      maxRetries: 2,
      timeoutMs: 3000,
      logger: quiet,
    });
    await store.write(speeds(2), noTags);
    await store.flush();
    await own.pause();
    try {
      const lost = speeds(3, T0 + 10_000);
      await store.write(lost, noTags);
      const err = await store.flush().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(TelemetryFlushError);
      expect((err as TelemetryFlushError).unconfirmedLines).toBe(3);
      expect(await store.ping()).toBe(false);
      // a flush started while an earlier one is still failing reports that failure too
      await store.write(lost, noTags);
      const a = store.flush();
      const b = store.flush();
      await expect(a).rejects.toThrow(TelemetryFlushError);
      await expect(b).rejects.toThrow(TelemetryFlushError);
      await own.resume();
      // the journal's re-write after the rejected flush
      await store.write(lost, noTags);
      await store.flush();
    } finally {
      if (!(await store.ping())) await own.resume();
    }
    expect(await store.count({ vin: VIN, signal: VSS.speed, from: T0, to: T0 + 60_000 })).toBe(5);
    await store.close();
  });

  it('lines the client drops from its retry buffer fail the next flush even after influxd is back', async () => {
    const store = await createInfluxTelemetryStore({
      url: own.url,
      token: '',
      org: 'o',
      bucket: own.database,
      apiVersion: 'v1',
      batchSize: 2,
      maxBufferLines: 4,
      flushIntervalMs: 60_000,
      timeoutMs: 3000,
      logger: quiet,
    });
    await own.pause();
    try {
      // five full batches go out at once and fail; the 4-line retry buffer cannot hold them all
      await store.write(speeds(10, T0 + 100_000), noTags);
      await waitFor(() => store.stats().failedLines > 0, { what: 'failed lines counted' });
    } finally {
      await own.resume();
    }
    await expect(store.flush()).rejects.toThrow(/dropped from the client's retry buffer/);
    await store.close();
  });
});

describe('InfluxDB 2.x protocol (a recording stand-in server)', () => {
  it('detects v2 and uses /api/v2/write and InfluxQL /query with the Token header', async () => {
    const seen: Array<{ method: string; url: string; auth: string | undefined; body: string }> = [];
    const server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (body += c));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', auth: req.headers.authorization, body });
        if (req.url === '/ping') res.writeHead(204, { 'X-Influxdb-Version': 'v2.7.11' }).end();
        else if (req.url?.startsWith('/api/v2/write')) res.writeHead(204).end();
        else if (req.url?.startsWith('/query'))
          res.writeHead(200, { 'content-type': 'application/json' }).end(
            JSON.stringify({
              results: [{ statement_id: 0, series: [{ name: 'telemetry', columns: ['time', 'count'], values: [[0, 3]] }] }],
            }),
          );
        else res.writeHead(404).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const store = await createInfluxTelemetryStore({ url, token: 'tok123', org: 'acme', bucket: 'telemetry', logger: quiet });
      expect(store.apiVersion).toBe('v2');
      await store.write(speeds(3), noTags);
      await store.flush();
      expect(await store.count({ signal: VSS.speed, from: T0, to: T0 + 60_000 })).toBe(3);
      const write = seen.find((s) => s.method === 'POST');
      expect(write?.url).toBe('/api/v2/write?org=acme&bucket=telemetry&precision=ms');
      expect(write?.auth).toBe('Token tok123');
      expect(write?.body.split('\n')).toHaveLength(3);
      const query = seen.find((s) => s.url.startsWith('/query'));
      expect(query?.auth).toBe('Token tok123');
      expect(new URL(query?.url ?? '', url).searchParams.get('db')).toBe('telemetry');
      await store.close();
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
