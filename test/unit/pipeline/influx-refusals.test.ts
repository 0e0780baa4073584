// Points InfluxDB refuses as input (TelemetryRefusedError) are found by splitting the chunk, dead-
// lettered one entry and reason at a time, and everything else of the chunk is written; an outage
// while narrowing down stays an outage (nothing dead-lettered, the chunk retried later, once).
import { describe, expect, it } from 'vitest';
import { MemoryTelemetryStore } from '../../../ingest/store/memory/telemetry.js';
import type { Stores, TelemetryStore } from '../../../ingest/store/ports.js';
import { TelemetryRefusedError } from '../../../ingest/store/telemetry-errors.js';
import { createMemoryStores } from '../../../ingest/stores.js';
import { decodeTelemetryBatch } from '../../../proto/codec.js';
import type { Reading } from '../../../proto/domain.js';
import { VSS } from '../../../proto/signals.js';
import { waitFor } from '../../support/wait.js';
import {
  DAY,
  MIN,
  T0,
  VIN_A,
  VIN_B,
  bev,
  counterValue,
  key,
  parked,
  pipelineFixture,
  startIngestParts,
  tempDir,
  type Ingest,
} from './harness.js';

/**
 * A store that answers like InfluxDB 1.x: a flush with refused readings writes the others (partial
 * write) and rejects with TelemetryRefusedError; `downAfterFlushes` plays an outage from that flush on.
 */
class RefusingTelemetry implements TelemetryStore {
  readonly inner = new MemoryTelemetryStore();
  refuse: (r: Reading) => string | undefined = () => undefined;
  downAfterFlushes = Infinity;
  flushes = 0;
  /** Times each reading was confirmed written. */
  readonly written = new Map<string, number>();
  private staged: Reading[] = [];
  private stagedTags: ((vin: string) => Record<string, string>) | undefined;

  async write(readings: Reading[], tags: (vin: string) => Record<string, string>): Promise<void> {
    this.staged.push(...readings);
    this.stagedTags = tags;
  }

  async flush(): Promise<void> {
    const batch = this.staged;
    this.staged = [];
    if (++this.flushes > this.downAfterFlushes) throw new Error('InfluxDB did not confirm the lines: ECONNREFUSED (test outage)');
    const refused = batch.filter((r) => this.refuse(r) !== undefined);
    const good = batch.filter((r) => this.refuse(r) === undefined);
    await this.inner.write(good, this.stagedTags ?? (() => ({})));
    await this.inner.flush();
    for (const r of good) this.written.set(key(r), (this.written.get(key(r)) ?? 0) + 1);
    if (refused.length > 0) {
      throw new TelemetryRefusedError([{ status: 400, message: this.refuse(refused[0])!, lines: refused.map(key) }]);
    }
  }

  latest(vin: string) {
    return this.inner.latest(vin);
  }
  history(q: Parameters<TelemetryStore['history']>[0]) {
    return this.inner.history(q);
  }
  count(q: Parameters<TelemetryStore['count']>[0]) {
    return this.inner.count(q);
  }
  ping() {
    return this.inner.ping();
  }
  close() {
    return this.inner.close();
  }
}

const fixture = pipelineFixture();
const { dirs, running } = fixture;

async function start(telemetry: RefusingTelemetry, stores: Stores = createMemoryStores()) {
  const ingest = await startIngestParts({ dir: tempDir(dirs), stores, telemetry, pool: fixture.pool });
  running.push(ingest);
  await stores.vehicles.upsert(VIN_A, bev(), T0);
  await stores.vehicles.upsert(VIN_B, bev(), T0);
  return ingest;
}

const CONFLICT =
  'partial write: field type conflict: input field "Vehicle.Speed" on measurement "telemetry" is type boolean, already exists as type float dropped=1';
const settled = (i: Ingest, total: number) => () => {
  const lag = i.journal.lag();
  return lag.total === total && lag.influx === 0 ? lag : false;
};

