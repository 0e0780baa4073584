// The same path with Mosquitto as the external broker: per-vehicle credentials and ACL, ingest as a
// persistent-session client that PUBACKs after journalling, so an ingest outage loses nothing.
import mqtt from 'mqtt';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHmiPrompt, encodeAgentStatus } from '../../proto/codec.js';
import { VSS } from '../../proto/signals.js';
import { influxQuery, startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { eventually, getJson, runAgentProcess, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { startMosquitto, type MosquittoHandle } from '../support/mosquitto.js';
import { lowChargeAndFaultScenario, PROFILE, writeReplay } from '../support/scenario.js';

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
  await fetch(`${ingest.api}/api/v1/vehicles/${VIN}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(PROFILE),
  });
});

afterAll(async () => {
  await ingest?.stop();
  await broker?.dispose();
  await influx?.stop();
});

const count = async () =>
  (await influxQuery(influx.url, 'mosq', `SELECT count("${VSS.soc}") FROM "telemetry" WHERE "vin" = '${VIN}'`)).results?.[0]?.series?.[0]
    ?.values?.[0]?.[1] ?? 0;

describe('Mosquitto as the external broker', () => {
  it('carries readings in and prompts out, exactly once, and survives an ingest outage', async () => {
    const { lines, expected } = lowChargeAndFaultScenario(VIN);
    const file = join(tmp, 'm.jsonl');
    writeReplay(file, lines);

    // ingest is down while the vehicle sends: Mosquitto keeps the persistent session's messages
    await ingest!.stop();
    const reuse = { dataDir: ingest!.dataDir, httpPort: ingest!.httpPort, mqttPort: ingest!.mqttPort };
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

    await eventually(async () => (await count()) === lines.length, 30_000, 'all samples in InfluxDB');
    const kinds = Object.keys(expected);
    const byKind = async () => {
      const items = (await getJson<{ items: any[] }>(`${ingest!.api}/api/v1/prompts?vin=${VIN}&limit=500`)).items;
      return Object.fromEntries(kinds.map((k) => [k, items.filter((p) => p.kind === k).length]));
    };
    await eventually(async () => JSON.stringify(await byKind()) === JSON.stringify(expected), 30_000, 'expected prompts');

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
    await eventually(() => got.some((p) => p.kind === 'charging.critical_soc' && !p.withdrawn), 20_000, 'critical prompt on the HMI');
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
    await eventually(() => seen.includes(`v1/vehicles/${VIN}/prompts`), 10_000, 'own prompt');
    expect(seen).not.toContain(`v1/vehicles/${other}/prompts`);
    // and what it publishes under another VIN never reaches ingest
    const before = Number(
      /^odopulse_telemetry_batches_total\{result="new"\} (\d+)/m.exec(await (await fetch(`${ingest!.api}/metrics`)).text())?.[1] ?? 0,
    );
    await intruder.publishAsync(`v1/vehicles/${other}/telemetry`, Buffer.from([1, 2, 3]), { qos: 1 });
    await cloud.publishAsync(`v1/vehicles/${VIN}/prompts`, Buffer.from('z'), { qos: 1 });
    await eventually(() => seen.filter((t) => t === `v1/vehicles/${VIN}/prompts`).length === 2, 10_000, 'second own prompt');
    const metrics = await (await fetch(`${ingest!.api}/metrics`)).text();
    expect(metrics).not.toMatch(/odopulse_dead_letters_total\{reason="malformed"\} [1-9]/);
    expect(Number(/^odopulse_telemetry_batches_total\{result="new"\} (\d+)/m.exec(metrics)?.[1] ?? 0)).toBe(before);
    await intruder.endAsync();
    await cloud.endAsync();
    await expect(
      mqtt.connectAsync(broker.url, { clientId: 'bad-pw', username: VIN, password: 'wrong', reconnectPeriod: 0 }),
    ).rejects.toThrow();
  });
});
