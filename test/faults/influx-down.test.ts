// InfluxDB failing under load while ingest runs, for longer than the client library's own retry
// window: killed (SIGKILL, then a new influxd on the same data dir and port), and frozen (SIGSTOP,
// then SIGCONT). Vehicles go on being acknowledged throughout (the journal takes their batches);
// once InfluxDB is back the backlog drains and every acknowledged batch is in it. The two cases run
// side by side, each with its own influxd, ingest and fleet, so the suite waits out one window.
import { DEFAULT_WriteOptions } from '@influxdata/influxdb-client';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Database } from '../../ingest/store/sqlite/driver.js';
import { metric, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { waitFor } from '../support/wait.js';
import { startInfluxdProcess, type InfluxdProcess } from './support/influxd-proc.js';
import { Ledger, sample, SAMPLES_PER_BATCH } from './support/ledger.js';
import { FleetLoad } from './support/load.js';
import { recordFault } from './support/table.js';

/**
 * How long the client keeps retrying a failed batch by itself (@influxdata/influxdb-client 1.35
 * defaults, and the 5 retries ingest/store/influx/store.ts asks for): retry r waits at most
 * min(minRetryDelay·exponentialBase^r, maxRetryDelay) + retryJitter (randomRetry), so
 * 10 + 20 + 40 + 80 + 125 s + 5 × 0.2 s = 276 s, but no batch is retried past maxRetryTime (180 s)
 * after its first failure: the window is 180 s.
 */
const MAX_RETRIES = 5;
function clientRetryWindowMs(): number {
  const w = DEFAULT_WriteOptions;
  let total = 0;
  for (let r = 1; r <= MAX_RETRIES; r++) total += Math.min(w.minRetryDelay * w.exponentialBase ** r, w.maxRetryDelay) + w.retryJitter;
  return Math.min(total, w.maxRetryTime);
}
const WINDOW_MS = clientRetryWindowMs();
/** A frozen server fails a request only at the HTTP timeout (10 s, store.ts), so the window starts that much later; plus a margin. */
const OUTAGE_MS = Number(process.env.ODOPULSE_FAULTS_INFLUX_OUTAGE_MS ?? WINDOW_MS + 10_000 + 5_000);
const RATE = 5;

/** Journal entries InfluxDB has not confirmed yet (the journal_pending gauge moves only on a successful write). */
function backlog(ingest: IngestProcess): number {
  const db = new Database(join(ingest.dataDir, 'journal.db'), { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM entries WHERE influx_done = 0').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

async function outage(kind: 'kill' | 'freeze'): Promise<void> {
  const vins = Array.from({ length: 5 }, (_, i) => `LNFLX${kind === 'kill' ? 'K' : 'F'}${String(i).padStart(11, '0')}`);
  const db = `down_${kind}`;
  let influx: InfluxdProcess | undefined;
  let ingest: IngestProcess | undefined;
  let load: FleetLoad | undefined;
  try {
    influx = await startInfluxdProcess({ database: db });
    ingest = await startIngestProcess({ INFLUX_URL: influx.url, INFLUX_BUCKET: db });
    const pid = ingest.proc.pid;
    const ledger = new Ledger();
    load = new FleetLoad({ url: () => ingest!.mqttUrl, vins, ledger, ratePerVehicle: RATE }).start();
    // the path works before the fault: 100 acknowledged batches stored
    await waitFor(async () => ledger.acked.size >= 100 && (await ledger.stored(influx!.url, db)).size >= 100, {
      what: '100 batches acknowledged and stored before the outage',
      timeoutMs: 60_000,
      intervalMs: 250,
    });
    const errorsBefore = await metric(ingest, 'odopulse_influx_write_errors_total');

    const influxPid = influx.pid;
    const start = Date.now();
    if (kind === 'kill') await influx.kill();
    else influx.freeze();
    const ackedBefore = ledger.acked.size;
    // hold it past the window; the fleet must keep being acknowledged: sampled every second, the
    // longest stretch without a new PUBACK is kept
    let last = { n: ackedBefore, at: Date.now() };
    let longestStall = 0;
    await waitFor(
      () => {
        const now = Date.now();
        if (ledger.acked.size > last.n) last = { n: ledger.acked.size, at: now };
        longestStall = Math.max(longestStall, now - last.at);
        return now - start >= OUTAGE_MS;
      },
      { what: `the ${kind} outage held ${OUTAGE_MS} ms`, timeoutMs: OUTAGE_MS + 30_000, intervalMs: 1000 },
    );
    const ackedDuring = ledger.acked.size - ackedBefore;
    const pending = backlog(ingest);
    const errors = (await metric(ingest, 'odopulse_influx_write_errors_total')) - errorsBefore;

    const back = Date.now();
    if (kind === 'kill') await influx.restart();
    else influx.thaw();
    const heldMs = Date.now() - start;
    await load.stop();
    const stored = await waitFor(
      async () => {
        const s = await ledger.stored(influx!.url, db);
        return ledger.lost(s).length === 0 ? s : undefined;
      },
      { what: 'every acknowledged batch in InfluxDB after the outage', timeoutMs: 180_000, intervalMs: 1000 },
    );
    const drainMs = Date.now() - back;
    await waitFor(() => backlog(ingest!) === 0, { what: 'the journal backlog drained', timeoutMs: 60_000, intervalMs: 500 });
    const lost = ledger.lost(stored);

    // the outage was real and felt, and the fleet did not feel it
    if (kind === 'kill') expect(influx.pid, 'a new influxd').not.toBe(influxPid);
    else expect(influx.pid, 'the same influxd, thawed').toBe(influxPid);
    expect(errors, 'failed InfluxDB writes during the outage').toBeGreaterThan(0);
    expect(pending, 'batches journalled but not in InfluxDB at the end of the outage').toBeGreaterThan(0);
    expect(ackedDuring, 'batches acknowledged during the outage').toBeGreaterThanOrEqual((vins.length * RATE * OUTAGE_MS) / 1000 / 2);
    expect(longestStall, 'longest stretch without a PUBACK during the outage (ms)').toBeLessThan(10_000);
    // nothing lost, the same ingest all along
    expect(lost, sample(lost)).toEqual([]);
    expect(stored.size).toBe(ledger.acked.size);
    expect(ingest.proc.exitCode).toBeNull();
    expect(ingest.proc.pid).toBe(pid);

    recordFault({
      fault:
        kind === 'kill'
          ? `InfluxDB SIGKILL for ${Math.round(heldMs / 1000)} s (client retry window ${WINDOW_MS / 1000} s), new influxd on the same data`
          : `InfluxDB frozen (SIGSTOP) for ${Math.round(heldMs / 1000)} s (client retry window ${WINDOW_MS / 1000} s), then SIGCONT`,
      load: `${vins.length} vehicles × ${RATE} batches/s, QoS 1, 8 in flight`,
      produced: ledger.acked.size * SAMPLES_PER_BATCH,
      stored: stored.size * SAMPLES_PER_BATCH,
      lost: lost.length * SAMPLES_PER_BATCH,
      promptsDuplicated: 0,
      notes:
        `outage ${(heldMs / 1000).toFixed(0)} s; ${ackedDuring} batches acknowledged during it (longest stretch without a PUBACK, sampled each second: ${(longestStall / 1000).toFixed(0)} s); ` +
        `backlog at its end ${pending} batches (${pending * SAMPLES_PER_BATCH} readings), ${errors} failed writes; ` +
        `drained ${(drainMs / 1000).toFixed(1)} s after InfluxDB was back`,
    });
  } finally {
    await load?.stop(5_000).catch(() => {});
    await ingest?.stop('SIGKILL');
    await influx?.remove();
  }
}

describe.concurrent('InfluxDB down under load for longer than the client retries', () => {
  it('killed, then a new influxd on the same data dir and port', () => outage('kill'), OUTAGE_MS + 300_000);
  it('frozen (SIGSTOP), then SIGCONT', () => outage('freeze'), OUTAGE_MS + 300_000);
});
