// Restart ingest mid-stream (kill -9): no reading lost, no prompt repeated, rule state kept.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { influxNumber, startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import {
  metric,
  promptsOf,
  putVehicle,
  rulesSentinel,
  runAgentProcess,
  startIngestProcess,
  type IngestProcess,
} from '../support/ingest.js';
import { lowChargeAndFaultScenario, PROFILE, writeReplay } from '../support/scenario.js';
import { waitFor } from '../support/wait.js';
import { VSS } from '../../proto/signals.js';

const VIN = 'LSVAU2180N2183295';
/** Another vehicle whose fault prompt marks "the rules have applied everything journalled before". */
const SENTINEL = 'LSVAU2180N2183309';
let influx: InfluxdHandle;
let ingest: IngestProcess | undefined;
const tmp = mkdtempSync(join(tmpdir(), 'odopulse-restart-'));

beforeAll(async () => {
  influx = await startInfluxd({ database: 'restart' });
});
afterAll(async () => {
  await ingest?.stop('SIGKILL');
  await influx?.stop();
});

describe('ingest restart mid-stream', () => {
  it('loses no reading and repeats no prompt across kill -9 and restart', async () => {
    const env = { INFLUX_URL: influx.url, INFLUX_BUCKET: 'restart', ODOPULSE_CLOCK: 'event' };
    ingest = await startIngestProcess(env);
    // the same key must keep working after the restart
    const reuse = { dataDir: ingest.dataDir, httpPort: ingest.httpPort, mqttPort: ingest.mqttPort, token: ingest.token };
    for (const vin of [VIN, SENTINEL]) await putVehicle(ingest, vin, PROFILE);

    // samples are a minute apart; at 3000x the replay takes ~7 s of wall time
    const { lines, expected } = lowChargeAndFaultScenario(VIN, '2026-03-01T08:00:00Z', 300);
    const file = join(tmp, 'r.jsonl');
    writeReplay(file, lines);
    const agent = runAgentProcess([
      '--vin',
      VIN,
      '--broker',
      ingest.mqttUrl,
      '--replay',
      file,
      '--speed',
      '3000',
      '--spool',
      join(tmp, 'spool'),
      '--batch-max-samples',
      '5',
    ]);

    // kill ingest once part of the stream is in, then bring it back on the same ports and data
    const journalled = () => metric(ingest!, 'odopulse_readings_total');
    await waitFor(async () => (await journalled()) >= 30, { what: 'part of the stream journalled', intervalMs: 200 });
    expect(await journalled()).toBeLessThan(lines.length);
    await ingest.stop('SIGKILL');
    // Pacing only (asserts nothing): the agent goes on for a moment against a dead broker and spools.
    await new Promise((r) => setTimeout(r, 1500));
    ingest = await startIngestProcess(env, reuse);

    const result = await agent;
    expect(result.code, result.output).toBe(0);

    const count = () => influxNumber(influx.url, 'restart', `SELECT count("${VSS.soc}") FROM "telemetry" WHERE "vin" = '${VIN}'`);
    await waitFor(async () => (await count()) === lines.length, { what: `all ${lines.length} samples in InfluxDB`, intervalMs: 200 });

    const kinds = Object.keys(expected);
    const byKind = async () => {
      const items = await promptsOf(ingest!, VIN);
      return Object.fromEntries(kinds.map((k) => [k, items.filter((p) => p.kind === k).length]));
    };
    await waitFor(async () => JSON.stringify(await byKind()) === JSON.stringify(expected), { what: 'expected prompts', intervalMs: 200 });
    // ...and nothing more comes of the journal replay: once a later sentinel batch has been through
    // the rules (they apply the journal in order), everything before it has been too.
    await rulesSentinel(ingest, SENTINEL, { ts: Date.parse(lines.at(-1)!.ts) + 60_000, seq: 1 });
    expect(await byKind()).toEqual(expected);
    const items = await promptsOf(ingest, VIN);
    const keys = items.map((p) => p.dedupKey).sort();
    expect(keys).toEqual([...new Set(keys)]);
  });
});
