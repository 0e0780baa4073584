// The cluster-mode telemetry log (ingest/cluster/telemetry-log.ts) against a real nats-server
// cluster (3 nodes, replicas 3; Debian's nats-server 2.9.10 in CI) and a single server (replicas 1):
// appends acknowledged and read back per partition in stream order from any start; a re-sent batch
// is a duplicate stored once; kill -9 of the stream leader under concurrent appends: every append
// that resolved is in the stream exactly once, none hangs, a reader keeps reading, and the killed
// node catches up after its restart.
import { jetstreamManager } from '@nats-io/jetstream';
import { errors } from '@nats-io/transport-node';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DEFAULT_PARTITIONS, fnv1a32, parsePartitions, partitionOf, validatePartitions } from '../../ingest/cluster/partition.js';
import {
  DEFAULT_MAX_AGE_MS,
  JetStreamTelemetryLog,
  TELEMETRY_STREAM,
  TelemetryLogUnavailableError,
  type TelemetryLogBatch,
  type TelemetryLogEntry,
} from '../../ingest/cluster/telemetry-log.js';
import { freePort } from '../../tools/free-port.js';
import { NATS_SERVER, startNatsCluster, type NatsCluster } from '../support/nats.js';
import { waitFor } from '../support/wait.js';

const haveNats = NATS_SERVER.startsWith('/') ? existsSync(NATS_SERVER) : true;
const quiet = () => {};
const te = new TextEncoder();

/** A valid VIN (no I, O, Q) per number. */
const vinOf = (i: number) => `WVWZZZ1K${String(i).padStart(9, '0')}`;
const keyOf = (b: { vin: string; bootId: string; seq: number }) => `${b.vin}|${b.bootId}|${b.seq}`;
const batch = (vin: string, seq: number, bootId = 'boot-1'): TelemetryLogBatch => ({
  vin,
  bootId,
  seq,
  payload: te.encode(`${vin}/${bootId}/${seq}`),
  receivedAt: 1_700_000_000_000 + seq,
});

/** Everything of `partition` from `fromSeq` up to its last entry now, through a reader. */
async function readAll(log: JetStreamTelemetryLog, partition: number, fromSeq = 1): Promise<TelemetryLogEntry[]> {
  const last = await log.lastSeq(partition);
  const r = log.readPartition(partition, fromSeq);
  const out: TelemetryLogEntry[] = [];
  const deadline = Date.now() + 20_000;
  try {
    while (r.position() < last) {
      if (Date.now() > deadline) throw new Error(`partition ${partition}: read up to ${r.position()} of ${last} in 20 s`);
      out.push(...(await r.nextBatch({ maxEntries: 500, maxWaitMs: 20 })));
    }
  } finally {
    await r.stop();
  }
  return out;
}

const increasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]);

describe('partitionOf', () => {
  it('is FNV-1a 32 of the VIN bytes mod the partition count', () => {
    // published FNV-1a 32 test vectors
    expect(fnv1a32(te.encode(''))).toBe(0x811c9dc5);
    expect(fnv1a32(te.encode('a'))).toBe(0xe40c292c);
    expect(fnv1a32(te.encode('foobar'))).toBe(0xbf9cf968);
    const vin = vinOf(1);
    expect(partitionOf(vin, 64)).toBe(fnv1a32(te.encode(vin)) % 64);
    expect(partitionOf(vin, 1)).toBe(0);
    const seen = new Set(Array.from({ length: 2000 }, (_, i) => partitionOf(vinOf(i), 64)));
    expect(seen.size).toBe(64);
  });

  it('takes 1..1024 partitions only', () => {
    expect(parsePartitions(undefined)).toBe(DEFAULT_PARTITIONS);
    expect(parsePartitions(' 1024 ')).toBe(1024);
    for (const bad of ['0', '1025', '-1', '2.5', 'x']) expect(() => parsePartitions(bad)).toThrow(/ODOPULSE_PARTITIONS/);
    expect(() => validatePartitions(NaN)).toThrow(/ODOPULSE_PARTITIONS/);
    expect(() => partitionOf(vinOf(1), 0)).toThrow(/ODOPULSE_PARTITIONS/);
  });
});

