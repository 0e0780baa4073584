// Inputs that used to poison state, end to end through the inbound handler, the journal and both
// loops: a sample from the far future or older than the retention is dead-lettered with its reason
// while the good samples beside it are kept, and the vehicle's next real readings still give their
// prompts; an agent re-installed (new boot id, seq back at 1) is stored, and its gaps are counted.
import { describe, expect, it } from 'vitest';
import { createClock } from '../../../ingest/clock.js';
import { createMemoryStores } from '../../../ingest/stores.js';
import type { Stores } from '../../../ingest/store/ports.js';
import { decodeTelemetryBatch } from '../../../proto/codec.js';
import { waitFor } from '../../support/wait.js';
import {
  DAY,
  MIN,
  T0,
  TestTelemetry,
  VIN_A,
  bev,
  counterValue,
  parked,
  pipelineFixture,
  startIngestParts,
  tempDir,
  type Ingest,
} from './harness.js';

const Y2099 = Date.parse('2099-01-01T00:00:00Z');
const fixture = pipelineFixture();
const { dirs, running } = fixture;

async function start(o: Partial<Parameters<typeof startIngestParts>[0]> = {}) {
  const stores = o.stores ?? createMemoryStores();
  const telemetry = new TestTelemetry();
  const i = await startIngestParts({ dir: o.dir ?? tempDir(dirs), pool: fixture.pool, ...o, stores, telemetry });
  running.push(i);
  await stores.vehicles.upsert(VIN_A, bev(), T0);
  i.pipeline.start();
  return { ...i, telemetry };
}

const settled = (i: Ingest) => () => {
  const lag = i.journal.lag();
  return lag.influx === 0 && lag.rules === 0;
};
const lowSoc = async (stores: Stores) =>
  (await stores.prompts.list({ vin: VIN_A, limit: 100 })).items.filter((p) => p.kind === 'charging.low_soc');
const deadLetters = (stores: Stores) => stores.deadLetters.list(100);

describe('samples whose time would poison state', () => {
  it('wall clock: a far-future sample is dead-lettered, the good ones beside it kept, and the next readings still prompt', async () => {
    const i = await start({ clock: createClock('wall') });
    const now = Date.now();
    await i.send(VIN_A, 1, [parked(now - 10 * MIN, 45), parked(Y2099, 90), parked(now - 9 * MIN, 40)]);
    await waitFor(settled(i), { what: 'the first batch processed' });

    const [dl] = await deadLetters(i.stores);
    expect(dl.topic).toBe(`telemetry/${VIN_A}`);
    expect(dl.reason).toMatch(/^future_timestamp: 1 of 3 samples of seq 1 \(boot boot-1\) more than ODOPULSE_MAX_CLOCK_SKEW_S \(600 s\)/);
    expect(decodeTelemetryBatch(Buffer.from(dl.payloadBase64, 'base64')).samples.map((s) => s.ts)).toEqual([Y2099]);
    expect(await counterValue(i.metrics.deadLetters, { reason: 'future_timestamp' })).toBe(1);
    // what was journalled is the batch without it: both loops got the two good samples only
    expect([...i.telemetry.written.keys()].sort()).toEqual([`${VIN_A}@${now - 10 * MIN}`, `${VIN_A}@${now - 9 * MIN}`]);
    expect((await i.stores.ruleStates.load(VIN_A))?.lastTs).toBe(now - 9 * MIN);

    // the vehicle is not frozen: its next real reading opens a low-charge prompt
    await i.send(VIN_A, 2, [parked(now - 5 * MIN, 15)]);
    await waitFor(async () => (await lowSoc(i.stores)).length === 1, { what: 'the low-charge prompt' });
    expect((await lowSoc(i.stores))[0].evidence.soc).toBe(15);
    expect((await i.stores.ruleStates.load(VIN_A))?.lastTs).toBe(now - 5 * MIN);
  });

  it('older than the telemetry retention: dead-lettered as too_old; a batch with nothing left stays a duplicate when resent', async () => {
    const i = await start({ clock: createClock('wall'), limits: { telemetryRetentionDays: 30 } });
    const now = Date.now();
    await i.send(VIN_A, 1, [parked(now - 40 * DAY, 50), parked(now - MIN, 50)]);
    await i.send(VIN_A, 2, [parked(now - 31 * DAY, 50), parked(Y2099, 50)]);
    await waitFor(settled(i), { what: 'the batches processed' });
    expect((await deadLetters(i.stores)).map((d) => d.reason.split(':')[0]).sort()).toEqual(['future_timestamp', 'too_old', 'too_old']);
    expect(await counterValue(i.metrics.deadLetters, { reason: 'too_old' })).toBe(2);
    expect([...i.telemetry.written.keys()]).toEqual([`${VIN_A}@${now - MIN}`]);
    // seq 2 had nothing left, yet it is journalled (as done): the resend is a duplicate, no new dead letter
    expect(i.journal.lag()).toEqual({ total: 2, influx: 0, rules: 0 });
    await i.send(VIN_A, 2, [parked(now - 31 * DAY, 50), parked(Y2099, 50)]);
    expect(await deadLetters(i.stores)).toHaveLength(3);
    expect(await counterValue(i.metrics.batches, { result: 'duplicate' })).toBe(1);
    expect(await counterValue(i.metrics.batches, { result: 'dead_letter' })).toBe(1);
    expect(i.journal.sequence(VIN_A)).toEqual({ bootId: 'boot-1', lastSeq: 2, gaps: 0 });
  });

  it('event clock: one vehicle in 2099 is dead-lettered and does not move the fleet clock; its next readings still prompt', async () => {
    let wall = Date.now();
    const clock = createClock('event', () => wall);
    const i = await start({ clock });
    const fleet = Array.from({ length: 12 }, (_, k) => `LSVAU2180N${2183300 + k}`);
    // the fleet runs at 3,600x: one hour of event time per wall second
    for (let step = 0; step < 4; step++) {
      for (const [k, vin] of fleet.entries()) await i.send(vin, step + 1, [parked(T0 + step * 60 * MIN + k * 1000, 80)]);
      await i.send(VIN_A, step + 1, [parked(T0 + step * 60 * MIN, 60)]);
      wall += 1000;
    }
    const before = clock.now();
    expect(clock.horizon(600_000, wall)).toBeLessThan(Y2099);
    await i.send(VIN_A, 5, [parked(Y2099, 60)]);
    expect((await deadLetters(i.stores)).map((d) => d.reason.split(':')[0])).toEqual(['future_timestamp']);
    expect((await deadLetters(i.stores))[0].reason).toMatch(/the fleet clock, at its pace/);
    expect(clock.now()).toBe(before);
    await i.send(VIN_A, 6, [parked(T0 + 3 * 60 * MIN + 5 * MIN, 12)]);
    await waitFor(async () => (await lowSoc(i.stores)).length === 1, { what: 'the low-charge prompt' });
    expect((await i.stores.ruleStates.load(VIN_A))?.lastTs).toBe(T0 + 3 * 60 * MIN + 5 * MIN);
  });
});

