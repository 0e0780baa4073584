// The harness itself, without a fault: what the vehicles got a PUBACK for is exactly what InfluxDB
// holds, so a lost batch in a fault case is the fault's doing, not the bookkeeping's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { waitFor } from '../support/wait.js';
import { Ledger, sample } from './support/ledger.js';
import { FleetLoad } from './support/load.js';
import { recordFault } from './support/table.js';

const VINS = Array.from({ length: 10 }, (_, i) => `LFAULT${String(i).padStart(11, '0')}`);

describe('fault harness (no fault)', () => {
  let influx: InfluxdHandle;
  let ingest: IngestProcess;
  beforeAll(async () => {
    influx = await startInfluxd({ database: 'faults' });
    ingest = await startIngestProcess({ INFLUX_URL: influx.url, INFLUX_BUCKET: 'faults' });
  });
  afterAll(async () => {
    await ingest?.stop('SIGKILL');
    await influx?.stop();
  });

  it('stores exactly the acknowledged batches', async () => {
    const ledger = new Ledger();
    const load = new FleetLoad({ url: () => ingest.mqttUrl, vins: VINS, ledger }).start();
    await waitFor(() => ledger.acked.size >= 200, { what: '200 acknowledged batches', timeoutMs: 60_000 });
    await load.stop();
    const stored = await waitFor(
      async () => {
        const s = await ledger.stored(influx.url, 'faults');
        return s.size >= ledger.acked.size ? s : undefined;
      },
      { what: 'every acknowledged batch in InfluxDB', timeoutMs: 60_000 },
    );
    const lost = ledger.lost(stored);
    recordFault({
      fault: 'none (harness check)',
      load: `${VINS.length} vehicles, QoS 1, 8 in flight`,
      produced: ledger.acked.size * 2,
      stored: stored.size * 2,
      lost: lost.length * 2,
      promptsDuplicated: 0,
    });
    expect(lost, sample(lost)).toEqual([]);
    expect(stored.size).toBe(ledger.acked.size);
  });
});
