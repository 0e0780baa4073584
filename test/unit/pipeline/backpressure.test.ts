// Back-pressure end to end from the inbound handler (docs/architecture.md#back-pressure), on a real
// journal and rules pool: while the rules are behind by the high-water mark, a batch is journalled
// (durable, pending for both loops) but its handler, and so its PUBACK, waits; once the rules have
// caught up it resolves, with the batch's prompt already committed.
import { expect, it } from 'vitest';
import { createMemoryStores } from '../../../ingest/stores.js';
import { waitFor } from '../../support/wait.js';
import { MIN, T0, TestTelemetry, VIN_A, VIN_B, bev, counterValue, parked, pipelineFixture, startIngestParts, tempDir } from './harness.js';

const fixture = pipelineFixture();
const { dirs, running } = fixture;

it('holds the PUBACK of a journalled batch while the rules are behind, releases it once they caught up', async () => {
  const stores = createMemoryStores();
  // before the first rules step the backlog is estimated at one reading per entry: 2 entries close it
  const i = await startIngestParts({ dir: tempDir(dirs), stores, telemetry: new TestTelemetry(), pool: fixture.pool, backlogReadings: 2 });
  running.push(i);
  for (const vin of [VIN_A, VIN_B]) await stores.vehicles.upsert(vin, bev(), T0);

  await i.send(VIN_A, 1, [parked(T0, 40)]); // backlog 1: through at once (the loops are not started)
  let acked = false;
  const second = i.send(VIN_B, 1, [parked(T0 + MIN, 12)]).then(() => (acked = true));
  await waitFor(() => i.journal.lag().rules === 2, { what: 'the second batch journalled' });
  await waitFor(async () => (await counterValue(i.metrics.backpressureHolds)) === 1, { what: 'its PUBACK held' });
  expect(acked).toBe(false);
  expect((await i.metrics.backpressureClosed.get()).values[0]?.value).toBe(1);
  // durable meanwhile: both loops have it pending
  expect(i.journal.pendingForRules(0, 10).map((e) => e.vin)).toEqual([VIN_A, VIN_B]);
  expect(i.journal.pendingForInflux(0, 10).map((e) => e.vin)).toEqual([VIN_A, VIN_B]);

  i.pipeline.start();
  await second;
  // released only after the rules applied it: its low-charge prompt is committed by then
  const low = (await stores.prompts.list({ vin: VIN_B, limit: 10 })).items.filter((p) => p.kind === 'charging.low_soc');
  expect(low).toHaveLength(1);
  expect((await stores.ruleStates.load(VIN_B))?.journalId).toBe(2);
  expect((await i.metrics.backpressureClosed.get()).values[0]?.value).toBe(0);
  expect(await counterValue(i.metrics.backpressureForced)).toBe(0);
});

it('does not hold PUBACKs for what an InfluxDB outage leaves in the journal, nor while it is caught up', async () => {
  const stores = createMemoryStores();
  const telemetry = new TestTelemetry();
  const i = await startIngestParts({ dir: tempDir(dirs), stores, telemetry, pool: fixture.pool, backlogReadings: 2 });
  running.push(i);
  await stores.vehicles.upsert(VIN_A, bev(), T0);
  telemetry.down = true;
  i.pipeline.start();
  await i.send(VIN_A, 1, [parked(T0, 40)]);
  await waitFor(() => telemetry.failures > 0 && i.journal.lag().rules === 0, { what: 'the first write refused, the rules done' });
  // InfluxDB is out: its backlog grows past the high-water mark, the rules keep up, nothing is held
  // (one at a time, the rules done with each: their own backlog never reaches the mark here)
  for (let seq = 2; seq <= 6; seq++) {
    await i.send(VIN_A, seq, [parked(T0 + seq * MIN, 40 - seq)]);
    await waitFor(() => i.journal.lag().rules === 0, { what: `the rules applying seq ${seq}` });
  }
  expect(i.journal.lag().influx).toBe(6);
  expect(await counterValue(i.metrics.backpressureHolds)).toBe(0);
  // back: the six are written while new batches keep coming, still without a hold
  telemetry.down = false;
  i.pipeline.retryInfluxNow();
  for (let seq = 7; seq <= 8; seq++) {
    await i.send(VIN_A, seq, [parked(T0 + seq * MIN, 40 - seq)]);
    await waitFor(() => i.journal.lag().rules === 0, { what: `the rules applying seq ${seq}` });
  }
  await waitFor(() => i.journal.lag().influx === 0, { what: 'InfluxDB caught up' });
  expect(telemetry.written.size).toBe(8);
  expect(await counterValue(i.metrics.backpressureHolds)).toBe(0);
});
