// Restart ingest mid-stream (kill -9): no reading lost, no prompt repeated, rule state kept.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { influxQuery, startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { eventually, getJson, runAgentProcess, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { lowChargeAndFaultScenario, PROFILE, writeReplay } from '../support/scenario.js';
import { VSS } from '../../proto/signals.js';

const VIN = 'LSVAU2180N2183295';
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
    const reuse = { dataDir: ingest.dataDir, httpPort: ingest.httpPort, mqttPort: ingest.mqttPort };
    await fetch(`${ingest.api}/api/v1/vehicles/${VIN}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(PROFILE),
    });

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
    const journalled = async () =>
      Number(/^odopulse_readings_total (\d+)/m.exec(await (await fetch(`${ingest!.api}/metrics`)).text())?.[1] ?? 0);
    await eventually(async () => (await journalled()) >= 30, 30_000, 'part of the stream');
    expect(await journalled()).toBeLessThan(lines.length);
    await ingest.stop('SIGKILL');
    await new Promise((r) => setTimeout(r, 1500));
    ingest = await startIngestProcess(env, reuse);

    const result = await agent;
    expect(result.code, result.output).toBe(0);

    const count = async () =>
      (await influxQuery(influx.url, 'restart', `SELECT count("${VSS.soc}") FROM "telemetry" WHERE "vin" = '${VIN}'`)).results?.[0]
        ?.series?.[0]?.values?.[0]?.[1] ?? 0;
    await eventually(async () => (await count()) === lines.length, 30_000, `all ${lines.length} samples in InfluxDB`);

    const kinds = Object.keys(expected);
    const byKind = async () => {
      const items = (await getJson<{ items: any[] }>(`${ingest!.api}/api/v1/prompts?vin=${VIN}&limit=500`)).items;
      return Object.fromEntries(kinds.map((k) => [k, items.filter((p) => p.kind === k).length]));
    };
    await eventually(async () => JSON.stringify(await byKind()) === JSON.stringify(expected), 30_000, 'expected prompts');
    // and nothing more arrives afterwards (a replay of the journal must not add prompts)
    await new Promise((r) => setTimeout(r, 2000));
    expect(await byKind()).toEqual(expected);
    const items = (await getJson<{ items: any[] }>(`${ingest.api}/api/v1/prompts?vin=${VIN}&limit=500`)).items;
    const keys = items.map((p) => p.dedupKey).sort();
    expect(keys).toEqual([...new Set(keys)]);
  });
});
