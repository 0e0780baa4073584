// ingest kill -9 at random points, 20 times in one run, under a fleet load that never stops: every
// batch a vehicle got a PUBACK for ends up in InfluxDB (duplicates allowed, gaps never), and every
// DTC the vehicles reported along the way prompts exactly once, although the rules replay the
// journal after each kill. The delays come from a seeded RNG: the seed is printed, and
// ODOPULSE_FAULT_SEED=<seed> replays the same kill points (as far as the timing of a machine allows).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { rulesSentinel, startIngestProcess, type IngestProcess } from '../support/ingest.js';
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
  vins,
  waitForPlanAcked,
} from './support/cases.js';
import { sample } from './support/ledger.js';
import { FleetLoad } from './support/load.js';
import { recordFault } from './support/table.js';

const DB = 'faultkill';
const VEHICLES = 40;
const RATE = 5; // new batches per vehicle per second
const KILLS = 20;
const VINS = vins('LKXLL', VEHICLES);
const SENTINEL = 'LKXLLSENT00000001';

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

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe(`ingest kill -9 ×${KILLS} under load`, () => {
  it('loses no acknowledged batch and prompts each DTC once', async () => {
    const seed = faultSeed('ingest-kill');
    const rnd = seededRandom(seed);
    // half the vehicles report two DTCs each, somewhere in their first ~50 s of batches
    const plan = planDtcs(
      rnd,
      VINS.filter((_, i) => i % 2 === 0),
      { perVehicle: 2, minSeq: 5, maxSeq: 250 },
    );
    const ledger = new DtcLedger(plan);
    const load = new FleetLoad({ url: () => ingest.mqttUrl, vins: VINS, ledger, ratePerVehicle: RATE }).start();
    const started = Date.now();

    // kill points: a third right after the restart (journal replay, rules catching up, vehicles
    // reconnecting and re-sending), the rest anywhere in the next 4 s
    const delays: number[] = [];
    const progress: number[] = [];
    const restartMs: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const delay = rnd() < 1 / 3 ? Math.floor(rnd() * 300) : 300 + Math.floor(rnd() * 3700);
      delays.push(delay);
      const before = ledger.acked.size;
      await pause(delay); // the fault's timing, not a wait for a result
      await ingest.stop('SIGKILL');
      progress.push(ledger.acked.size - before);
      const t = Date.now();
      ingest = await restartIngest(ingest);
      restartMs.push(Date.now() - t);
    }
    const killsDoneMs = Date.now() - started;

    // after the last restart: the load goes on until every planned DTC batch is acknowledged
    await waitForPlanAcked(ledger, load, { timeoutMs: 120_000, intervalMs: 200 });
    const loadMs = Date.now() - started;
    const d = await drain(ledger, load, influx.url, DB);

    // positive marker that the rules have applied everything journalled before it
    await rulesSentinel(ingest, SENTINEL, { ts: Date.now() - 3600_000, seq: 1 });
    const prompts = (await allPrompts(ingest)).filter((p) => VINS.includes(p.vin));
    const dups = duplicatePrompts(prompts);
    const expected = ledger.expectedKeys();
    const found = new Set(prompts.filter((p) => p.kind === 'fault.dtc').map((p) => p.dedupKey));
    const missing = expected.filter((k) => !found.has(k));
    const unexpected = prompts.filter((p) => !expected.includes(p.dedupKey)).map((p) => `${p.kind} ${p.dedupKey}`);

    console.log(`[ingest-kill] refused connects: ${JSON.stringify(Object.fromEntries(load.connectErrorKinds))}`);
    const windowsWithAcks = progress.filter((n) => n > 0).length;
    recordFault({
      fault: `ingest kill -9 ×${KILLS} at random points`,
      load: `${VEHICLES} vehicles × ${RATE} batches/s, QoS 1, 8 in flight, ${Math.round(loadMs / 1000)} s`,
      produced: readings(ledger.acked.size),
      stored: readings(d.stored.size),
      lost: readings(d.lost.length),
      promptsDuplicated: dups.count,
      notes:
        `seed ${seed}; ${KILLS} restarts (kill delays ${Math.min(...delays)}–${Math.max(...delays)} ms, ` +
        `restart to healthy ${Math.min(...restartMs)}–${Math.max(...restartMs)} ms, acks in ${windowsWithAcks}/${KILLS} windows, ` +
        `${Math.round(killsDoneMs / 1000)} s); ${load.connects} vehicle connects, ${load.stalls} stalled (no PUBACK for 10 s: reconnected), ` +
        `${load.closedBeforeConnack} closed before their CONNACK (connected again); ` +
        `${expected.length} DTC prompts expected, ${found.size} found, ${missing.length} missing; drain ${d.drainMs} ms`,
    });

    expect(d.lost, sample(d.lost)).toEqual([]);
    expect(d.stored.size).toBe(ledger.acked.size);
    expect(missing, sample(missing)).toEqual([]);
    expect(unexpected, sample(unexpected)).toEqual([]);
    expect(dups.keys).toEqual([]);
    expect(prompts).toHaveLength(expected.length);
    // the load really was cut off and came back, again and again
    expect(load.connects).toBeGreaterThanOrEqual(VEHICLES * (KILLS / 2));
  });
});
