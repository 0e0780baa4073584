// Ingest as a client of an external broker (real Mosquitto) with its journal on a full tmpfs
// (docs/architecture.md#disk-full): the vehicles have Mosquitto's PUBACK, ingest sends none for what
// it cannot journal, so Mosquitto keeps those messages and delivers them again; once the space is
// back every one is journalled, with no restart. A refusal is counted, not logged per message.
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClock } from '../../ingest/clock.js';
import { connectExternalBroker } from '../../ingest/inbound/external.js';
import { createInboundHandlers } from '../../ingest/inbound/handlers.js';
import type { BrokerLink } from '../../ingest/inbound/topics.js';
import { DecodedCache } from '../../ingest/journal/decoded-cache.js';
import { Journal } from '../../ingest/journal/journal.js';
import { createMetrics } from '../../ingest/metrics.js';
import { createMemoryStores } from '../../ingest/stores.js';
import { encodeTelemetryBatch } from '../../proto/codec.js';
import { VSS } from '../../proto/signals.js';
import { startMosquitto, type MosquittoHandle } from '../support/mosquitto.js';
import { mountTmpfs, tmpfsUnavailable, type Tmpfs } from '../support/tmpfs.js';
import { waitFor } from '../support/wait.js';

const VIN = 'LSVAU2180N2184201';
const noTmpfs = tmpfsUnavailable();
const batch = (seq: number) =>
  Buffer.from(
    encodeTelemetryBatch({
      vin: VIN,
      bootId: 'boot-x',
      seq,
      dropped: 0,
      samples: [{ ts: Date.now() - 60_000 + seq, signals: { [VSS.soc]: 50, [VSS.speed]: 0 } }],
    }),
  );

describe.skipIf(noTmpfs !== null)(`external broker, journal on a full disk (${noTmpfs ?? 'tmpfs of 4 MiB'})`, () => {
  let fs: Tmpfs;
  let broker: MosquittoHandle;
  let link: BrokerLink | undefined;
  let journal: Journal;
  beforeAll(async () => {
    fs = mountTmpfs(4 << 20);
    broker = await startMosquitto();
  });
  afterAll(async () => {
    await link?.close();
    journal?.close();
    await broker?.dispose();
    fs?.unmount();
  });

  it('sends Mosquitto no PUBACK while the journal cannot be written, and journals every message once the space is back', async () => {
    journal = new Journal(fs.dir);
    const metrics = createMetrics();
    const errors: string[] = [];
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
    link = await connectExternalBroker({ url: broker.url, prefix: 'v1', onError: (e) => errors.push(e.message) }, handlers);
    const car = await mqtt.connectAsync(broker.url, { clientId: VIN, username: VIN, reconnectPeriod: 0 });
    const topic = `v1/vehicles/${VIN}/telemetry`;
    const journalled = () => new Set(journal.pendingForInflux(0, 10_000).map((e) => e.seq));
    try {
      for (let seq = 1; seq <= 20; seq++) await car.publishAsync(topic, batch(seq), { qos: 1 });
      await waitFor(() => journalled().size === 20, { what: '20 batches journalled' });
      fs.fill();
      // the car's publishes are acknowledged by Mosquitto; ingest refuses them until space is back
      let seq = 20;
      await waitFor(
        async () => {
          await car.publishAsync(topic, batch(++seq), { qos: 1 });
          const refused = (await metrics.journalWriteFailures.get()).values.find((v) => v.labels.reason === 'full')?.value ?? 0;
          return refused >= 10;
        },
        { what: '10 batches refused by the full journal', timeoutMs: 60_000, intervalMs: 20 },
      );
      expect(journal.journalWritable()).toBe(false);
      const refusedSeqs = Array.from({ length: seq }, (_, i) => i + 1).filter((s) => !journalled().has(s));
      expect(refusedSeqs.length).toBeGreaterThan(0);
      expect(errors.filter((m) => m.includes('write failed'))).toEqual([]);

      fs.free();
      // Mosquitto delivers what ingest never acknowledged again (after ingest's reconnect)
      await waitFor(() => journalled().size === seq, { what: `all ${seq} batches journalled`, timeoutMs: 60_000, intervalMs: 100 });
      expect(journal.journalWritable()).toBe(true);
    } finally {
      await car.endAsync();
    }
  });
});
