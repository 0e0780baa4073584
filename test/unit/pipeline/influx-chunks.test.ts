// How the InfluxDB loop cuts the journal into chunks (ingest/pipeline/influx-writes.ts): at a low
// rate a chunk waits up to the gather time after the last one, so a trickle of batches is written
// in a few requests, not one each; the first batch after a quiet spell goes at once.
import { expect, it } from 'vitest';
import { createMemoryStores } from '../../../ingest/stores.js';
import { waitFor } from '../../support/wait.js';
import { MIN, T0, TestTelemetry, VIN_A, bev, parked, pipelineFixture, startIngestParts, tempDir } from './harness.js';

const fixture = pipelineFixture();
const { dirs, running } = fixture;

it('gathers batches that arrive within the gather time into one chunk, and writes the first at once', async () => {
  const stores = createMemoryStores();
  const telemetry = new TestTelemetry();
  const gatherMs = 2000;
  const i = await startIngestParts({ dir: tempDir(dirs), stores, telemetry, pool: fixture.pool, influxGatherMs: gatherMs });
  running.push(i);
  await stores.vehicles.upsert(VIN_A, bev(), T0);
  i.pipeline.start();

  const t0 = performance.now();
  await i.send(VIN_A, 1, [parked(T0, 80)]);
  await waitFor(() => telemetry.written.size === 1, { what: 'the first batch in InfluxDB' });
  const first = performance.now() - t0;
  // nine more, one after another: all of them pending before the gather time is up
  for (let seq = 2; seq <= 10; seq++) await i.send(VIN_A, seq, [parked(T0 + seq * MIN, 80)]);
  const sent = performance.now() - t0;
  await waitFor(() => telemetry.written.size === 10, { what: 'all ten batches in InfluxDB', timeoutMs: 15_000 });
  const all = performance.now() - t0;

  expect(first).toBeLessThan(gatherMs); // not held back: nothing was written for the gather time before it
  if (sent < gatherMs) expect(telemetry.calls).toEqual([1, 9]); // else the machine was too slow to tell
  expect(all).toBeGreaterThanOrEqual(gatherMs - 50); // the second chunk waited (timers may fire a little early)
  expect(i.journal.lag().influx).toBe(0);
});
