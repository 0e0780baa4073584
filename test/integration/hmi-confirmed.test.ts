// Confirmed HMI delivery through the real embedded broker and a real ingest process: a prompt is
// `delivered` only once the car's client PUBACKs it; until then it is re-sent on the vehicle's next
// prompts subscribe or birth, also across an ingest kill -9 (the broker's sessions die with it).
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHmiPrompt, encodeAgentStatus, encodeTelemetryBatch } from '../../proto/codec.js';
import { startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import type { PromptJson, VehicleDetailJson } from '../support/api.js';
import { apiGet, metric, promptsOf, putVehicle, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { PROFILE } from '../support/scenario.js';
import { readPromptStream } from '../support/sse.js';
import { waitFor } from '../support/wait.js';

const VIN = 'LSVAU2180N2183302';
let influx: InfluxdHandle;
let ingest: IngestProcess;
const clients: MqttClient[] = [];

beforeAll(async () => {
  influx = await startInfluxd({ database: 'hmiconfirmed' });
  ingest = await startIngestProcess({ INFLUX_URL: influx.url, INFLUX_BUCKET: 'hmiconfirmed' });
  await putVehicle(ingest, VIN, PROFILE);
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await ingest?.stop('SIGKILL');
  await influx?.stop();
});

/** The agent: client id = the VIN; publishes its birth (retained, as the real agent does). */
async function agent(): Promise<MqttClient> {
  const c = await mqtt.connectAsync(ingest.mqttUrl, { clientId: VIN, username: VIN, clean: true, reconnectPeriod: 0 });
  clients.push(c);
  const birth = encodeAgentStatus({
    vin: VIN,
    online: true,
    agentVersion: 'test',
    configVersion: 0,
    bootId: 'hmi-confirmed',
    ts: Date.now(),
    spoolDropped: 0,
    spoolPending: 0,
  });
  await c.publishAsync(`v1/vehicles/${VIN}/status`, Buffer.from(birth), { qos: 1, retain: true });
  return c;
}

/** The head unit app: client id VIN:hmi, a clean session, not subscribed until told. */
async function hmiApp(): Promise<{ client: MqttClient; received: string[]; subscribe(): Promise<void> }> {
  const client = await mqtt.connectAsync(ingest.mqttUrl, { clientId: `${VIN}:hmi`, username: VIN, clean: true, reconnectPeriod: 0 });
  clients.push(client);
  const received: string[] = [];
  client.on('message', (_t, payload) => {
    const p = decodeHmiPrompt(payload);
    if (!p.withdrawn) received.push(p.promptId);
  });
  return { client, received, subscribe: async () => void (await client.subscribeAsync(`v1/vehicles/${VIN}/prompts`, { qos: 1 })) };
}

let seq = 0;
/** A critical DTC (urgent fault.dtc prompt); resolves with the prompt once the API lists it. */
async function urgentPrompt(c: MqttClient, code: string): Promise<PromptJson> {
  const batch = encodeTelemetryBatch({
    vin: VIN,
    bootId: 'hmi-confirmed',
    seq: ++seq,
    dropped: 0,
    samples: [{ ts: Date.now(), signals: {}, dtcs: [code] }],
  });
  await c.publishAsync(`v1/vehicles/${VIN}/telemetry`, Buffer.from(batch), { qos: 1 });
  const found = await waitFor(async () => (await promptsOf(ingest, VIN)).find((p) => p.kind === 'fault.dtc' && p.dedupKey.includes(code)), {
    what: `the fault.dtc prompt of ${code}`,
    intervalMs: 100,
  });
  return found!;
}

const sentTotal = () => metric(ingest, 'odopulse_hmi_prompts_sent_total{urgent="true"}');
const prompt = (id: string) => apiGet<PromptJson>(ingest, `/api/v1/prompts/${id}`);

/** The change history (SSE replay from the start) until `until` holds of it. */
async function changes(until: (steps: Array<{ step: string; promptId: string }>) => boolean) {
  const stream = readPromptStream(`${ingest.api}/api/v1/stream`, { ...ingest.auth, 'last-event-id': '0' });
  const steps = () => stream.events.map((e) => ({ step: e.step, promptId: e.prompt.id }));
  try {
    const found = await waitFor(() => (until(steps()) ? steps() : undefined), { what: 'the change history', intervalMs: 10 });
    return found!;
  } finally {
    await stream.close();
  }
}

describe('confirmed HMI delivery (embedded broker)', () => {
  it('is delivered only once the HMI client PUBACKs it, and re-sent when it subscribes', async () => {
    const car = await agent();
    const hmi = await hmiApp();
    await waitFor(async () => (await apiGet<VehicleDetailJson>(ingest, `/api/v1/vehicles/${VIN}`)).online.online, { what: 'birth seen' });
    const before = await sentTotal();
    const p = await urgentPrompt(car, 'P0A80');
    // published (positive marker: the sent counter), but nobody subscribed: not delivered
    await waitFor(async () => (await sentTotal()) > before, { what: 'the urgent prompt published' });
    expect(await prompt(p.id)).toMatchObject({ status: 'open', hmiState: 'sent' });
    expect(hmi.received).toEqual([]);

    await hmi.subscribe();
    await waitFor(() => hmi.received.includes(p.id), { what: 'the prompt on the HMI after it subscribed' });
    const delivered = await waitFor(async () => ((await prompt(p.id)).status === 'delivered' ? prompt(p.id) : undefined), {
      what: 'the prompt delivered in the API',
    });
    expect(delivered!.hmiState).toBe('delivered');
    const steps = await changes((s) => s.some((c) => c.promptId === p.id && c.step === 'delivered'));
    expect(steps.filter((c) => c.promptId === p.id).map((c) => c.step)).toEqual(['created', 'delivered']);
    await hmi.client.endAsync();
    await car.endAsync();
  });

  it('a prompt pending while the HMI is offline across an ingest kill -9 arrives after the restart, delivered once', async () => {
    const car = await agent();
    const before = await sentTotal();
    const p = await urgentPrompt(car, 'P0A7F');
    await waitFor(async () => (await sentTotal()) > before, { what: 'the urgent prompt published to nobody' });
    expect((await prompt(p.id)).status).toBe('open');

    const reuse = { dataDir: ingest.dataDir, httpPort: ingest.httpPort, mqttPort: ingest.mqttPort, token: ingest.token };
    await ingest.stop('SIGKILL');
    car.end(true);
    ingest = await startIngestProcess(ingest.env, reuse);

    // nobody is connected to the new broker: every vehicle is offline until its birth
    expect((await apiGet<VehicleDetailJson>(ingest, `/api/v1/vehicles/${VIN}`)).online.online).toBe(false);
    expect(await prompt(p.id)).toMatchObject({ status: 'open', hmiState: 'sent' });

    const hmi = await hmiApp();
    await hmi.subscribe(); // the vehicle is offline: nothing yet
    const car2 = await agent(); // its birth: the unconfirmed prompt is sent again
    await waitFor(() => hmi.received.includes(p.id), { what: 'the pending prompt on the HMI after the restart' });
    await waitFor(async () => (await prompt(p.id)).status === 'delivered', { what: 'the prompt delivered after the restart' });
    const steps = await changes((s) => s.some((c) => c.promptId === p.id && c.step === 'delivered'));
    expect(steps.filter((c) => c.promptId === p.id && c.step === 'delivered')).toHaveLength(1);
    expect(hmi.received.filter((id) => id === p.id).length).toBeGreaterThanOrEqual(1);
    await hmi.client.endAsync();
    await car2.endAsync();
  });
});
