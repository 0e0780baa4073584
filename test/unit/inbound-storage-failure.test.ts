// The inbound handlers when storage refuses writes (docs/architecture.md#disk-full): a batch the
// journal cannot write is retried once after the hold, then refused and counted; a status or an ack
// whose store write and dead letter both fail rejects with a StorageWriteError (the adapter must not
// acknowledge it), counted, never some other error. The real full disk is in
// test/integration/journal-disk-full.test.ts and test/faults/disk-full.test.ts.
import { describe, expect, it } from 'vitest';
import { createClock } from '../../ingest/clock.js';
import { createInboundHandlers } from '../../ingest/inbound/handlers.js';
import { DecodedCache } from '../../ingest/journal/decoded-cache.js';
import type { AppendOutcome, BatchToAppend, Journal } from '../../ingest/journal/journal.js';
import { createMetrics, type Metrics } from '../../ingest/metrics.js';
import type { Stores } from '../../ingest/store/ports.js';
import { StorageWriteError } from '../../ingest/store/storage-errors.js';
import { createMemoryStores } from '../../ingest/stores.js';
import { encodeAgentStatus, encodePromptAck, encodeTelemetryBatch } from '../../proto/codec.js';
import { VSS } from '../../proto/signals.js';

const VIN = 'LSVAU2180N2184101';
/** What better-sqlite3 throws on a full disk. */
const sqliteFull = () => Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });

/** A journal whose commits fail while `full` is set (the parts of Journal the handlers use). */
function fakeJournal() {
  const appended: BatchToAppend[] = [];
  const j = {
    full: false,
    attempts: 0,
    appended,
    appendBatch(b: BatchToAppend): Promise<AppendOutcome> {
      j.attempts++;
      if (j.full) return Promise.reject(new StorageWriteError('journal', sqliteFull()));
      appended.push(b);
      return Promise.resolve({ result: 'new', missingAdded: 0, filled: false });
    },
    has: () => false,
    sequences: () => [],
  };
  return j;
}

function setup(o: { deadLettersFull?: boolean; vehiclesFull?: boolean; promptsFull?: boolean } = {}) {
  const journal = fakeJournal();
  const base = createMemoryStores();
  const stores: Stores = {
    ...base,
    deadLetters: {
      ...base.deadLetters,
      add: async (d) => {
        if (o.deadLettersFull) throw sqliteFull();
        await base.deadLetters.add(d);
      },
    },
    prompts: {
      ...base.prompts,
      markHmiDelivered: async (...args) => {
        if (o.promptsFull) throw sqliteFull();
        return base.prompts.markHmiDelivered(...args);
      },
    },
    vehicles: {
      ...base.vehicles,
      setOnline: async (...args) => {
        if (o.vehiclesFull) throw sqliteFull();
        return base.vehicles.setOnline(...args);
      },
    },
  };
  const metrics = createMetrics();
  const handlers = createInboundHandlers({
    journal: journal as unknown as Journal,
    decoded: new DecodedCache(),
    stores,
    metrics,
    clock: createClock('wall'),
    storageRetryMs: 30,
    onJournalled: () => {},
    onOnline: () => {},
    onAcks: () => {},
  });
  return { journal, handlers, metrics, base };
}

const count = async (m: Metrics, name: 'journalWriteFailures' | 'deadLetterWriteFailures', reason: string) =>
  (await m[name].get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;

const batch = (seq: number) =>
  Buffer.from(
    encodeTelemetryBatch({ vin: VIN, bootId: 'b', seq, dropped: 0, samples: [{ ts: Date.now() - 1000, signals: { [VSS.soc]: 50 } }] }),
  );

describe('inbound handlers when storage is full', () => {
  it('retries a batch once after the hold and resolves if the journal took it then (a late PUBACK, nothing counted)', async () => {
    const { journal, handlers, metrics } = setup();
    journal.full = true;
    const done = handlers.telemetry(VIN, batch(1), VIN);
    // the first attempt has failed; space comes back during the hold
    expect(journal.attempts).toBe(1);
    await Promise.resolve();
    journal.full = false;
    await expect(done).resolves.toBeUndefined();
    expect(journal.attempts).toBe(2);
    expect(journal.appended.map((b) => b.seq)).toEqual([1]);
    expect(await count(metrics, 'journalWriteFailures', 'full')).toBe(0);
  });

  it('refuses a batch the journal could not write twice, with the StorageWriteError, counted once', async () => {
    const { journal, handlers, metrics } = setup();
    journal.full = true;
    const err = await handlers.telemetry(VIN, batch(2), VIN).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StorageWriteError);
    expect(err).toMatchObject({ reason: 'full', store: 'journal' });
    expect(journal.attempts).toBe(2);
    expect(await count(metrics, 'journalWriteFailures', 'full')).toBe(1);
    expect((await metrics.batches.get()).values).toEqual([]);
  });

  it('refuses a malformed batch whose dead letter cannot be written (it must not be acknowledged)', async () => {
    const { handlers, metrics } = setup({ deadLettersFull: true });
    await expect(handlers.telemetry(VIN, Buffer.from([0xff, 0xff, 0xff]), VIN)).rejects.toMatchObject({
      name: 'StorageWriteError',
      store: 'dead_letters',
      reason: 'full',
    });
    expect(await count(metrics, 'deadLetterWriteFailures', 'full')).toBe(1);
    expect((await metrics.deadLetters.get()).values).toEqual([]);
  });

  it('rejects with a StorageWriteError a status neither stored nor dead-lettered, and dead-letters it when only the store failed', async () => {
    const status = Buffer.from(
      encodeAgentStatus({
        vin: VIN,
        online: true,
        agentVersion: '1',
        configVersion: 0,
        bootId: 'b',
        ts: Date.now(),
        spoolDropped: 0,
        spoolPending: 0,
      }),
    );
    const full = setup({ vehiclesFull: true, deadLettersFull: true });
    await expect(full.handlers.status(VIN, status, VIN)).rejects.toThrow(StorageWriteError);
    expect(await count(full.metrics, 'deadLetterWriteFailures', 'full')).toBe(1);

    const storeOnly = setup({ vehiclesFull: true });
    await expect(storeOnly.handlers.status(VIN, status, VIN)).resolves.toBeUndefined();
    expect((await storeOnly.base.deadLetters.list(10)).map((d) => d.topic)).toEqual([`status/${VIN}`]);
  });

  it('rejects with a StorageWriteError a prompt ack neither stored nor dead-lettered', async () => {
    const { handlers, metrics } = setup({ promptsFull: true, deadLettersFull: true });
    const ack = Buffer.from(encodePromptAck({ promptId: 'p-1', outcome: 'DISMISSED', ts: Date.now() }));
    await expect(handlers.ack(VIN, ack, `${VIN}:hmi`)).rejects.toThrow(StorageWriteError);
    expect(await count(metrics, 'deadLetterWriteFailures', 'full')).toBe(1);
  });
});
