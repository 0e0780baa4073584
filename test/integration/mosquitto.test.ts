// The same path with Mosquitto as the external broker: per-vehicle credentials and ACL, ingest as a
// persistent-session client that PUBACKs after journalling, so an ingest outage loses nothing.
import mqtt from 'mqtt';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHmiPrompt, encodeAgentStatus } from '../../proto/codec.js';
import { VSS } from '../../proto/signals.js';
import { influxNumber, startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { metric, promptsOf, publishBatch, putVehicle, runAgentProcess, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { startMosquitto, type MosquittoHandle } from '../support/mosquitto.js';
import { lowChargeAndFaultScenario, PROFILE, writeReplay } from '../support/scenario.js';
import { waitFor } from '../support/wait.js';

const VIN = 'LSVAU2180N2183296';
const tmp = mkdtempSync(join(tmpdir(), 'odopulse-mosq-'));
let influx: InfluxdHandle;
let broker: MosquittoHandle;
let ingest: IngestProcess | undefined;
let env: Record<string, string>;

beforeAll(async () => {
  influx = await startInfluxd({ database: 'mosq' });
  broker = await startMosquitto({ acl: true, passwords: { ingest: 'ingest-secret', [VIN]: 'vin-secret' } });
  writeFileSync(join(tmp, 'ingest.pw'), 'ingest-secret\n');
  writeFileSync(join(tmp, 'vin.pw'), 'vin-secret\n');
  env = {
    INFLUX_URL: influx.url,
    INFLUX_BUCKET: 'mosq',
    ODOPULSE_CLOCK: 'event',
    ODOPULSE_MQTT_URL: broker.url,
    ODOPULSE_MQTT_USERNAME: 'ingest',
    ODOPULSE_MQTT_PASSWORD_FILE: join(tmp, 'ingest.pw'),
  };
  ingest = await startIngestProcess(env);
  await putVehicle(ingest, VIN, PROFILE);
});

afterAll(async () => {
  await ingest?.stop();
  await broker?.dispose();
  await influx?.stop();
});

const count = () => influxNumber(influx.url, 'mosq', `SELECT count("${VSS.soc}") FROM "telemetry" WHERE "vin" = '${VIN}'`);

describe('Mosquitto as the external broker', () => {
  it('carries readings in and prompts out, exactly once, and survives an ingest outage', async () => {
    const { lines, expected } = lowChargeAndFaultScenario(VIN);
    const file = join(tmp, 'm.jsonl');
    writeReplay(file, lines);

    // ingest is down while the vehicle sends: Mosquitto keeps the persistent session's messages
    await ingest!.stop();
    const reuse = { dataDir: ingest!.dataDir, httpPort: ingest!.httpPort, mqttPort: ingest!.mqttPort, token: ingest!.token };
    const agent = await runAgentProcess([
      '--vin',
      VIN,
      '--broker',
      broker.url,
      '--username',
      VIN,
      '--password-file',
      join(tmp, 'vin.pw'),
      '--replay',
      file,
      '--speed',
      '0',
      '--spool',
      join(tmp, 'spool'),
    ]);
    expect(agent.code, agent.output).toBe(0);
    ingest = await startIngestProcess(env, reuse);

    await waitFor(async () => (await count()) === lines.length, { what: 'all samples in InfluxDB', intervalMs: 200 });
    const kinds = Object.keys(expected);
    const byKind = async () => {
      const items = await promptsOf(ingest!, VIN);
      return Object.fromEntries(kinds.map((k) => [k, items.filter((p) => p.kind === k).length]));
    };
    await waitFor(async () => JSON.stringify(await byKind()) === JSON.stringify(expected), { what: 'expected prompts', intervalMs: 200 });

    // the head unit comes online through Mosquitto and receives its urgent prompts once
    const hmi = await mqtt.connectAsync(broker.url, { clientId: `hmi-${VIN}`, username: VIN, password: 'vin-secret' });
    const got: ReturnType<typeof decodeHmiPrompt>[] = [];
    hmi.on('message', (_t, p) => got.push(decodeHmiPrompt(p)));
    await hmi.subscribeAsync(`v1/vehicles/${VIN}/prompts`, { qos: 1 });
    await hmi.publishAsync(
      `v1/vehicles/${VIN}/status`,
      Buffer.from(
        encodeAgentStatus({
          vin: VIN,
          online: true,
          agentVersion: 't',
          configVersion: 0,
          bootId: 'h',
          ts: Date.now(),
          spoolDropped: 0,
          spoolPending: 0,
        }),
      ),
      { qos: 1, retain: true },
    );
    await waitFor(() => got.some((p) => p.kind === 'charging.critical_soc' && !p.withdrawn), { what: 'critical prompt on the HMI' });
    const ids = got.filter((p) => !p.withdrawn).map((p) => p.promptId);
    expect(new Set(ids).size).toBe(ids.length);
    await hmi.endAsync();
  });

  it('refuses a vehicle publishing or reading under another VIN (Mosquitto ACL)', async () => {
    const other = 'LFV2A21K0R3000009';
    const intruder = await mqtt.connectAsync(broker.url, { clientId: 'intruder', username: VIN, password: 'vin-secret' });
    const seen: string[] = [];
    intruder.on('message', (topic) => seen.push(topic));
    // Mosquitto grants the SUBACK but never delivers another VIN's messages
    await intruder.subscribeAsync([`v1/vehicles/${other}/prompts`, `v1/vehicles/${VIN}/prompts`], { qos: 1 });
    const cloud = await mqtt.connectAsync(broker.url, { clientId: 'cloud-test', username: 'ingest', password: 'ingest-secret' });
    await cloud.publishAsync(`v1/vehicles/${other}/prompts`, Buffer.from('x'), { qos: 1 });
    await cloud.publishAsync(`v1/vehicles/${VIN}/prompts`, Buffer.from('y'), { qos: 1 });
    // The own prompt was published after the other VIN's: once it is in, the other one was refused.
    await waitFor(() => seen.includes(`v1/vehicles/${VIN}/prompts`), { what: 'own prompt' });
    expect(seen).not.toContain(`v1/vehicles/${other}/prompts`);
    // and what it publishes under another VIN never reaches ingest
    const newBatches = () => metric(ingest!, 'odopulse_telemetry_batches_total{result="new"}');
    const before = await newBatches();
    await intruder.publishAsync(`v1/vehicles/${other}/telemetry`, Buffer.from([1, 2, 3]), { qos: 1 });
    await intruder.endAsync();
    // Sentinel: a good batch under its own VIN, sent after the refused one, is counted by ingest.
    await publishBatch(broker.url, VIN, [{ ts: Date.parse('2026-03-02T00:00:00Z'), signals: { [VSS.soc]: 50 } }], {
      seq: 9_000_000,
      client: { password: 'vin-secret' },
    });
    await waitFor(async () => (await newBatches()) > before, { what: 'the sentinel batch counted by ingest', intervalMs: 200 });
    expect(await newBatches()).toBe(before + 1);
    expect(await metric(ingest!, 'odopulse_dead_letters_total{reason="malformed"}')).toBe(0);
    await cloud.endAsync();
    await expect(
      mqtt.connectAsync(broker.url, { clientId: 'bad-pw', username: VIN, password: 'wrong', reconnectPeriod: 0 }),
    ).rejects.toThrow();
  });
});
