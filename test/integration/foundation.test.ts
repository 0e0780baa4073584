// The whole path once, on real components: agent -> MQTT (embedded aedes) -> ingest -> InfluxDB 1.6.7
// -> rules -> prompt over MQTT and in the API.
import mqtt from 'mqtt';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHmiPrompt, encodeAgentStatus, encodePromptAck, encodeTelemetryBatch } from '../../proto/codec.js';
import { influxNumber, startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import type { PromptJson, StatsJson } from '../support/api.js';
import {
  apiGet,
  metric,
  promptsOf as listPrompts,
  putVehicle,
  runAgentProcess,
  startIngestProcess,
  type IngestProcess,
} from '../support/ingest.js';
import { lowChargeAndFaultScenario, PROFILE, writeReplay } from '../support/scenario.js';
import { waitFor } from '../support/wait.js';
import { VSS } from '../../proto/signals.js';

const VIN = 'LSVAU2180N2183294';
const OTHER = 'LFV2A21K0R3000001';
let influx: InfluxdHandle;
let ingest: IngestProcess;
const tmp = mkdtempSync(join(tmpdir(), 'odopulse-foundation-'));

beforeAll(async () => {
  influx = await startInfluxd({ database: 'foundation' });
  ingest = await startIngestProcess({ INFLUX_URL: influx.url, INFLUX_BUCKET: 'foundation', ODOPULSE_CLOCK: 'event' });
  for (const vin of [VIN, OTHER]) await putVehicle(ingest, vin, { ...PROFILE, locale: vin === OTHER ? 'zh-CN' : 'en' });
});

afterAll(async () => {
  await ingest?.stop();
  await influx?.stop();
});

async function influxCount(vin: string, field: string): Promise<number> {
  return influxNumber(influx.url, 'foundation', `SELECT count("${field}") FROM "telemetry" WHERE "vin" = '${vin}'`);
}

const promptsOf = (vin: string) => listPrompts(ingest, vin);

function countKinds(items: Array<{ kind: string }>, kinds: string[]) {
  return Object.fromEntries(kinds.map((k) => [k, items.filter((p) => p.kind === k).length]));
}

describe('foundation: agent -> embedded broker -> ingest -> InfluxDB -> rules -> prompts', () => {
  it('stores every sample, and produces each expected prompt exactly once over MQTT and in the API', async () => {
    const { lines, expected } = lowChargeAndFaultScenario(VIN);
    const file = join(tmp, 'a.jsonl');
    writeReplay(file, lines);

    // the head unit: subscribed to its prompts under its own VIN
    const hmi = await mqtt.connectAsync(ingest.mqttUrl, { clientId: `hmi-${VIN}`, username: VIN, clean: false });
    const received: ReturnType<typeof decodeHmiPrompt>[] = [];
    hmi.on('message', (_t, payload) => received.push(decodeHmiPrompt(payload)));
    await hmi.subscribeAsync(`v1/vehicles/${VIN}/prompts`, { qos: 1 });

    const agent = await runAgentProcess([
      '--vin',
      VIN,
      '--broker',
      ingest.mqttUrl,
      '--replay',
      file,
      '--speed',
      '0',
      '--spool',
      join(tmp, 'spool-a'),
    ]);
    expect(agent.output).not.toMatch(/error/i);
    expect(agent.code).toBe(0);

    await waitFor(async () => (await influxCount(VIN, VSS.soc)) === lines.length, { what: 'all samples in InfluxDB', intervalMs: 200 });
    expect(await influxCount(VIN, VSS.odometer)).toBe(lines.length);

    const kinds = Object.keys(expected);
    await waitFor(async () => JSON.stringify(countKinds(await promptsOf(VIN), kinds)) === JSON.stringify(expected), {
      what: 'expected prompts',
      intervalMs: 200,
    });
    const items = await promptsOf(VIN);
    const keys = items.map((p) => p.dedupKey).sort();
    expect(keys).toEqual([...new Set(keys)]);
    const fault = items.filter((p) => p.kind === 'fault.dtc').sort((a, b) => a.dedupKey.localeCompare(b.dedupKey));
    expect(fault[0].status).toBe('resolved');
    expect(fault[1].status).not.toBe('resolved');
    expect(fault[1].severity).toBe('critical');
    expect(items.find((p) => p.kind === 'charging.critical_soc')!.title).toMatch(/[a-z]/i);

    // the vehicle is online again (birth): pending HMI prompts arrive, urgent ones once each
    await hmi.publishAsync(
      `v1/vehicles/${VIN}/status`,
      Buffer.from(
        encodeAgentStatus({
          vin: VIN,
          online: true,
          agentVersion: 'test',
          configVersion: 0,
          bootId: 'hmi',
          ts: Date.now(),
          spoolDropped: 0,
          spoolPending: 0,
        }),
      ),
      { qos: 1, retain: true },
    );
    const shown = () => received.filter((p) => !p.withdrawn);
    await waitFor(
      () =>
        shown().some((p) => p.kind === 'charging.critical_soc') &&
        shown().some((p) => p.kind === 'fault.dtc' && p.promptId === fault[1].id),
      { what: 'urgent prompts on the HMI topic' },
    );
    const ids = shown().map((p) => p.promptId);
    expect(new Set(ids).size).toBe(ids.length);
    expect(shown().filter((p) => p.kind === 'charging.critical_soc')).toHaveLength(1);
    expect(shown().every((p) => p.locale === 'en' && p.title.length > 0)).toBe(true);
    expect(shown().some((p) => p.kind.startsWith('usage.'))).toBe(false);

    // the driver acts on the critical prompt: its status and outcome follow, and conversion counts it
    const critical = shown().find((p) => p.kind === 'charging.critical_soc')!;
    const ackedAt = Date.now();
    await hmi.publishAsync(
      `v1/vehicles/${VIN}/prompts/ack`,
      Buffer.from(encodePromptAck({ promptId: critical.promptId, outcome: 'SHOWN', ts: ackedAt })),
      { qos: 1 },
    );
    await hmi.publishAsync(
      `v1/vehicles/${VIN}/prompts/ack`,
      Buffer.from(encodePromptAck({ promptId: critical.promptId, outcome: 'ACTED', ts: ackedAt, actionId: 'find_charger' })),
      { qos: 1 },
    );
    const acted = await waitFor(
      async () => {
        const p = await apiGet<PromptJson>(ingest, `/api/v1/prompts/${critical.promptId}`);
        return p.outcome === 'acted' ? p : undefined;
      },
      { what: 'acted outcome', intervalMs: 200 },
    );
    expect(acted!.status).not.toBe('open');
    // The acks are steps at their own time; the stats window may span at most 400 days (by design).
    const day = 86_400_000;
    const window = `from=${new Date(ackedAt - day).toISOString()}&to=${new Date(ackedAt + day).toISOString()}`;
    const stats = await apiGet<StatsJson>(ingest, `/api/v1/stats/prompts?${window}`);
    const row = stats.kinds.find((r) => r.kind === 'charging.critical_soc');
    expect(row?.acted).toBeGreaterThanOrEqual(1);
    expect(row?.conversion).toBeGreaterThan(0);
    await hmi.endAsync();
  });

  it('texts follow the vehicle locale (zh-CN)', async () => {
    const { lines } = lowChargeAndFaultScenario(OTHER);
    const file = join(tmp, 'b.jsonl');
    writeReplay(file, lines);
    const agent = await runAgentProcess([
      '--vin',
      OTHER,
      '--broker',
      ingest.mqttUrl,
      '--replay',
      file,
      '--speed',
      '0',
      '--spool',
      join(tmp, 'spool-b'),
    ]);
    expect(agent.code).toBe(0);
    const critical = await waitFor(async () => (await promptsOf(OTHER)).find((p) => p.kind === 'charging.critical_soc'), {
      what: 'critical prompt',
      intervalMs: 200,
    });
    expect(critical!.locale).toBe('zh-CN');
    expect(critical!.title).toMatch(/[\u4e00-\u9fff]/);
  });

  it('dead-letters malformed, invalid and mismatched payloads without losing the good ones', async () => {
    const c = await mqtt.connectAsync(ingest.mqttUrl, { clientId: 'bad-actor', username: VIN });
    await c.publishAsync(`v1/vehicles/${VIN}/telemetry`, Buffer.from([0xff, 0x01, 0x02]), { qos: 1 });
    await c.publishAsync(
      `v1/vehicles/${VIN}/telemetry`,
      Buffer.from(
        encodeTelemetryBatch({
          vin: OTHER,
          bootId: 'x',
          seq: 1,
          dropped: 0,
          samples: [{ ts: Date.parse('2026-03-02T00:00:00Z'), signals: { [VSS.soc]: 50 } }],
        }),
      ),
      { qos: 1 },
    );
    const good = encodeTelemetryBatch({
      vin: VIN,
      bootId: 'x',
      seq: 9_000_000,
      dropped: 0,
      samples: [{ ts: Date.parse('2026-03-02T00:00:00Z'), signals: { [VSS.soc]: 50, [VSS.odometer]: 4300 } }],
    });
    await c.publishAsync(`v1/vehicles/${VIN}/telemetry`, Buffer.from(good), { qos: 1 });
    // the same batch again (at-least-once): stored once
    await c.publishAsync(`v1/vehicles/${VIN}/telemetry`, Buffer.from(good), { qos: 1 });
    await c.endAsync();
    const counted = async () =>
      (await metric(ingest, 'odopulse_dead_letters_total{reason="malformed"}')) >= 1 &&
      (await metric(ingest, 'odopulse_dead_letters_total{reason="invalid"}')) >= 1 &&
      (await metric(ingest, 'odopulse_telemetry_batches_total{result="duplicate"}')) >= 1;
    await waitFor(counted, { what: 'dead-letter and duplicate counters', intervalMs: 200 });
    await waitFor(
      async () =>
        (await influxNumber(
          influx.url,
          'foundation',
          `SELECT count("${VSS.soc}") FROM "telemetry" WHERE "vin" = '${VIN}' AND time = '2026-03-02T00:00:00Z'`,
        )) === 1,
      { what: 'the good batch in InfluxDB', intervalMs: 200 },
    );
  });

  it('confines a vehicle to its own VIN', async () => {
    const c = await mqtt.connectAsync(ingest.mqttUrl, { clientId: 'nosy', username: VIN });
    // SUBACK 0x80: MQTT.js rejects the subscription
    await expect(c.subscribeAsync(`v1/vehicles/${OTHER}/prompts`, { qos: 1 })).rejects.toThrow(/Subscribe error/);
    expect((await c.subscribeAsync(`v1/vehicles/${VIN}/prompts`, { qos: 1 }))[0].qos).toBe(1);
    const closed = new Promise<void>((resolve) => c.once('close', () => resolve()));
    c.publish(`v1/vehicles/${OTHER}/telemetry`, Buffer.from([1]), { qos: 1 });
    await closed;
    c.end(true);
    await expect(mqtt.connectAsync(ingest.mqttUrl, { clientId: 'novin', username: 'not-a-vin', reconnectPeriod: 0 })).rejects.toThrow();
  });
});
