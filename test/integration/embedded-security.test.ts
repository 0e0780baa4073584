// The embedded broker secured: per-vehicle credentials, each vehicle confined to its own VIN, and TLS
// with mutual TLS. The agent delivers through it with its own credentials and client certificate.
import mqtt from 'mqtt';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeTelemetryBatch } from '../../proto/codec.js';
import { VSS } from '../../proto/signals.js';
import { freePort } from '../support/ports.js';
import { influxNumber, startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { apiRequest, publishBatch, runAgentProcess, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { waitFor } from '../support/wait.js';
import { makeCerts } from '../support/mosquitto.js';
import { lowChargeAndFaultScenario, writeReplay } from '../support/scenario.js';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';

const A = 'LSVAU2180N2183301';
const B = 'LSVAU2180N2183302';
const dir = mkdtempSync(join(tmpdir(), 'odopulse-sec-'));
const certs = makeCerts(dir);
// The client certificate must name the VIN it logs in as (CN or SAN): one for A from the same CA.
const certA = { cert: join(dir, 'a.crt'), key: join(dir, 'a.key') };
for (const args of [
  ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'a.key', '-out', 'a.csr', '-subj', `/CN=${A}`],
  ['x509', '-req', '-in', 'a.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'a.crt', '-days', '2'],
])
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
let influx: InfluxdHandle;
let ingest: IngestProcess;
let tlsPort: number;

beforeAll(async () => {
  influx = await startInfluxd({ database: 'sec' });
  // A's secret in clear, B's as a SHA-256 hash
  writeFileSync(
    join(dir, 'creds.txt'),
    `# vehicles\n${A}:secret-a\n${B}:sha256:${createHash('sha256').update('secret-b').digest('hex')}\n`,
  );
  writeFileSync(join(dir, 'a.pw'), 'secret-a\n');
  tlsPort = await freePort();
  ingest = await startIngestProcess({
    INFLUX_URL: influx.url,
    INFLUX_BUCKET: 'sec',
    ODOPULSE_CLOCK: 'event',
    ODOPULSE_MQTT_CREDENTIALS: join(dir, 'creds.txt'),
    ODOPULSE_MQTT_TLS_PORT: String(tlsPort),
    ODOPULSE_MQTT_TLS_CERT: certs.serverCert,
    ODOPULSE_MQTT_TLS_KEY: certs.serverKey,
    ODOPULSE_MQTT_TLS_CA: certs.ca,
  });
});

afterAll(async () => {
  await ingest?.stop();
  await influx?.stop();
});

const connect = (opts: mqtt.IClientOptions) => mqtt.connectAsync(ingest.mqttUrl, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });

describe('embedded broker security', () => {
  it('refuses unknown vehicles and wrong secrets; accepts the right ones (clear and hashed)', async () => {
    await expect(connect({ clientId: A, username: A, password: 'wrong' })).rejects.toThrow(/Bad username or password|Not authorized/i);
    await expect(connect({ clientId: 'LSVAU2180N2183399', username: 'LSVAU2180N2183399', password: 'secret-a' })).rejects.toThrow();
    await expect(connect({ clientId: A, username: A })).rejects.toThrow();
    const a = await connect({ clientId: A, username: A, password: 'secret-a' });
    const b = await connect({ clientId: B, username: B, password: 'secret-b' });
    await a.endAsync();
    await b.endAsync();
  });

  it("a second vehicle's credentials cannot publish or subscribe under another VIN", async () => {
    const b = await connect({ clientId: B, username: B, password: 'secret-b' });
    await expect(b.subscribeAsync(`v1/vehicles/${A}/prompts`, { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await expect(b.subscribeAsync(`v1/vehicles/${A}/#`, { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await expect(b.subscribeAsync('v1/vehicles/+/prompts', { qos: 1 })).rejects.toThrow(/Subscribe error/);
    const closed = new Promise<void>((resolve) => b.once('close', () => resolve()));
    const batch = encodeTelemetryBatch({
      vin: A,
      bootId: 'evil',
      seq: 1,
      dropped: 0,
      samples: [{ ts: Date.parse('2026-05-01T00:00:00Z'), signals: { [VSS.soc]: 1 } }],
    });
    b.publish(`v1/vehicles/${A}/telemetry`, Buffer.from(batch), { qos: 1 });
    await closed; // the broker drops a client that publishes outside its VIN
    b.end(true);
    const res = await apiRequest(ingest, 'GET', '/metrics');
    expect(res.status).toBe(200);
    const metrics = await res.text();
    expect(metrics).toMatch(/odopulse_mqtt_denied_total [1-9]/);
    // Sentinel: B's own batch, sent after the refused one, reaches InfluxDB (written in journal
    // order); by then the refused batch would be there too, had it been journalled.
    const soc = (vin: string) => influxNumber(influx.url, 'sec', `SELECT count("${VSS.soc}") FROM "telemetry" WHERE "vin" = '${vin}'`);
    await publishBatch(ingest.mqttUrl, B, [{ ts: Date.parse('2026-05-01T00:00:00Z'), signals: { [VSS.soc]: 2 } }], {
      seq: 1,
      client: { clientId: `${B}:sentinel`, password: 'secret-b' }, // client id = VIN or VIN:suffix
    });
    await waitFor(async () => (await soc(B)) === 1, { what: "B's sentinel sample in InfluxDB", intervalMs: 200 });
    expect(await soc(A)).toBe(0);
  });

  it('serves mutual TLS: no client certificate, no connection; the agent delivers with one', async () => {
    const tlsUrl = `mqtts://127.0.0.1:${tlsPort}`;
    await expect(
      mqtt.connectAsync(tlsUrl, {
        clientId: A,
        username: A,
        password: 'secret-a',
        ca: readFileSync(certs.ca),
        reconnectPeriod: 0,
        connectTimeout: 5000,
      }),
    ).rejects.toThrow();
    const { lines } = lowChargeAndFaultScenario(A);
    const file = join(dir, 'a.jsonl');
    writeReplay(file, lines);
    const agent = await runAgentProcess([
      '--vin',
      A,
      '--broker',
      tlsUrl,
      '--replay',
      file,
      '--speed',
      '0',
      '--spool',
      join(dir, 'spool'),
      '--password-file',
      join(dir, 'a.pw'),
      '--ca',
      certs.ca,
      '--cert',
      certA.cert,
      '--key',
      certA.key,
    ]);
    expect(agent.code, agent.output).toBe(0);
    await waitFor(
      async () =>
        (await influxNumber(influx.url, 'sec', `SELECT count("${VSS.soc}") FROM "telemetry" WHERE "vin" = '${A}'`)) === lines.length,
      { what: 'all samples over mutual TLS', intervalMs: 200 },
    );
  });
});
