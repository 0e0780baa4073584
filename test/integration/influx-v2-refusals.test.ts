// InfluxDB 2.x refusals (a stand-in server answering as 2.7 does): 400 partial write, 422 beyond
// retention, 413 too large are refusals of points, recognised per point by the pipeline and
// dead-lettered with the server's reason; 401, 404 and 5xx are failures (an outage), never refusals.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createInfluxTelemetryStore, type InfluxTelemetryStore } from '../../ingest/store/influx/store.js';
import { TelemetryFlushError } from '../../ingest/store/influx/writer.js';
import { TelemetryRefusedError } from '../../ingest/store/telemetry-errors.js';
import { createMemoryStores } from '../../ingest/stores.js';
import { createClock } from '../../ingest/clock.js';
import type { Reading, Sample } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';
import { DEFAULT_RULES_CONFIG } from '../../rules/config.js';
import { RulesPool } from '../../rules/pool.js';
import { startInflux2Fake, V2_REFUSALS, type FakeAnswer, type Influx2Fake } from '../support/influx2-fake.js';
import { waitFor } from '../support/wait.js';
import {
  bev,
  counterValue,
  ensureWorkerBuilt,
  removeDirs,
  startIngestParts,
  tempDir,
  VIN_A,
  VIN_B,
  type Ingest,
} from '../unit/pipeline/harness.js';

const T0 = Date.UTC(2026, 2, 1, 8);
const quiet = { warn: () => undefined, error: () => undefined };
/** Timestamps ending in these milliseconds are the points the fake refuses, each its own way. */
const MARK = { invalid: 1, retention: 2, tooLarge: 3 } as const;
const markOf = (line: string): number => Number(line.slice(line.lastIndexOf(' ') + 1)) % 1000;

/** Refuse a request holding a marked line the way 2.x does; accept (204) the others. */
function refuseMarked(lines: string[]): FakeAnswer | undefined {
  const i = lines.findIndex((l) => markOf(l) !== 0);
  if (i < 0) return undefined;
  const m = markOf(lines[i]);
  if (m === MARK.invalid) return V2_REFUSALS.invalid(i + 1, `unable to parse '${lines[i].slice(0, 40)}...': invalid field format`);
  if (m === MARK.retention) return V2_REFUSALS.retention(1);
  return V2_REFUSALS.tooLarge();
}

const reading = (vin: string, ts: number): Reading => ({ vin, ts, signals: { [VSS.soc]: 50 } });
const noTags = (): Record<string, string> => ({});

let fake: Influx2Fake;
beforeAll(async () => {
  fake = await startInflux2Fake();
});
afterAll(async () => {
  await fake?.close();
});
afterEach(() => {
  fake.stored.length = 0;
  fake.writes.length = 0;
  fake.answer = () => undefined;
});

async function store(): Promise<InfluxTelemetryStore> {
  return createInfluxTelemetryStore({ url: fake.url, token: 'tok', org: 'acme', bucket: 'telemetry', maxRetries: 0, logger: quiet });
}

describe('InfluxDB 2.x answers to writes', () => {
  it('400, 422 and 413 are refusals: TelemetryRefusedError with the status, the server message and the lines', async () => {
    const s = await store();
    expect(s.apiVersion).toBe('v2');
    fake.answer = refuseMarked;
    const cases: Array<[number, number, RegExp]> = [
      [MARK.invalid, 400, /^partial write has occurred, errors encountered on line\(s\): line 2: unable to parse/],
      [MARK.retention, 422, /^failure writing points to database: partial write: points beyond retention policy dropped=1$/],
      [MARK.tooLarge, 413, /^unable to read data: points batch is too large$/],
    ];
    for (const [mark, status, message] of cases) {
      await s.write([reading(VIN_A, T0), reading(VIN_A, T0 + 1000 + mark), reading(VIN_A, T0 + 2000)], noTags);
      const err = await s.flush().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, `mark ${mark}`).toBeInstanceOf(TelemetryRefusedError);
      const refused = err as TelemetryRefusedError;
      expect(refused.status).toBe(status);
      expect(refused.serverMessage).toMatch(message);
      expect(refused.refusedLines).toHaveLength(3);
    }
    expect(s.stats()).toMatchObject({ acceptedLines: 0, failedLines: 0, refusedLines: 9 });
    // and the next flush of acceptable points goes through at once
    await s.write([reading(VIN_A, T0 + 5000)], noTags);
    await s.flush();
    expect(fake.stored).toHaveLength(1);
    await s.close();
  });

  it('401, 404 and 503 are failures (the set-up or an outage), not refusals, and say which setting to check', async () => {
    const s = await store();
    const answers: Array<[FakeAnswer, RegExp]> = [
      [{ status: 401, body: { code: 'unauthorized', message: 'unauthorized access' } }, /HTTP 401: unauthorized access .*INFLUX_TOKEN/],
      [{ status: 404, body: { code: 'not found', message: 'bucket "telemetry" not found' } }, /HTTP 404: .*not found .*INFLUX_BUCKET/],
      [{ status: 400, body: { code: 'invalid', message: 'organization name "acme" not found' } }, /HTTP 400: organization name/],
      [{ status: 503, body: { code: 'unavailable', message: 'service unavailable' } }, /HTTP 503/],
    ];
    for (const [answer, message] of answers) {
      fake.answer = () => answer;
      await s.write([reading(VIN_A, T0)], noTags);
      const err = await s.flush().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, String(answer.status)).toBeInstanceOf(TelemetryFlushError);
      expect((err as Error).message).toMatch(message);
    }
    expect(s.stats().refusedLines).toBe(0);
    await s.close();
  });
});

