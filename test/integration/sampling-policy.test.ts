// The cloud side of the sampling policy: PUT /api/v1/vehicles/{vin}/sampling-policy publishes a
// retained AgentConfig on the vehicle's config topic (the agent applies it without a restart).
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeAgentConfig } from '../../proto/codec.js';
import { VSS } from '../../proto/signals.js';
import { startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { apiRequest, putVehicle, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { waitFor } from '../support/wait.js';
import { PROFILE } from '../support/scenario.js';

const VIN = 'LSVAU2180N2183320';
let influx: InfluxdHandle;
let ingest: IngestProcess;

beforeAll(async () => {
  influx = await startInfluxd({ database: 'policy' });
  ingest = await startIngestProcess({ INFLUX_URL: influx.url, INFLUX_BUCKET: 'policy' });
  await putVehicle(ingest, VIN, PROFILE);
});
afterAll(async () => {
  await ingest?.stop();
  await influx?.stop();
});

const put = (vin: string, body: unknown) => apiRequest(ingest, 'PUT', `/api/v1/vehicles/${vin}/sampling-policy`, body);

describe('sampling policy from the cloud', () => {
  it('is published retained on the config topic, so a vehicle connecting later gets it', async () => {
    const policy = {
      version: 7,
      signals: [{ path: VSS.soc, periodMs: 60_000, deadband: 1 }],
      triggers: [{ kind: 'new_dtc', threshold: 0 }],
      batchMaxSamples: 20,
      batchMaxDelayMs: 5000,
      locationEnabled: false,
      locationPrecisionDeg: 0.01,
    };
    const r = await put(VIN, policy);
    expect(r.status).toBe(202);
    const car = await mqtt.connectAsync(ingest.mqttUrl, { clientId: `car-${VIN}`, username: VIN });
    const got: unknown[] = [];
    car.on('message', (_t, payload, packet) => got.push({ policy: decodeAgentConfig(payload), retain: packet.retain }));
    await car.subscribeAsync(`v1/vehicles/${VIN}/config`, { qos: 1 });
    await waitFor(() => got.length > 0, { what: 'retained policy' });
    expect(got[0]).toEqual({ policy, retain: true });
    await car.endAsync();
  });

  it('refuses an invalid policy naming the field, and an unknown vehicle', async () => {
    const bad = await put(VIN, {
      version: 1,
      signals: [{ path: 'Vehicle.Nope', periodMs: 1000 }],
      triggers: [],
      batchMaxSamples: 10,
      batchMaxDelayMs: 100,
    });
    expect(bad.status).toBe(400);
    expect(JSON.stringify(await bad.json())).toMatch(/signals/);
    const unknown = await put('LSVAU2180N2183399', { version: 1, signals: [], triggers: [], batchMaxSamples: 10, batchMaxDelayMs: 100 });
    expect(unknown.status).toBe(404);
  });
});
