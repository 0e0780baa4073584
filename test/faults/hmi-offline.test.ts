// The head unit offline across an ingest kill -9, under a fleet load: urgent prompts made while the
// HMI client is away (one published to nobody, `sent`; one while the whole vehicle was offline,
// `pending`) survive the kill; after the restart the agent comes back first (its birth re-sends them
// to nobody), then the HMI client connects and subscribes: each arrives once and is confirmed
// (`delivered` in the API, one delivered step each), and no prompt reaches the HMI twice.
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHmiPrompt, encodeAgentStatus } from '../../proto/codec.js';
import type { PromptJson, VehicleDetailJson } from '../support/api.js';
import { startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { apiGet, putVehicle, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { PROFILE } from '../support/scenario.js';
import { readPromptStream } from '../support/sse.js';
import { waitFor } from '../support/wait.js';
import { allPrompts, drain, DtcLedger, duplicatePrompts, readings, restartIngest, vins } from './support/cases.js';
import { sample } from './support/ledger.js';
import { FleetLoad } from './support/load.js';
import { recordFault } from './support/table.js';

const DB = 'faulthmi';
const VEHICLES = 20;
const RATE = 5;
const VIN = 'LHMXCAR0000000001';
const LOAD_VINS = vins('LHMXL', VEHICLES);

let influx: InfluxdHandle;
let ingest: IngestProcess;
const clients: MqttClient[] = [];

beforeAll(async () => {
  influx = await startInfluxd({ database: DB });
  ingest = await startIngestProcess({ INFLUX_URL: influx.url, INFLUX_BUCKET: DB });
  await putVehicle(ingest, VIN, PROFILE); // the vehicle API (online or not) knows registered vehicles only
});

afterAll(async () => {
  for (const c of clients) c.end(true);
  await ingest?.stop('SIGKILL');
  await influx?.stop();
});

const ledger = new DtcLedger([]);
const status = (online: boolean) =>
  Buffer.from(
    encodeAgentStatus({
      vin: VIN,
      online,
      agentVersion: 'fault-suite',
      configVersion: 0,
      bootId: ledger.boots[0],
      ts: Date.now(),
      spoolDropped: 0,
      spoolPending: 0,
    }),
  );

/** The vehicle's agent (client id = VIN): publishes a birth, then telemetry from the ledger. */
async function agent() {
  const c = await mqtt.connectAsync(ingest.mqttUrl, { clientId: VIN, username: VIN, clean: true, reconnectPeriod: 0 });
  clients.push(c);
  c.on('error', () => {});
  const say = async (online: boolean) => void (await c.publishAsync(`v1/vehicles/${VIN}/status`, status(online), { qos: 1, retain: true }));
  await say(true);
  return {
    client: c,
    say,
    /** Batch `seq` reporting `dtcs` active; counted as produced once PUBACKed. */
    async report(seq: number, dtcs: string[]) {
      await c.publishAsync(`v1/vehicles/${VIN}/telemetry`, ledger.batch(VIN, 0, seq, { dtcs }), { qos: 1 });
      ledger.acked.add(ledger.key(VIN, 0, seq));
    },
  };
}

/** Every prompt the head unit shows counts here, by id (withdrawals aside). */
const shown = new Map<string, number>();

/** The head unit app: client id VIN:hmi, a clean session, subscribed to the vehicle's prompts. */
async function hmi(): Promise<MqttClient> {
  const c = await mqtt.connectAsync(ingest.mqttUrl, { clientId: `${VIN}:hmi`, username: VIN, clean: true, reconnectPeriod: 0 });
  clients.push(c);
  c.on('error', () => {});
  c.on('message', (_t, payload) => {
    const p = decodeHmiPrompt(payload);
    if (!p.withdrawn) shown.set(p.promptId, (shown.get(p.promptId) ?? 0) + 1);
  });
  await c.subscribeAsync(`v1/vehicles/${VIN}/prompts`, { qos: 1 });
  return c;
}

const prompt = (id: string) => apiGet<PromptJson>(ingest, `/api/v1/prompts/${id}`);
const online = async () => (await apiGet<VehicleDetailJson>(ingest, `/api/v1/vehicles/${VIN}`)).online.online;

/** The fault.dtc prompt of `code` once the API lists it with `hmiState`. */
async function dtcPrompt(code: string, hmiState: string): Promise<PromptJson> {
  const key = `${VIN}:fault.dtc:${code}:1`;
  const p = await waitFor(
    async () =>
      (await allPrompts(ingest, `vin=${VIN}`)).find((x) => x.dedupKey === key && (x as { hmiState?: string }).hmiState === hmiState),
    { what: `the ${code} prompt, HMI ${hmiState}`, intervalMs: 100 },
  );
  return p!;
}

const delivered = (id: string) =>
  waitFor(async () => (await prompt(id)).status === 'delivered', { what: `prompt ${id} delivered`, intervalMs: 100 });

describe('HMI offline across an ingest kill -9', () => {
  it('gets each urgent prompt once after the restart, confirmed', async () => {
    const load = new FleetLoad({ url: () => ingest.mqttUrl, vins: LOAD_VINS, ledger, ratePerVehicle: RATE }).start();
    const started = Date.now();

    // the path works while everything is up: a critical DTC reaches the HMI and is confirmed
    let car = await agent();
    let head = await hmi();
    await waitFor(online, { what: 'the birth seen' });
    await car.report(1, ['P0A80']);
    const p0 = await dtcPrompt('P0A80', 'delivered');
    expect(shown.get(p0.id)).toBe(1);

    // the head unit goes away; an urgent prompt is published to nobody (sent, not confirmed)
    await head.endAsync();
    await car.report(2, ['P0A80', 'P0A7F']);
    const pa = await dtcPrompt('P0A7F', 'sent');
    // the vehicle reports offline; its last batch still arrives: this prompt stays pending
    await car.say(false);
    await waitFor(async () => !(await online()), { what: 'the vehicle offline' });
    await car.report(3, ['P0A80', 'P0A7F', 'U0100']);
    const pb = await dtcPrompt('U0100', 'pending');

    // kill -9 with the fleet well under way: the broker's sessions and the retained birth die with the process
    await waitFor(() => ledger.acked.size >= 500, { what: '500 batches of the load acknowledged' });
    await ingest.stop('SIGKILL');
    car.client.end(true);
    ingest = await restartIngest(ingest);
    expect(await online()).toBe(false);
    expect(await prompt(pa.id)).toMatchObject({ status: 'open', hmiState: 'sent' });
    expect(await prompt(pb.id)).toMatchObject({ status: 'open', hmiState: 'pending' });

    // the agent first: its birth re-sends both, to nobody (the HMI is still away)
    car = await agent();
    await waitFor(online, { what: 'the birth after the restart' });
    await dtcPrompt('U0100', 'sent');
    expect(await prompt(pa.id)).toMatchObject({ status: 'open', hmiState: 'sent' });

    // then the head unit, once the fleet is back too: its subscribe re-sends what it has not confirmed
    const resumed = ledger.acked.size + 300;
    await waitFor(() => ledger.acked.size >= resumed, { what: 'the load acknowledged again after the restart' });
    head = await hmi();
    await delivered(pa.id);
    await delivered(pb.id);

    // marker: another birth (re-sends only unconfirmed prompts: none), then a new urgent prompt;
    // the HMI gets messages in order, so a repeat of a confirmed one would be in before it
    await car.say(true);
    await car.report(4, ['P0A80', 'P0A7F', 'U0100', 'B0001']);
    const pc = await dtcPrompt('B0001', 'delivered');

    const d = await drain(ledger, load, influx.url, DB);
    const prompts = await allPrompts(ingest, `vin=${VIN}`);
    const dups = duplicatePrompts(prompts);
    const ids = [p0.id, pa.id, pb.id, pc.id];
    const repeats = [...shown.values()].reduce((n, c) => n + c - 1, 0);
    // the change history: one created and one delivered step per prompt
    const stream = readPromptStream(`${ingest.api}/api/v1/stream`, { ...ingest.auth, 'last-event-id': '0' });
    const steps = () => stream.events.filter((e) => ids.includes(e.prompt.id)).map((e) => `${e.prompt.id} ${e.step}`);
    await waitFor(() => steps().filter((s) => s.endsWith(' delivered')).length >= ids.length, { what: 'the delivered steps' });
    await stream.close();
    const deliveredSteps = ids.map((id) => steps().filter((s) => s === `${id} delivered`).length);

    recordFault({
      fault: 'HMI offline across ingest kill -9',
      load: `${VEHICLES} vehicles × ${RATE} batches/s, QoS 1, 8 in flight, + 1 car with agent and HMI, ${Math.round((Date.now() - started) / 1000)} s`,
      produced: readings(ledger.acked.size),
      stored: readings(d.stored.size),
      lost: readings(d.lost.length),
      promptsDuplicated: dups.count + repeats,
      notes:
        `4 urgent prompts (1 sent and 1 pending at the kill); on the HMI ${ids.map((id) => shown.get(id) ?? 0).join('/')} times, ` +
        `delivered steps ${deliveredSteps.join('/')}; ${shown.size} distinct prompts shown; drain ${d.drainMs} ms`,
    });

    expect(d.lost, sample(d.lost)).toEqual([]);
    expect(ids.map((id) => shown.get(id))).toEqual([1, 1, 1, 1]);
    expect(shown.size).toBe(ids.length);
    expect(deliveredSteps).toEqual([1, 1, 1, 1]);
    expect(dups.keys).toEqual([]);
    // the registered car also gets lifecycle prompts (maintenance, segment): none of them for the HMI
    const urgent = prompts.filter((p) => p.kind === 'fault.dtc');
    expect(urgent.map((p) => p.id).sort()).toEqual([...ids].sort());
    for (const p of urgent) expect(p).toMatchObject({ status: 'delivered', hmiState: 'delivered' });
    for (const p of prompts.filter((x) => x.kind !== 'fault.dtc')) expect(p).toMatchObject({ audience: ['lifecycle'], hmiState: 'none' });
  });
});