describe('the pipeline on InfluxDB 2.x', () => {
  let pool: RulesPool;
  const dirs: string[] = [];
  const running: Ingest[] = [];
  beforeAll(() => {
    ensureWorkerBuilt();
    pool = new RulesPool({ threads: 1, config: DEFAULT_RULES_CONFIG });
  }, 180_000);
  afterAll(async () => {
    for (const i of running.splice(0)) await i.stop();
    await pool?.close();
    removeDirs(dirs);
  });

  it('dead-letters each refused point with the server reason and writes every other point of the chunk', async () => {
    fake.answer = refuseMarked;
    const telemetry = await store();
    const stores = createMemoryStores();
    await stores.vehicles.upsert(VIN_A, bev(), T0);
    await stores.vehicles.upsert(VIN_B, bev(), T0);
    const i = await startIngestParts({ dir: tempDir(dirs), stores, telemetry, pool, clock: createClock('event') });
    running.push(i);
    const samples = (from: number, marks: Record<number, number> = {}): Sample[] =>
      Array.from({ length: 6 }, (_, k) => ({ ts: T0 + (from + k) * 60_000 + (marks[k] ?? 0), signals: { [VSS.soc]: 60 - k } }));
    await i.send(VIN_A, 1, samples(0, { 1: MARK.invalid, 4: MARK.tooLarge }));
    await i.send(VIN_B, 1, samples(10, { 2: MARK.retention }));
    await i.send(VIN_A, 2, samples(20));
    i.pipeline.start();

    await waitFor(() => i.journal.lag().influx === 0, { what: 'the chunk to be done' });
    const ts = (l: string) => Number(l.slice(l.lastIndexOf(' ') + 1));
    const stored = new Set(fake.stored.map(ts));
    expect(stored.size).toBe(15);
    expect(fake.stored).toHaveLength(15);
    expect([...stored].every((t) => t % 1000 === 0)).toBe(true);

    const dead = await stores.deadLetters.list(10);
    const reasons = dead.map((d) => d.reason).sort();
    expect(reasons).toHaveLength(3);
    expect(reasons[0]).toMatch(
      /^influx: failure writing points to database: partial write: points beyond retention policy dropped=1 \(HTTP 422;/,
    );
    expect(reasons[1]).toMatch(/^influx: partial write has occurred, errors encountered on line\(s\): line 1: .* \(HTTP 400;/);
    expect(reasons[2]).toMatch(/^influx: unable to read data: points batch is too large \(HTTP 413;/);
    expect(dead.map((d) => d.topic).sort()).toEqual([`telemetry/${VIN_A}`, `telemetry/${VIN_A}`, `telemetry/${VIN_B}`]);
    expect(await counterValue(i.metrics.deadLetters, { reason: 'influx_refused' })).toBe(3);
    expect(await counterValue(i.metrics.influxErrors)).toBe(0);
    expect(await counterValue(i.metrics.influxWritten)).toBe(15);

    // the next chunk is one request, at once
    const before = fake.writes.length;
    await i.send(VIN_B, 2, samples(30));
    await waitFor(() => i.journal.lag().influx === 0 && fake.stored.length >= 15 + 6, { what: 'the next chunk to be written' });
    expect(fake.writes.length).toBe(before + 1);
    expect(await counterValue(i.metrics.influxErrors)).toBe(0);
  });
});