describe('agent re-installs', () => {
  it('a new boot id at seq 1 after seq 500 is stored and its readings reach InfluxDB and the rules; gaps are counted', async () => {
    const dir = tempDir(dirs);
    const i = await start({ dir });
    await i.send(VIN_A, 499, [parked(T0, 50)], 'boot-a');
    await i.send(VIN_A, 500, [parked(T0 + MIN, 45)], 'boot-a');
    await i.send(VIN_A, 1, [parked(T0 + 2 * MIN, 15)], 'boot-b'); // spool wiped: seq starts again
    await i.send(VIN_A, 1, [parked(T0 + 2 * MIN, 15)], 'boot-b'); // a resend: duplicate
    await waitFor(settled(i), { what: 'the batches processed' });
    expect(i.journal.lag().total).toBe(3);
    expect(await counterValue(i.metrics.batches, { result: 'new' })).toBe(3);
    expect(await counterValue(i.metrics.batches, { result: 'duplicate' })).toBe(1);
    expect([...i.telemetry.written.keys()].sort()).toEqual([`${VIN_A}@${T0}`, `${VIN_A}@${T0 + MIN}`, `${VIN_A}@${T0 + 2 * MIN}`]);
    await waitFor(async () => (await lowSoc(i.stores)).length === 1, { what: 'the new boot reading to reach the rules' });

    // seq 4 skips 2 and 3: two missing now; 3 arriving late fills one
    await i.send(VIN_A, 4, [parked(T0 + 4 * MIN, 14)], 'boot-b');
    await i.send(VIN_A, 3, [parked(T0 + 3 * MIN, 14)], 'boot-b');
    expect(await counterValue(i.metrics.seqGaps)).toBe(2);
    expect(await counterValue(i.metrics.seqGapsFilled)).toBe(1);
    expect(await i.stores.vehicles.sequence(VIN_A)).toBeNull(); // the view is written once a second...
    await i.handlers.flushSequences(); // ...or now
    expect(await i.stores.vehicles.sequence(VIN_A)).toEqual({ bootId: 'boot-b', lastSeq: 4, gaps: 1 });

    // a restart copies the journal's counts into the store (here: a store that lost them)
    await i.stop();
    const again = await start({ dir });
    // written as the handlers start, without waiting for a batch
    expect(await waitFor(() => again.stores.vehicles.sequence(VIN_A), { what: 'the sequence view' })).toEqual({
      bootId: 'boot-b',
      lastSeq: 4,
      gaps: 1,
    });
  });
});