describe('InfluxDB refusals in the pipeline', () => {
  it('dead-letters exactly the refused readings with the server reason and writes every other reading of the chunk', async () => {
    const telemetry = new RefusingTelemetry();
    // two readings of two different batches (one per vehicle) are refused
    const bad = new Set([key({ vin: VIN_A, ts: T0 + 2 * MIN }), key({ vin: VIN_B, ts: T0 + 7 * MIN })]);
    telemetry.refuse = (r) => (bad.has(key(r)) ? CONFLICT : undefined);
    const i = await start(telemetry);
    const samples = (from: number) => Array.from({ length: 5 }, (_, k) => parked(T0 + (from + k) * MIN, 50 - k));
    await i.send(VIN_A, 1, samples(0));
    await i.send(VIN_B, 1, samples(5));
    await i.send(VIN_A, 2, samples(10));
    i.pipeline.start();

    await waitFor(settled(i, 3), { what: 'the chunk with refused readings to be done' });
    const all = [0, 1, 2, 3, 4, 10, 11, 12, 13, 14].map((m) => key({ vin: VIN_A, ts: T0 + m * MIN }));
    all.push(...[5, 6, 7, 8, 9].map((m) => key({ vin: VIN_B, ts: T0 + m * MIN })));
    const good = all.filter((k) => !bad.has(k)).sort();
    expect([...telemetry.written.keys()].sort()).toEqual(good);
    expect(await telemetry.count({ signal: VSS.soc, from: T0, to: T0 + DAY })).toBe(13);

    const dead = await i.stores.deadLetters.list(10);
    expect(dead.map((d) => d.topic).sort()).toEqual([`telemetry/${VIN_A}`, `telemetry/${VIN_B}`]);
    for (const d of dead) {
      expect(d.reason.startsWith(`influx: ${CONFLICT} (HTTP 400;`)).toBe(true);
      // the payload: the entry's batch with just the refused sample
      const batch = decodeTelemetryBatch(Buffer.from(d.payloadBase64, 'base64'));
      expect(batch.samples).toHaveLength(1);
      expect(bad.has(key({ vin: batch.vin, ts: batch.samples[0].ts }))).toBe(true);
      expect(batch.seq).toBe(1);
    }
    expect(await counterValue(i.metrics.deadLetters, { reason: 'influx_refused' })).toBe(2);
    // a refusal is no outage: no error counted, no backoff
    expect(await counterValue(i.metrics.influxErrors)).toBe(0);
    expect(i.log.lines.some((l) => l.level === 'warn' && l.m?.includes('refused readings as input'))).toBe(true);

    // the loop moves on at once with the next chunk
    const flushesBefore = telemetry.flushes;
    await i.send(VIN_A, 3, [parked(T0 + 20 * MIN, 40)]);
    await waitFor(settled(i, 4), { what: 'the next chunk to be written' });
    expect(telemetry.flushes).toBe(flushesBefore + 1);
    expect(telemetry.written.get(key({ vin: VIN_A, ts: T0 + 20 * MIN }))).toBe(1);
    expect(await i.stores.deadLetters.count()).toBe(2);
    expect(await counterValue(i.metrics.influxErrors)).toBe(0);
  });

  it('an outage while narrowing down is an outage: nothing dead-lettered until InfluxDB answers, then once', async () => {
    const telemetry = new RefusingTelemetry();
    const bad = key({ vin: VIN_B, ts: T0 + 3 * MIN });
    telemetry.refuse = (r) => (key(r) === bad ? 'partial write: points beyond retention policy dropped=1' : undefined);
    // the first flush is refused, the second (a half) finds InfluxDB gone
    telemetry.downAfterFlushes = 1;
    const i = await start(telemetry);
    await i.send(VIN_A, 1, [parked(T0, 50), parked(T0 + MIN, 49)]);
    await i.send(VIN_B, 1, [parked(T0 + 2 * MIN, 60), parked(T0 + 3 * MIN, 59)]);
    i.pipeline.start();

    await waitFor(async () => (await counterValue(i.metrics.influxErrors)) >= 1, { what: 'the outage to be counted' });
    expect(await i.stores.deadLetters.count()).toBe(0);
    expect(i.journal.lag().influx).toBe(2);
    expect(i.log.lines.some((l) => l.level === 'warn' && l.m?.includes('kept in the journal'))).toBe(true);

    telemetry.downAfterFlushes = Infinity;
    i.pipeline.retryInfluxNow();
    await waitFor(settled(i, 2), { what: 'the chunk to be done once InfluxDB answers' });
    const dead = await i.stores.deadLetters.list(10);
    expect(dead).toHaveLength(1);
    expect(dead[0].reason).toMatch(/^influx: partial write: points beyond retention policy dropped=1 \(HTTP 400; 1 sample\(s\) of seq 1/);
    expect(await counterValue(i.metrics.deadLetters, { reason: 'influx_refused' })).toBe(1);
    expect(telemetry.written.has(bad)).toBe(false);
    for (const k of [key({ vin: VIN_A, ts: T0 }), key({ vin: VIN_A, ts: T0 + MIN }), key({ vin: VIN_B, ts: T0 + 2 * MIN })]) {
      expect(telemetry.written.get(k), k).toBeGreaterThanOrEqual(1);
    }
  });

  it('a chunk whose every reading is refused is dead-lettered per entry and done', async () => {
    const telemetry = new RefusingTelemetry();
    telemetry.refuse = (r) => (r.vin === VIN_B ? CONFLICT : undefined);
    const i = await start(telemetry);
    await i.send(VIN_B, 1, [parked(T0, 60), parked(T0 + MIN, 59), parked(T0 + 2 * MIN, 58)]);
    await i.send(VIN_B, 2, [parked(T0 + 3 * MIN, 57)]);
    i.pipeline.start();
    await waitFor(settled(i, 2), { what: 'the refused chunk to be done' });
    const dead = await i.stores.deadLetters.list(10);
    // one dead letter per entry and reason, holding that entry's refused samples
    expect(dead.map((d) => decodeTelemetryBatch(Buffer.from(d.payloadBase64, 'base64')).samples.length).sort()).toEqual([1, 3]);
    expect(await counterValue(i.metrics.deadLetters, { reason: 'influx_refused' })).toBe(2);
    expect(telemetry.written.size).toBe(0);
  });
});
