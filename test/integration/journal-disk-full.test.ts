// The journal on a real, full filesystem (docs/architecture.md#disk-full): a size-limited tmpfs
// filled to ENOSPC. SQLite answers SQLITE_FULL; the failed commit is rolled back, its appends are
// rejected with a StorageWriteError (so nothing is acknowledged), the connection stays usable for
// reads, and once the space is back the same appends succeed with nothing committed lost, nothing
// half-committed, and no restart. Then the same through the embedded broker: no PUBACK, the
// connection closed, the re-sent batches stored.
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClock } from '../../ingest/clock.js';
import { startEmbeddedBroker } from '../../ingest/inbound/embedded.js';
import { createInboundHandlers } from '../../ingest/inbound/handlers.js';
import { DecodedCache } from '../../ingest/journal/decoded-cache.js';
import { Journal } from '../../ingest/journal/journal.js';
import { createMetrics } from '../../ingest/metrics.js';
import { StorageWriteError } from '../../ingest/store/storage-errors.js';
import { createMemoryStores } from '../../ingest/stores.js';
import { Database } from '../../ingest/store/sqlite/driver.js';
import { encodeTelemetryBatch } from '../../proto/codec.js';
import { VSS } from '../../proto/signals.js';
import { mountTmpfs, tmpfsUnavailable, type Tmpfs } from '../support/tmpfs.js';
import { waitFor } from '../support/wait.js';

const VIN = 'LSVAU2180N2184001';
const noTmpfs = tmpfsUnavailable();
const payload = (seq: number) => Buffer.alloc(600, seq % 251);

/** Log lines the journal writes (it logs changes of state only). */
function logSink() {
  const lines: Array<{ level: 'error' | 'warn'; msg: string; o: object }> = [];
  return {
    lines,
    log: {
      error: (o: object, msg: string) => void lines.push({ level: 'error', msg, o }),
      warn: (o: object, msg: string) => void lines.push({ level: 'warn', msg, o }),
    },
  };
}