describe.skipIf(!haveNats)('JetStreamTelemetryLog, 3-node cluster, replicas 3', () => {
  let cluster: NatsCluster;
  let log: JetStreamTelemetryLog;

  beforeAll(async () => {
    const t0 = Date.now();
    cluster = await startNatsCluster({ nodes: 3 });
    console.log(`nats cluster of 3 healthy in ${Date.now() - t0} ms`);
    log = await JetStreamTelemetryLog.connect({ servers: cluster.urls, name: 'test-reader', log: quiet });
    await log.ensureStream({ replicas: 3 });
  });
  afterAll(async () => {
    await log?.close();
    await cluster?.close();
  });

  it('creates the stream once and updates what may change', async () => {
    const again = await log.ensureStream({ replicas: 3 });
    expect(again.config).toMatchObject({ name: TELEMETRY_STREAM, num_replicas: 3, storage: 'file', subjects: ['odopulse.telemetry.*.*'] });
    expect(again.config.max_age).toBe(DEFAULT_MAX_AGE_MS * 1e6);
    expect(again.config.duplicate_window).toBe(120e9);
    expect(again.config.max_msg_size).toBeGreaterThan(256 * 1024);
    const shorter = await log.ensureStream({ replicas: 3, maxAgeMs: 86_400_000 });
    expect(shorter.config.max_age).toBe(86_400_000 * 1e6);
    await log.ensureStream({ replicas: 3 });
    const other = await JetStreamTelemetryLog.connect({ servers: cluster.urls, name: 'other-partitions', partitions: 32 });
    try {
      await expect(other.ensureStream({ replicas: 3 })).rejects.toThrow(/ODOPULSE_PARTITIONS=64/);
    } finally {
      await other.close();
    }
  });

  it('reads each partition in stream order from any start sequence, in batches', async () => {
    const vins = Array.from({ length: 40 }, (_, i) => vinOf(1000 + i));
    const sent: TelemetryLogBatch[] = [];
    for (let seq = 1; seq <= 5; seq++) for (const vin of vins) sent.push(batch(vin, seq));
    const results = await Promise.all(sent.map((b) => log.append(b)));
    expect(results.every((r) => r === 'new')).toBe(true);

    const byPartition = new Map<number, TelemetryLogBatch[]>();
    for (const b of sent) {
      const p = partitionOf(b.vin, 64);
      (byPartition.get(p) ?? byPartition.set(p, []).get(p)!).push(b);
    }
    await Promise.all(
      [...byPartition].map(async ([p, expected]) => {
        const got = (await readAll(log, p)).filter((e) => vins.includes(e.vin));
        expect(increasing(got.map((e) => e.streamSeq))).toBe(true);
        expect(got.every((e) => e.partition === p)).toBe(true);
        expect(got.map(keyOf).sort()).toEqual(expected.map(keyOf).sort());
        const e0 = got[0];
        expect(Buffer.from(e0.payload!).toString()).toBe(`${e0.vin}/${e0.bootId}/${e0.seq}`);
        expect(e0.receivedAt).toBe(1_700_000_000_000 + e0.seq);
        expect(await log.lastSeq(p)).toBe(got.at(-1)!.streamSeq);
        // from the middle: exactly the suffix
        const mid = got[Math.floor(got.length / 2)].streamSeq;
        const suffix = (await readAll(log, p, mid)).filter((e) => vins.includes(e.vin));
        expect(suffix.map((e) => e.streamSeq)).toEqual(got.filter((e) => e.streamSeq >= mid).map((e) => e.streamSeq));
      }),
    );

    // batches of at most N, and an empty one after T ms when there is nothing more
    const [p] = byPartition.keys();
    const r = log.readPartition(p, 1, { bufferEntries: 3 });
    try {
      const first = await r.nextBatch({ maxEntries: 2, maxWaitMs: 5000 });
      expect(first).toHaveLength(2);
      const rest: TelemetryLogEntry[] = [];
      for (;;) {
        const b = await r.nextBatch({ maxEntries: 2, maxWaitMs: 300 });
        expect(b.length).toBeLessThanOrEqual(2);
        if (b.length === 0) break;
        rest.push(...b);
      }
      expect(r.position()).toBe(await log.lastSeq(p));
      expect(increasing([...first, ...rest].map((e) => e.streamSeq))).toBe(true);
    } finally {
      await r.stop();
    }
    expect(await r.nextBatch({ maxEntries: 1, maxWaitMs: 10 })).toEqual([]);

    // next(max, waitMs): whatever is there as soon as there is something
    const r2 = log.readPartition(p, 1);
    try {
      const some = await r2.next(1000, 5000);
      expect(some.length).toBeGreaterThan(0);
      expect(some[0].streamSeq).toBeGreaterThanOrEqual(1);
    } finally {
      await r2.stop();
    }
  });

  it('answers a re-sent batch as a duplicate and stores it once; keeps odd boot ids and empty batches', async () => {
    const vin = vinOf(2000);
    const odd: TelemetryLogBatch = { vin, bootId: 'b:ö/ 7\u{1F697}', seq: 3, payload: null, receivedAt: 1 };
    expect(await log.append(batch(vin, 1))).toBe('new');
    expect(await log.append(batch(vin, 1))).toBe('duplicate');
    expect(await log.append(batch(vin, 1, 'boot-2'))).toBe('new'); // a new boot is a new sequence space
    expect(await log.append(odd)).toBe('new');
    expect(await log.append({ ...odd, receivedAt: 2 })).toBe('duplicate');
    const got = (await readAll(log, partitionOf(vin, 64))).filter((e) => e.vin === vin);
    expect(got.map(keyOf)).toEqual([keyOf(batch(vin, 1)), keyOf(batch(vin, 1, 'boot-2')), keyOf(odd)]);
    expect(got[2]).toMatchObject({ bootId: odd.bootId, receivedAt: 1 });
    expect(got[2].payload.byteLength).toBe(0); // appended without payload
    await expect(log.append({ ...batch(vin, 4), vin: 'not.a.vin' })).rejects.toThrow(/not a VIN/);
  });

  it('survives kill -9 of the stream leader under concurrent appends; a reader reads on; the node catches up', async () => {
    const { cluster: ci } = await log.ensureStream({ replicas: 3 });
    const leader = cluster.nodes.findIndex((n) => n.name === ci?.leader);
    expect(leader).toBeGreaterThanOrEqual(0);
    // the appender talks to the leader (it learns the others from the cluster): its connection dies too
    const appender = await JetStreamTelemetryLog.connect({
      servers: [cluster.urls[leader]],
      name: 'test-appender',
      appendTimeoutMs: 6000,
      log: quiet,
    });
    const vins = Array.from({ length: 48 }, (_, i) => vinOf(3000 + i));
    const watched = partitionOf(vins[0], 64);
    const reader = log.readPartition(watched, 1, { bufferEntries: 64 });
    const seen: TelemetryLogEntry[] = [];
    const reading = (async () => {
      for await (const e of reader) seen.push(e);
    })();

    const resolved = new Map<string, 'new' | 'duplicate'>();
    let rejected = 0;
    let longest = 0;
    let lastResolvedAt = Date.now();
    let longestGap = 0;
    let running = true;
    let killedAt = Infinity;
    /** ms from the kill to the first acknowledged append that started after it: the failover time. */
    let firstAfterKill: number | undefined;
    const worker = async (vin: string) => {
      let seq = 1;
      while (running) {
        const t = Date.now();
        try {
          const r = await appender.append(batch(vin, seq));
          resolved.set(keyOf(batch(vin, seq)), r);
          if (t > killedAt) firstAfterKill ??= Date.now() - killedAt;
          longestGap = Math.max(longestGap, Date.now() - lastResolvedAt);
          lastResolvedAt = Date.now();
          seq++; // the next batch only once this one is stored, as the agent's spool does
        } catch (err) {
          expect(err).toBeInstanceOf(TelemetryLogUnavailableError);
          rejected++;
          await new Promise((r) => setTimeout(r, 100)); // the vehicle re-sends the same batch
        } finally {
          longest = Math.max(longest, Date.now() - t);
        }
      }
    };
    const workers = vins.map(worker);
    await new Promise((r) => setTimeout(r, 1500));
    const before = resolved.size;
    longestGap = 0;
    await cluster.kill(leader);
    killedAt = Date.now();
    // the other tests need all three nodes, whatever happens here
    onTestFinished(async () => {
      running = false;
      if (!cluster.running(leader)) await cluster.start(leader);
    });
    // a new leader is elected (2.9: 4-9 s after the old one's last heartbeat; longer on a busy CI
    // machine) and appends flow again
    await waitFor(() => firstAfterKill !== undefined && resolved.size > before + 500, {
      timeoutMs: 50_000,
      what: 'appends acknowledged after the kill',
    });
    const during = resolved.size - before;
    const t0 = Date.now();
    await cluster.start(leader);
    const caughtUpMs = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 1000));
    running = false;
    await Promise.all(workers);
    console.log(
      `failover: ${before} appends before the kill; first ack of an append started after it ${firstAfterKill} ms after the kill; ` +
        `longest gap without an ack ${longestGap} ms, longest append ${longest} ms, ${rejected} rejected; ` +
        `${during} acked until the restart, after which the node was healthy (caught up) in ${caughtUpMs} ms`,
    );
    // none hung: each append settled within its timeout plus scheduling slack
    expect(longest).toBeLessThan(6000 + 3000);

    // every resolved append is in the stream exactly once; nothing is there twice
    const parts = [...new Set(vins.map((v) => partitionOf(v, 64)))];
    const stored = (await Promise.all(parts.map((p) => readAll(log, p)))).flat().filter((e) => vins.includes(e.vin));
    const counts = new Map<string, number>();
    for (const e of stored) counts.set(keyOf(e), (counts.get(keyOf(e)) ?? 0) + 1);
    expect([...counts].filter(([, n]) => n > 1)).toEqual([]);
    expect([...resolved.keys()].filter((k) => !counts.has(k))).toEqual([]);

    // the reader went on across the kill: all of its partition, in order, once
    const expected = (await readAll(log, watched)).map((e) => e.streamSeq);
    await waitFor(() => seen.length >= expected.length, {
      timeoutMs: 20_000,
      what: `the reader of partition ${watched} at all ${expected.length} entries`,
    });
    expect(seen.map((e) => e.streamSeq)).toEqual(expected);
    expect(increasing(seen.map((e) => e.streamSeq))).toBe(true);
    console.log(`reader: ${seen.length} entries, consumer recreated ${reader.restarts} time(s)`);
    await reader.stop();
    await reading;

    // the restarted node has every message again (each node holds a replica of the stream)
    const total = (await log.streamState()).messages;
    await waitFor(async () => (await Promise.all([0, 1, 2].map((i) => cluster.jsz(i)))).every((j) => j.messages === total), {
      timeoutMs: 20_000,
      what: `every node holding all ${total} messages`,
    });
    await appender.close();
  }, 120_000);

  it("recreates a reader's consumer when the server holding it dies", async () => {
    const vin = vinOf(4000);
    const p = partitionOf(vin, 64);
    const from = (await log.lastSeq(p)) + 1;
    const reader = log.readPartition(p, from);
    try {
      expect(await log.append(batch(vin, 1))).toBe('new');
      const [first] = await reader.next(10, 10_000);
      expect(first).toMatchObject({ vin, seq: 1 });
      // the reader's consumer is the only one on the partition's subjects now: kill its server
      const consumers = await (await jetstreamManager(log.nc)).consumers.list(TELEMETRY_STREAM).next();
      const mine = consumers.find((c) => c.config.filter_subject === `odopulse.telemetry.${p}.*`);
      const host = cluster.nodes.findIndex((n) => n.name === mine?.cluster?.leader);
      expect(host).toBeGreaterThanOrEqual(0);
      await cluster.kill(host);
      const restartsBefore = reader.restarts;
      for (let seq = 2; seq <= 5; seq++) expect(await log.append(batch(vin, seq))).toBe('new');
      const rest: TelemetryLogEntry[] = [];
      const deadline = Date.now() + 30_000;
      // only this test's VIN: an append of an earlier test that outlived it may land in the partition too
      while (rest.length < 4 && Date.now() < deadline) rest.push(...(await reader.next(10, 1000)).filter((e) => e.vin === vin));
      expect(rest.map((e) => e.seq)).toEqual([2, 3, 4, 5]);
      expect(reader.restarts).toBeGreaterThan(restartsBefore);
      await cluster.start(host);
    } finally {
      await reader.stop();
    }
  }, 60_000);
});

