// SIGTERM under load, three times: the process exits cleanly (code 0) within a bounded time, and
// the work in flight is committed: every batch a vehicle got a PUBACK for, up to the last one the
// stopping process sent, is in InfluxDB already or after the restart on the same data dir. DTCs
// reported across the stops prompt exactly once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { rulesSentinel, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { waitFor } from '../support/wait.js';
import {
  allPrompts,
  drain,
  DtcLedger,
  duplicatePrompts,
  faultSeed,
  planDtcs,
  readings,
  restartIngest,
  seededRandom,
  stopWithin,
  vins,
  waitForPlanAcked,
} from './support/cases.js';
import { sample } from './support/ledger.js';
import { FleetLoad } from './support/load.js';
import { recordFault } from './support/table.js';

const DB = 'faultterm';
const VEHICLES = 40;
const RATE = 10;
const STOPS = 3;
/** Generous: a clean stop under this load takes well under a second or two here. */
const STOP_BOUND_MS = 15_000;
const VINS = vins('LTERM', VEHICLES);
const SENTINEL = 'LTERMSENT00000001';

let influx: InfluxdHandle;
let ingest: IngestProcess;

beforeAll(async () => {
  influx = await startInfluxd({ database: DB });
  ingest = await startIngestProcess({ INFLUX_URL: influx.url, INFLUX_BUCKET: DB });
});

afterAll(async () => {
  await ingest?.stop('SIGKILL');
  await influx?.stop();
});

describe(`SIGTERM ×${STOPS} under load`, () => {
  it('exits within the bound and loses nothing it acknowledged', async () => {
    const seed = faultSeed('sigterm');
    const rnd = seededRandom(seed);
    const plan = planDtcs(
      rnd,
      VINS.filter((_, i) => i % 4 === 0),
      { perVehicle: 2, minSeq: 5, maxSeq: 300 },
    );
    const ledger = new DtcLedger(plan);
    const load = new FleetLoad({ url: () => ingest.mqttUrl, vins: VINS, ledger, ratePerVehicle: RATE }).start();
    const started = Date.now();

    const stopMs: number[] = [];
    const codes: Array<number | null> = [];
    const atExit: string[][] = []; // what was acknowledged when each process had exited
    const storedAtExit: number[] = []; // how much of it InfluxDB held before the restart
    for (let k = 0; k < STOPS; k++) {
      // under load for a while: a few thousand batches acknowledged by this process
      const target = ledger.acked.size + 1500 + Math.floor(rnd() * 1500);
      await waitFor(() => ledger.acked.size >= target, { what: `${target} batches acknowledged`, timeoutMs: 60_000 });
      const stop = await stopWithin(ingest, 'SIGTERM', 2 * STOP_BOUND_MS);
      codes.push(stop.code);
      stopMs.push(stop.ms);
      const acked = [...ledger.acked];
      atExit.push(acked);
      const stored = await ledger.stored(influx.url, DB);
      storedAtExit.push(acked.filter((key) => stored.has(key)).length);
      ingest = await restartIngest(ingest);
    }

    await waitForPlanAcked(ledger, load, { timeoutMs: 120_000, intervalMs: 200 });
    const loadMs = Date.now() - started;
    const d = await drain(ledger, load, influx.url, DB);
    const lostAcrossStops = atExit.flat().filter((key) => !d.stored.has(key));

    await rulesSentinel(ingest, SENTINEL, { ts: Date.now() - 3600_000, seq: 1 });
    const prompts = (await allPrompts(ingest)).filter((p) => VINS.includes(p.vin));
    const dups = duplicatePrompts(prompts);
    const expected = ledger.expectedKeys();
    const found = new Set(prompts.filter((p) => p.kind === 'fault.dtc').map((p) => p.dedupKey));
    const missing = expected.filter((k) => !found.has(k));

    recordFault({
      fault: `ingest SIGTERM ×${STOPS} under load`,
      load: `${VEHICLES} vehicles × ${RATE} batches/s, QoS 1, 8 in flight, ${Math.round(loadMs / 1000)} s`,
      produced: readings(ledger.acked.size),
      stored: readings(d.stored.size),
      lost: readings(d.lost.length),
      promptsDuplicated: dups.count,
      notes:
        `seed ${seed}; SIGTERM to exit ${stopMs.join(' / ')} ms (bound ${STOP_BOUND_MS}), exit codes ${codes.join(' / ')}; ` +
        `acked at exit and already in InfluxDB before the restart ${storedAtExit.map((n, i) => `${n}/${atExit[i].length}`).join(', ')}` +
        ` (all after it); ${expected.length} DTC prompts expected, ${found.size} found; drain ${d.drainMs} ms`,
    });

    expect(codes).toEqual(Array.from({ length: STOPS }, () => 0));
    for (const ms of stopMs) expect(ms).toBeLessThan(STOP_BOUND_MS);
    expect(lostAcrossStops, sample(lostAcrossStops)).toEqual([]);
    expect(d.lost, sample(d.lost)).toEqual([]);
    expect(d.stored.size).toBe(ledger.acked.size);
    expect(missing, sample(missing)).toEqual([]);
    expect(dups.keys).toEqual([]);
    expect(prompts).toHaveLength(expected.length);
  });
});