describe.skipIf(noTmpfs !== null)(`journal on a full disk (${noTmpfs ?? 'tmpfs of 4 MiB'})`, () => {
  let fs: Tmpfs;
  beforeAll(() => {
    fs = mountTmpfs(4 << 20);
  });
  afterAll(() => fs?.unmount());

  it('refuses appends with a typed error while full, stays consistent, and takes them once space is back', async () => {
    const { lines, log } = logSink();
    let journal = new Journal(fs.dir, { log });
    const committed: number[] = [];
    for (let seq = 1; seq <= 100; seq++) {
      expect(await journal.append(VIN, seq, payload(seq), 1000 + seq, 'boot-1')).toBe('new');
      committed.push(seq);
    }
    expect(fs.fill()).toBeGreaterThan(0);

    // Appends may still fit in WAL pages already on disk; keep appending until one is refused.
    let seq = 100;
    const refused = await waitFor(
      async () => {
        seq++;
        try {
          await journal.append(VIN, seq, payload(seq), 1000 + seq, 'boot-1');
          committed.push(seq);
          return undefined;
        } catch (err) {
          return err;
        }
      },
      { what: 'an append refused on the full disk', intervalMs: 0, timeoutMs: 60_000 },
    );
    expect(refused).toBeInstanceOf(StorageWriteError);
    expect(refused).toMatchObject({ store: 'journal', reason: 'full', code: 'SQLITE_FULL' });
    const failedSeq = seq;
    expect(journal.journalWritable()).toBe(false);
    expect(journal.storageState()).toMatchObject({ writable: false, reason: 'full' });

    // More refusals: one group commit of several appends, all rejected, none half-written.
    const more = await Promise.allSettled(
      [failedSeq, failedSeq + 1, failedSeq + 2].map((s) => journal.append(VIN, s, payload(s), 1, 'boot-1')),
    );
    expect(more.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    // Reads still work, and show exactly what was committed.
    expect(journal.has(VIN, 'boot-1', failedSeq)).toBe(false);
    expect(journal.pendingForInflux(0, 10_000).map((e) => e.seq)).toEqual(committed);
    expect(journal.sequence(VIN)).toMatchObject({ bootId: 'boot-1', lastSeq: committed.at(-1), gaps: 0 });
    expect(journal.storageState().failedAppends).toBeGreaterThanOrEqual(4);
    // logged once when it became unwritable, not per refused append
    expect(lines).toEqual([expect.objectContaining({ level: 'error', msg: expect.stringContaining('journal not writable') as string })]);

    fs.free();
    // the very appends that were refused are new now (nothing of them was kept), in the same process
    expect(await journal.append(VIN, failedSeq, payload(failedSeq), 2000, 'boot-1')).toBe('new');
    expect(journal.journalWritable()).toBe(true);
    expect(await journal.append(VIN, failedSeq + 1, payload(failedSeq + 1), 2001, 'boot-1')).toBe('new');
    expect(await journal.append(VIN, failedSeq + 2, payload(failedSeq + 2), 2002, 'boot-1')).toBe('new');
    expect(await journal.append(VIN, failedSeq, payload(failedSeq), 2003, 'boot-1')).toBe('duplicate');
    committed.push(failedSeq, failedSeq + 1, failedSeq + 2);
    expect(lines.map((l) => l.level)).toEqual(['error', 'warn']);
    expect(lines[1].msg).toContain('writable again');
    expect(journal.sequence(VIN)).toMatchObject({ lastSeq: failedSeq + 2, gaps: 0 });
    journal.markInfluxDone([1, 2, 3]);

    // and after a reopen: every committed batch, its payload intact, the file sound
    journal.close();
    const db = new Database(`${fs.dir}/journal.db`, { readonly: true });
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    db.close();
    journal = new Journal(fs.dir);
    const entries = journal.pendingForRules(0, 10_000);
    expect(entries.map((e) => e.seq)).toEqual(committed);
    for (const e of entries) expect(e.payload).toEqual(payload(e.seq));
    expect(journal.pendingForInflux(0, 10_000)).toHaveLength(committed.length - 3);
    journal.close();
  });
});

describe.skipIf(noTmpfs !== null)(`embedded broker on a full disk (${noTmpfs ?? 'tmpfs of 4 MiB'})`, () => {
  let fs: Tmpfs;
  beforeAll(() => {
    fs = mountTmpfs(4 << 20);
  });
  afterAll(() => fs?.unmount());

  const batch = (seq: number) =>
    Buffer.from(
      encodeTelemetryBatch({
        vin: VIN,
        bootId: 'boot-e',
        seq,
        dropped: 0,
        samples: [{ ts: Date.now() - 60_000 + seq, signals: { [VSS.soc]: 50, [VSS.speed]: 0 } }],
      }),
    );

  it('sends no PUBACK and closes the connection for a batch it cannot journal; the re-sent batch is stored', async () => {
    const journal = new Journal(fs.dir);
    const metrics = createMetrics();
    const handlers = createInboundHandlers({
      journal,
      decoded: new DecodedCache(),
      stores: createMemoryStores(),
      metrics,
      clock: createClock('wall'),
      storageRetryMs: 50,
      onJournalled: () => {},
      onOnline: () => {},
      onAcks: () => {},
    });
    const broker = await startEmbeddedBroker({ prefix: 'v1', host: '127.0.0.1', port: 0 }, handlers);
    const url = `mqtt://127.0.0.1:${broker.port}`;
    const topic = `v1/vehicles/${VIN}/telemetry`;
    try {
      const c1 = await mqtt.connectAsync(url, { clientId: VIN, username: VIN, reconnectPeriod: 0 });
      for (let seq = 1; seq <= 20; seq++) await c1.publishAsync(topic, batch(seq), { qos: 1 });
      fs.fill();
      // publish until one is refused: its promise never resolves (no PUBACK), the connection closes
      const closed = new Promise<void>((r) => c1.once('close', () => r()));
      const acked: number[] = [];
      let seq = 20;
      let open = true;
      void closed.then(() => (open = false));
      while (open) {
        const s = ++seq;
        const p = c1.publishAsync(topic, batch(s), { qos: 1 }).then(() => void acked.push(s));
        p.catch(() => {});
        await Promise.race([p, closed]);
      }
      const unacked = Array.from({ length: seq - 20 }, (_, i) => 21 + i).filter((s) => !acked.includes(s));
      expect(unacked.length).toBeGreaterThan(0);
      expect(journal.journalWritable()).toBe(false);
      const failures = await metrics.journalWriteFailures.get();
      expect(failures.values.find((v) => v.labels.reason === 'full')?.value ?? 0).toBeGreaterThan(0);
      for (const s of unacked) expect(journal.has(VIN, 'boot-e', s)).toBe(false);

      fs.free();
      // the vehicle reconnects and re-sends what got no PUBACK: every one is acknowledged now
      const c2 = await mqtt.connectAsync(url, { clientId: VIN, username: VIN, reconnectPeriod: 0 });
      await Promise.all(unacked.map((s) => c2.publishAsync(topic, batch(s), { qos: 1 })));
      await c2.endAsync();
      expect(journal.journalWritable()).toBe(true);
      const stored = new Set(journal.pendingForInflux(0, 10_000).map((e) => e.seq));
      for (let s = 1; s <= seq; s++) expect(stored.has(s), `seq ${s}`).toBe(true);
    } finally {
      await broker.close();
      journal.close();
    }
  });
});

describe('embedded broker: an ack or status that storage refused', () => {
  it('closes the connection without a PUBACK for the ack, survives the status, and keeps serving', async () => {
    const full = () =>
      Promise.reject(new StorageWriteError('dead_letters', Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' })));
    const seen: string[] = [];
    const broker = await startEmbeddedBroker(
      { prefix: 'v1', host: '127.0.0.1', port: 0 },
      {
        telemetry: async (vin) => void seen.push(`telemetry ${vin}`),
        status: (vin) => {
          seen.push(`status ${vin}`);
          return full();
        },
        ack: (vin) => {
          seen.push(`ack ${vin}`);
          return full();
        },
      },
    );
    const url = `mqtt://127.0.0.1:${broker.port}`;
    try {
      const hmi = await mqtt.connectAsync(url, { clientId: `${VIN}:hmi`, username: VIN, reconnectPeriod: 0 });
      const closed = new Promise<void>((r) => hmi.once('close', () => r()));
      let acked = false;
      hmi
        .publishAsync(`v1/vehicles/${VIN}/prompts/ack`, Buffer.from([1]), { qos: 1 })
        .then(() => (acked = true))
        .catch(() => {});
      await closed;
      expect(acked).toBe(false);
      expect(seen).toEqual([`ack ${VIN}`]);

      // a status is PUBACKed before it is handled (aedes 'publish'): its rejection must stay inside the adapter
      const agent = await mqtt.connectAsync(url, { clientId: VIN, username: VIN, reconnectPeriod: 0 });
      await agent.publishAsync(`v1/vehicles/${VIN}/status`, Buffer.from([1]), { qos: 1, retain: true });
      await waitFor(() => seen.includes(`status ${VIN}`), { what: 'the status handled' });
      await agent.publishAsync(`v1/vehicles/${VIN}/telemetry`, Buffer.from([1]), { qos: 1 });
      expect(seen).toContain(`telemetry ${VIN}`);
      await agent.endAsync();
    } finally {
      await broker.close();
    }
  });
});
