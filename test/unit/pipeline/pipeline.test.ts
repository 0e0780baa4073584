// The pipeline's two journal loops (InfluxDB writer, rules) end to end from the inbound handler:
// normal flow, an InfluxDB outage, a batch InfluxDB refuses, and a restart from the journal.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryStores } from '../../../ingest/stores.js';
import type { PromptChange, Stores } from '../../../ingest/store/ports.js';
import type { Sample } from '../../../proto/domain.js';
import { VSS } from '../../../proto/signals.js';
import { waitFor } from '../../support/wait.js';
import {
  DAY,
  HOUR,
  MIN,
  T0,
  TestTelemetry,
  VIN_A,
  VIN_B,
  bev,
  charging,
  counterValue,
  key,
  parked,
  payload,
  pipelineFixture,
  startIngestParts,
  tally,
  tempDir,
  type Ingest,
} from './harness.js';

const fixture = pipelineFixture();
const { dirs, running } = fixture;
afterEach(() => {
  vi.restoreAllMocks();
});

async function start(o: { dir?: string; stores?: Stores; telemetry?: TestTelemetry; chunk?: number; rulesStepReadings?: number } = {}) {
  const stores = o.stores ?? createMemoryStores();
  const telemetry = o.telemetry ?? new TestTelemetry();
  const ingest = await startIngestParts({
    dir: o.dir ?? tempDir(dirs),
    stores,
    telemetry,
    pool: fixture.pool,
    chunk: o.chunk,
    rulesStepReadings: o.rulesStepReadings,
  });
  running.push(ingest);
  return { ...ingest, telemetry };
}

const register = (stores: Stores, vin: string) => stores.vehicles.upsert(vin, bev(), T0);
const prompts = async (stores: Stores, vin: string) => (await stores.prompts.list({ vin, limit: 100 })).items;
const settled = (i: Ingest, total: number) => () => {
  const lag = i.journal.lag();
  return lag.total === total && lag.influx === 0 && lag.rules === 0 ? lag : false;
};

/** Six batches of one vehicle: low charge (episode 0), charged and re-armed, low again (episode 1). */
function episodes(vin = VIN_A): { vin: string; seq: number; samples: Sample[] }[] {
  const two = (f: (ts: number) => Sample, ts: number) => [f(ts), f(ts + MIN)];
  return [
    two((t) => parked(t, 40), T0),
    two((t) => parked(t, 15), T0 + 10 * MIN),
    two((t) => charging(t, 20), T0 + 20 * MIN),
    two((t) => charging(t, 80), T0 + 2 * HOUR),
    two((t) => parked(t, 80), T0 + 3 * HOUR),
    two((t) => parked(t, 12), T0 + 5 * HOUR),
  ].map((samples, i) => ({ vin, seq: i + 1, samples }));
}

const readingKeys = (batches: { vin: string; samples: Sample[] }[]) =>
  batches.flatMap((b) => b.samples.map((s) => key({ vin: b.vin, ts: s.ts })));
const summary = async (stores: Stores, vin: string) =>
  (await prompts(stores, vin)).map((p) => `${p.kind} ${p.dedupKey} ${p.status}`).sort();

/** The prompts the episodes give when ingest runs through them without interruption. */
async function uninterrupted(): Promise<string[]> {
  const i = await start();
  await register(i.stores, VIN_A);
  for (const b of episodes()) await i.send(b.vin, b.seq, b.samples);
  i.pipeline.start();
  await waitFor(settled(i, 6), { what: 'the reference run to settle' });
  return summary(i.stores, VIN_A);
}

/** Readings the rules pool was given, per reading key, from the moment this is called. */
function appliedByPool(): Map<string, number> {
  const applied = new Map<string, number>();
  const real = fixture.pool.run.bind(fixture.pool);
  vi.spyOn(fixture.pool, 'run').mockImplementation((items, now) => {
    for (const it of items) for (const r of it.readings) applied.set(key(r), (applied.get(key(r)) ?? 0) + 1);
    return real(items, now);
  });
  return applied;
}