describe.skipIf(!haveNats)('JetStreamTelemetryLog, single server, replicas 1', () => {
  let single: NatsCluster;
  beforeAll(async () => {
    single = await startNatsCluster({ nodes: 1 });
  });
  afterAll(() => single?.close());

  it('appends, dedups and reads with replicas 1', async () => {
    const log = await JetStreamTelemetryLog.connect({ servers: single.urls.join(','), name: 'single', partitions: 4 });
    try {
      const info = await log.ensureStream({ replicas: 1, maxAgeMs: 3_600_000 });
      expect(info.config.num_replicas).toBe(1);
      const vin = vinOf(1);
      for (let seq = 1; seq <= 20; seq++) expect(await log.append(batch(vin, seq))).toBe('new');
      expect(await log.append(batch(vin, 7))).toBe('duplicate');
      const p = partitionOf(vin, 4);
      const got = await readAll(log, p);
      expect(got.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(await log.lastSeq((p + 1) % 4)).toBe(0);
    } finally {
      await log.close();
    }
  });

  it('a stream create whose answer is lost (a timeout, the stream made) is asked again and found', async () => {
    const log = await JetStreamTelemetryLog.connect({ servers: single.urls.join(','), name: 'lost-answer', partitions: 4 });
    try {
      const streams = (
        log as unknown as { jsm: { streams: { add: (c: unknown) => Promise<unknown>; delete: (n: string) => Promise<boolean> } } }
      ).jsm.streams;
      await streams.delete(TELEMETRY_STREAM).catch(() => false);
      const realAdd = streams.add.bind(streams);
      let adds = 0;
      streams.add = async (c: unknown) => {
        adds++;
        await realAdd(c);
        throw new errors.TimeoutError();
      };
      const info = await log.ensureStream({ replicas: 1, maxAgeMs: 3_600_000 });
      expect(adds).toBe(1);
      expect(info.config.name).toBe(TELEMETRY_STREAM);
      expect(info.config.max_age).toBe(3_600_000 * 1e6);
    } finally {
      await log.close();
    }
  });

  it('names ODOPULSE_NATS_URL when the first connect fails', async () => {
    const port = await freePort();
    await expect(
      JetStreamTelemetryLog.connect({ servers: `nats://127.0.0.1:${port}`, name: 'nobody', connectTimeoutMs: 1000 }),
    ).rejects.toThrow(/ODOPULSE_NATS_URL/);
  });
});