describe('pipeline', () => {
  it('takes telemetry from the inbound handler to the telemetry store and the rules; both loops mark the journal done', async () => {
    const i = await start();
    await register(i.stores, VIN_A);
    const changes: PromptChange[] = [];
    const processed: string[][] = [];
    i.pipeline.on('changes', (c) => changes.push(...c));
    i.pipeline.on('processed', (vins) => processed.push(vins));
    i.pipeline.start();

    await i.send(VIN_A, 1, [parked(T0, 45, { [VSS.odometer]: 1200 }), parked(T0 + MIN, 30)]);
    await i.send(VIN_A, 2, [parked(T0 + 2 * MIN, 18)]);

    await waitFor(settled(i, 2), { what: 'both loops to mark the two entries done' });
    expect(i.journal.pendingForInflux(0, 10)).toEqual([]);
    expect(i.journal.pendingForRules(0, 10)).toEqual([]);
    // the telemetry store has every reading, with the profile's tags
    expect(await i.telemetry.count({ vin: VIN_A, signal: VSS.soc, from: T0, to: T0 + DAY })).toBe(3);
    expect(await i.telemetry.latest(VIN_A)).toMatchObject({ ts: T0 + 2 * MIN, signals: { [VSS.soc]: 18, [VSS.odometer]: 1200 } });
    expect([...i.telemetry.written.values()]).toEqual([1, 1, 1]);
    // the rules saw them: a low-charge prompt, announced on 'changes', its vehicle on 'processed'
    const low = (await prompts(i.stores, VIN_A)).filter((p) => p.kind.startsWith('charging.'));
    expect(low.map((p) => [p.kind, p.status, p.evidence.soc])).toEqual([['charging.low_soc', 'open', 18]]);
    expect(changes.filter((c) => c.prompt.kind.startsWith('charging.')).map((c) => [c.step, c.promptId])).toEqual([['created', low[0].id]]);
    expect(processed.flat()).toContain(VIN_A);
    expect(i.rules.latest(VIN_A)?.[VSS.soc]).toBe(18);
    expect((await i.stores.ruleStates.load(VIN_A))?.journalId).toBe(2);
    expect(await counterValue(i.metrics.influxWritten)).toBe(3);
    expect(i.log.lines.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('keeps readings in the journal while InfluxDB is down, prompts meanwhile, and writes each reading once when it is back', async () => {
    const telemetry = new TestTelemetry();
    telemetry.down = true;
    const i = await start({ telemetry });
    await register(i.stores, VIN_A);
    i.pipeline.start();
    const batches = episodes().slice(0, 3);
    for (const b of batches) await i.send(b.vin, b.seq, b.samples);

    // the rules do not wait for InfluxDB
    await waitFor(async () => (await prompts(i.stores, VIN_A)).some((p) => p.kind === 'charging.low_soc'), {
      what: 'a prompt during the outage',
    });
    await waitFor(() => i.journal.lag().rules === 0, { what: 'the rules loop to finish' });
    await waitFor(() => telemetry.failures >= 2, { what: 'the InfluxDB loop to have tried and failed twice' });
    expect(i.journal.lag()).toEqual({ total: 3, influx: 3, rules: 0 });
    expect(i.journal.pendingForInflux(0, 10).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(await counterValue(i.metrics.influxErrors)).toBeGreaterThanOrEqual(1);

    // one more batch during the outage, then InfluxDB comes back
    const late = episodes()[3];
    await i.send(late.vin, late.seq, late.samples);
    await waitFor(() => i.journal.lag().rules === 0, { what: 'the rules loop to take the late batch' });
    telemetry.down = false;
    // the loop backs off (up to 30 s); wake it the way new telemetry would
    await waitFor(
      () => {
        i.pipeline.wake();
        return i.journal.lag().influx === 0;
      },
      { what: 'the journal to drain into InfluxDB' },
    );

    const expected = readingKeys([...batches, late]);
    expect(Object.fromEntries(telemetry.written)).toEqual(Object.fromEntries(expected.map((k) => [k, 1])));
    expect(telemetry.inner.acceptedLines).toBe(expected.length);
    expect(await i.telemetry.count({ vin: VIN_A, signal: VSS.soc, from: T0, to: T0 + DAY })).toBe(expected.length);
    expect(i.log.lines.some((l) => l.level === 'warn' && l.m?.includes('kept in the journal'))).toBe(true);
  });

  it('dead-letters a batch InfluxDB refuses, writes the other batches of the same step and goes on', async () => {
    const telemetry = new TestTelemetry();
    telemetry.refuse = (r) => r.vin === VIN_B;
    const i = await start({ telemetry });
    await register(i.stores, VIN_A);
    await register(i.stores, VIN_B);
    // journalled before the loops start, so one InfluxDB step takes all three
    await i.send(VIN_A, 1, [parked(T0, 50), parked(T0 + MIN, 49)]);
    const refused = payload(VIN_B, 1, [parked(T0, 60)]);
    await i.handlers.telemetry(VIN_B, refused, 'client-b');
    await i.send(VIN_A, 2, [parked(T0 + 2 * MIN, 48)]);
    i.pipeline.start();

    await waitFor(settled(i, 3), { what: 'the step with the refused batch to be done' });
    // the whole step was tried first, then batch by batch
    expect(telemetry.refusedCalls[0].sort()).toEqual([VIN_A, VIN_B]);
    expect(telemetry.refusedCalls.slice(1)).toEqual([[VIN_B]]);
    const dead = await i.stores.deadLetters.list(10);
    expect(dead).toHaveLength(1);
    expect(dead[0].topic).toBe(`telemetry/${VIN_B}`);
    expect(dead[0].reason).toMatch(/^influx: refused by the test store/);
    expect(Buffer.from(dead[0].payloadBase64, 'base64')).toEqual(refused);
    expect(await counterValue(i.metrics.deadLetters, { reason: 'influx_refused' })).toBe(1);
    expect([...telemetry.written.keys()].sort()).toEqual([T0, T0 + MIN, T0 + 2 * MIN].map((ts) => key({ vin: VIN_A, ts })));
    // the rules took the refused batch all the same
    expect(i.rules.latest(VIN_B)?.[VSS.soc]).toBe(60);

    // and the loop moves on
    await i.send(VIN_A, 3, [parked(T0 + 3 * MIN, 47)]);
    await waitFor(settled(i, 4), { what: 'the next batch to be written' });
    expect(telemetry.written.get(key({ vin: VIN_A, ts: T0 + 3 * MIN }))).toBe(1);
    expect(await i.telemetry.count({ vin: VIN_A, signal: VSS.soc, from: T0, to: T0 + DAY })).toBe(4);
    expect(await i.stores.deadLetters.count()).toBe(1);
  });

  it('writes two chunks at once (never more), each flush covering its own chunk, and every reading once', async () => {
    // a flush that takes a while, as influxd parsing a request does: counts how many overlap
    class SlowTelemetry extends TestTelemetry {
      flushing = 0;
      maxFlushing = 0;
      override async flush(): Promise<void> {
        this.maxFlushing = Math.max(this.maxFlushing, ++this.flushing);
        try {
          await new Promise((r) => setTimeout(r, 20));
          await super.flush();
        } finally {
          this.flushing--;
        }
      }
    }
    const telemetry = new SlowTelemetry();
    // two journal entries per InfluxDB chunk
    const i = await start({ telemetry, chunk: 2 });
    await register(i.stores, VIN_A);
    const batches = Array.from({ length: 12 }, (_, b) => ({
      vin: VIN_A,
      seq: b + 1,
      samples: [parked(T0 + b * 2 * MIN, 60), parked(T0 + (b * 2 + 1) * MIN, 60)],
    }));
    for (const b of batches) await i.send(b.vin, b.seq, b.samples);
    i.pipeline.start();

    await waitFor(settled(i, 12), { what: 'every chunk written' });
    expect(telemetry.maxFlushing).toBe(2);
    expect([...telemetry.written.values()].every((n) => n === 1)).toBe(true);
    expect([...telemetry.written.keys()].sort()).toEqual(readingKeys(batches).sort());
    expect(await counterValue(i.metrics.influxWritten)).toBe(24);
  });

  it('during an outage retries one chunk at a time, its backoff doubling once per retry (1, 2, 4 s)', async () => {
    const telemetry = new TestTelemetry();
    telemetry.down = true;
    const i = await start({ telemetry, chunk: 2 });
    await register(i.stores, VIN_A);
    for (let b = 0; b < 12; b++) await i.send(VIN_A, b + 1, [parked(T0 + b * MIN, 60)]);
    i.pipeline.start();
    const retries = () =>
      i.log.lines.filter((l) => l.m?.includes('kept in the journal')).map((l) => (l.o as { retryInMs: number }).retryInMs);
    await waitFor(() => retries().length >= 4, { what: 'four failed InfluxDB writes', timeoutMs: 20_000 });
    // the first two chunks were in flight together when the outage began: both back off 1 s
    expect(retries().slice(0, 4)).toEqual([1000, 1000, 2000, 4000]);
    // each failed chunk fails at its write, not its flush
    expect(telemetry.failures).toBe(retries().length);
    telemetry.down = false;
    i.pipeline.retryInfluxNow();
    await waitFor(settled(i, 12), { what: 'the journal to drain once InfluxDB is back' });
    expect([...telemetry.written.values()].every((n) => n === 1)).toBe(true);
    expect(telemetry.written.size).toBe(12);
  });

  it('bounds a rules step by readings (one entry at least), in journal order, each reading applied once', async () => {
    const applied = new Map<string, number>();
    const steps: number[] = [];
    const real = fixture.pool.run.bind(fixture.pool);
    vi.spyOn(fixture.pool, 'run').mockImplementation((items, now) => {
      steps.push(items.reduce((n, it) => n + it.readings.length, 0));
      for (const it of items) for (const r of it.readings) applied.set(key(r), (applied.get(key(r)) ?? 0) + 1);
      return real(items, now);
    });
    const i = await start({ rulesStepReadings: 5 });
    await register(i.stores, VIN_A);
    await register(i.stores, VIN_B);
    // journalled before the loops start: 2 + 2 + 6 + 2 + 2 readings
    const sizes = [2, 2, 6, 2, 2];
    let ts = T0;
    for (const [k, n] of sizes.entries())
      await i.send(
        k % 2 ? VIN_B : VIN_A,
        Math.floor(k / 2) + 1,
        Array.from({ length: n }, () => parked((ts += MIN), 60)),
      );
    i.pipeline.start();
    await waitFor(settled(i, sizes.length), { what: 'every entry applied' });
    // 2+2 (a third entry would pass 5), 6 alone (one entry at least), 2+2
    expect(steps).toEqual([4, 6, 4]);
    expect([...applied.values()].every((n) => n === 1)).toBe(true);
    expect(applied.size).toBe(14);
  });

  it('takes larger rules steps while behind (an eighth of the backlog), small ones again once caught up', async () => {
    const steps: number[] = [];
    const real = fixture.pool.run.bind(fixture.pool);
    vi.spyOn(fixture.pool, 'run').mockImplementation((items, now) => {
      steps.push(items.reduce((n, it) => n + it.readings.length, 0));
      return real(items, now);
    });
    const i = await start({ rulesStepReadings: 5 });
    await register(i.stores, VIN_A);
    for (let b = 0; b < 40; b++) await i.send(VIN_A, b + 1, [parked(T0 + 2 * b * MIN, 60), parked(T0 + (2 * b + 1) * MIN, 60)]);
    i.pipeline.start();
    await waitFor(settled(i, 40), { what: 'every entry applied' });
    expect(steps.reduce((a, b) => a + b, 0)).toBe(80);
    expect(steps[0]).toBe(4); // 40 entries of ~1 reading each, as far as the loop knew: 40 / 8 = 5
    expect(Math.max(...steps)).toBeGreaterThanOrEqual(8); // 38 entries of 2: 76 / 8
    expect(steps.at(-1)).toBeLessThanOrEqual(5);
  });

  it('after a stop mid-way, a new process on the same journal and stores applies the rest, nothing twice', async () => {
    const reference = await uninterrupted();
    expect(reference.filter((p) => p.startsWith('charging.'))).toEqual([
      `charging.low_soc ${VIN_A}:charging.low_soc:0 resolved`,
      `charging.low_soc ${VIN_A}:charging.low_soc:1 open`,
    ]);

    const dir = tempDir(dirs);
    const stores = createMemoryStores();
    const telemetry = new TestTelemetry();
    await register(stores, VIN_A);
    const applied = appliedByPool();
    const first = await start({ dir, stores, telemetry, chunk: 2 });
    const batches = episodes();
    for (const b of batches) await first.send(b.vin, b.seq, b.samples);
    // stop right after the first rules step (two entries of six)
    const stopping: { done?: Promise<void> } = {};
    first.pipeline.once('processed', () => {
      stopping.done = first.stop();
    });
    first.pipeline.start();
    await waitFor(() => stopping.done !== undefined, { what: 'the first rules step' });
    await stopping.done;
    expect((await stores.ruleStates.load(VIN_A))?.journalId).toBe(2);

    // a new process: new journal handle, rules runner (rule states from the stores), pipeline
    const second = await start({ dir, stores, telemetry, chunk: 2 });
    expect(second.journal.lag().rules).toBe(4);
    expect(second.rules.latest(VIN_A)?.[VSS.soc]).toBe(15);
    second.pipeline.start();
    await waitFor(settled(second, 6), { what: 'the second process to apply the rest' });

    expect(await summary(stores, VIN_A)).toEqual(reference);
    expect((await stores.ruleStates.load(VIN_A))?.journalId).toBe(6);
    const all = readingKeys(batches);
    expect(Object.fromEntries(applied)).toEqual(Object.fromEntries(all.map((k) => [k, 1])));
    expect(Object.fromEntries(telemetry.written)).toEqual(Object.fromEntries(all.map((k) => [k, 1])));
    expect(await stores.vehicles.chargingSessions(VIN_A, 0, T0 + DAY)).toHaveLength(1);
  });

  it('does not apply again a rules step committed just before a crash but not yet marked done in the journal', async () => {
    const reference = await uninterrupted();
    const dir = tempDir(dirs);
    const stores = createMemoryStores();
    const telemetry = new TestTelemetry();
    await register(stores, VIN_A);
    const applied = appliedByPool();
    const first = await start({ dir, stores, telemetry });
    const batches = episodes();
    for (const b of batches) await first.send(b.vin, b.seq, b.samples);
    // the rules commit four entries, then the process dies before journal.markRulesDone
    await first.rules.applyEntries(first.journal.pendingForRules(0, 4, first.decoded.held));
    expect((await stores.ruleStates.load(VIN_A))?.journalId).toBe(4);
    await first.stop();

    const second = await start({ dir, stores, telemetry });
    expect(second.journal.lag()).toEqual({ total: 6, influx: 6, rules: 6 });
    second.pipeline.start();
    await waitFor(settled(second, 6), { what: 'the second process to settle' });

    const all = readingKeys(batches);
    expect(Object.fromEntries(applied)).toEqual(Object.fromEntries(all.map((k) => [k, 1])));
    expect(await summary(stores, VIN_A)).toEqual(reference);
    // each situation prompted once
    expect([...tally((await prompts(stores, VIN_A)).map((p) => p.dedupKey)).values()]).toEqual(reference.map(() => 1));
    expect((await stores.ruleStates.load(VIN_A))?.journalId).toBe(6);
    expect(Object.fromEntries(telemetry.written)).toEqual(Object.fromEntries(all.map((k) => [k, 1])));
  });
});
