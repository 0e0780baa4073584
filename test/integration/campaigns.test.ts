// Lifecycle campaigns end to end through the real embedded broker and a real ingest process
// (docs/domain.md#campaigns): a campaign for activity=dormant reaches exactly the dormant vehicles
// of a mixed fleet, each in its locale, only outside quiet hours, once; HMI acks move the funnel;
// the frequency cap holds across an ingest restart; cancel withdraws what the owners have not seen.
import http from 'node:http';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHmiPrompt, encodeAgentStatus, encodePromptAck, encodeTelemetryBatch } from '../../proto/codec.js';
import type { HmiPrompt, Locale } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';
import type { CloudEvent } from '../../ingest/outbound/cloudevents.js';
import { verifySignature } from '../../ingest/outbound/webhook.js';
import { freePort } from '../support/ports.js';
import { startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import type { PromptJson, VehicleDetailJson } from '../support/api.js';
import { apiGet, apiRequest, promptsOf, putVehicle, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { waitFor } from '../support/wait.js';

const DAY = 86_400_000;
// D = dormant, A = active; DQ is dormant but inside its quiet hours (around now)
const FLEET = {
  D_EN: { vin: 'LSVAU2180N2184001', locale: 'en' as Locale, dormant: true },
  D_ZH: { vin: 'LSVAU2180N2184002', locale: 'zh-CN' as Locale, dormant: true },
  DQ: { vin: 'LSVAU2180N2184003', locale: 'en' as Locale, dormant: true, quiet: true },
  A_EN: { vin: 'LSVAU2180N2184004', locale: 'en' as Locale, dormant: false },
  A_ZH: { vin: 'LSVAU2180N2184005', locale: 'zh-CN' as Locale, dormant: false },
};
type Key = keyof typeof FLEET;

let influx: InfluxdHandle;
let ingest: IngestProcess;
let hooks: http.Server;
const SECRET = 'campaign-hook-secret';
/** CloudEvents the lifecycle system received (signature checked), by id. */
const events = new Map<string, CloudEvent<{ campaignId?: string; vin?: string; occurrence?: number; step?: string }>>();
const campaignEvents = (vin: string) =>
  [...events.values()]
    .filter((e) => e.type.startsWith('com.odopulse.campaign.') && e.subject === vin)
    // in the order the changes were stored: the change sequence ends the id (camp-<prompt id>-<seq>)
    .sort((a, b) => Number(a.id.split('-').at(-1)) - Number(b.id.split('-').at(-1)))
    .map((e) => `${e.data.occurrence}:${e.type.slice('com.odopulse.campaign.'.length)}`);
const cars = new Map<Key, { client: MqttClient; received: HmiPrompt[] }>();
let seq = 0;

/** Quiet hours from 6 hours before now to 6 hours after (UTC): now is inside them for the whole test. */
function quietAroundNow(): { start: string; end: string } {
  return quietHours(-6, 6);
}

/** Quiet hours well away from now, for the others (the default 22:00-07:00 would hold them back at night). */
function quietAwayFromNow(): { start: string; end: string } {
  return quietHours(8, 12);
}

function quietHours(fromH: number, toH: number): { start: string; end: string } {
  const now = new Date();
  const hhmm = (h: number) => `${String((h + 24) % 24).padStart(2, '0')}:${String(now.getUTCMinutes()).padStart(2, '0')}`;
  return { start: hhmm(now.getUTCHours() + fromH), end: hhmm(now.getUTCHours() + toH) };
}

/** The car: client id = VIN, subscribed to its prompts, its birth published; records what it gets. */
async function connectCar(key: Key): Promise<void> {
  const { vin } = FLEET[key];
  const client = await mqtt.connectAsync(ingest.mqttUrl, { clientId: vin, username: vin, clean: true, reconnectPeriod: 0 });
  const received = cars.get(key)?.received ?? [];
  client.on('message', (_t, payload) => received.push(decodeHmiPrompt(payload)));
  await client.subscribeAsync(`v1/vehicles/${vin}/prompts`, { qos: 1 });
  const birth = encodeAgentStatus({
    vin,
    online: true,
    agentVersion: 'test',
    configVersion: 0,
    bootId: 'campaigns',
    ts: Date.now(),
    spoolDropped: 0,
    spoolPending: 0,
  });
  await client.publishAsync(`v1/vehicles/${vin}/status`, Buffer.from(birth), { qos: 1, retain: true });
  cars.set(key, { client, received });
}

/** Readings that make the vehicle dormant (last driven 40 days ago) or active (driven minutes ago), parked now. */
async function report(key: Key): Promise<void> {
  const { vin, dormant } = FLEET[key];
  const now = Date.now();
  const drove = dormant ? now - 40 * DAY : now - 10 * 60_000;
  const samples = [
    { ts: drove - 60_000, signals: { [VSS.odometer]: 5000, [VSS.lowVoltageSystemState]: 'ON', [VSS.speed]: 50 } },
    { ts: drove, signals: { [VSS.odometer]: 5012, [VSS.lowVoltageSystemState]: 'ON', [VSS.speed]: 40 } },
    { ts: now - 30_000, signals: { [VSS.odometer]: 5012, [VSS.lowVoltageSystemState]: 'OFF', [VSS.speed]: 0 } },
  ];
  const batch = encodeTelemetryBatch({ vin, bootId: 'campaigns', seq: ++seq, dropped: 0, samples });
  await cars.get(key)!.client.publishAsync(`v1/vehicles/${vin}/telemetry`, Buffer.from(batch), { qos: 1 });
}

const campaignPrompts = (key: Key) => cars.get(key)!.received.filter((p) => p.kind === 'campaign.message');
const promptsFor = async (key: Key): Promise<PromptJson[]> =>
  (await promptsOf(ingest, FLEET[key].vin)).filter((p) => p.kind === 'campaign.message');

interface Funnel {
  targeted: number;
  pending: number;
  delivered: number;
  shown: number;
  dismissed: number;
  acted: number;
  withdrawn: number;
  conversion: number | null;
}
const stats = (id: string) =>
  apiGet<{ totals: Funnel; segments: Array<Funnel & { activity: string }> }>(ingest, `/api/v1/campaigns/${id}/stats`);

beforeAll(async () => {
  influx = await startInfluxd({ database: 'campaigns' });
  const hookPort = await freePort();
  hooks = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (verifySignature(SECRET, req.headers as Record<string, string>, body, 300)) {
        const e = JSON.parse(body) as CloudEvent<{ campaignId?: string }>;
        events.set(e.id, e);
      }
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hooks.listen(hookPort, '127.0.0.1', () => r()));
  // a generous daily cap: the dormant-vehicle tip and maintenance prompts must not crowd the campaign out here
  ingest = await startIngestProcess({
    INFLUX_URL: influx.url,
    INFLUX_BUCKET: 'campaigns',
    ODOPULSE_HMI_DAILY_CAP: '20',
    ODOPULSE_SWEEP_MS: '500',
    ODOPULSE_WEBHOOK_URL: `http://127.0.0.1:${hookPort}/events`,
    ODOPULSE_WEBHOOK_SECRET: SECRET,
    ODOPULSE_WEBHOOK_MAX_BACKOFF_MS: '300',
  });
  const deliveryDate = new Date(Date.now() - 200 * DAY).toISOString().slice(0, 10);
  for (const [key, v] of Object.entries(FLEET) as Array<[Key, (typeof FLEET)[Key]]>) {
    await putVehicle(ingest, v.vin, {
      model: 'Aurora EV',
      powertrain: 'BEV',
      deliveryDate,
      dealerId: 'DLR-SH-001',
      locale: v.locale,
      timeZone: 'UTC',
      quietHours: 'quiet' in v ? quietAroundNow() : quietAwayFromNow(),
    });
    await connectCar(key);
    await report(key);
  }
  for (const v of Object.values(FLEET)) {
    await waitFor(
      async () =>
        (await apiGet<VehicleDetailJson>(ingest, `/api/v1/vehicles/${v.vin}`)).segments?.activity === (v.dormant ? 'dormant' : 'active'),
      {
        what: `segments of ${v.vin}`,
        intervalMs: 100,
      },
    );
  }
}, 120_000);

afterAll(async () => {
  for (const c of cars.values()) c.client.end(true);
  await ingest?.stop('SIGKILL');
  await influx?.stop();
  await new Promise((r) => hooks?.close(r));
});

describe('campaigns end to end (embedded broker)', () => {
  let id = '';

  it('reaches exactly the dormant vehicles, each in its locale, outside quiet hours, once', async () => {
    const res = await apiRequest(ingest, 'POST', '/api/v1/campaigns', {
      name: 'Dormant-owner wake-up',
      audience: { activity: ['dormant'] },
      message: { en: { title: 'We miss you', body: 'A free check is waiting' }, 'zh-CN': { title: '好久不见', body: '免费检测等您' } },
      actions: [{ id: 'book_service', label: { en: 'Book a check', 'zh-CN': '预约检测' } }],
      startsAt: new Date(Date.now() - DAY).toISOString(),
      endsAt: new Date(Date.now() + 30 * DAY).toISOString(),
      frequencyCap: { perVehicle: 1, perDays: 30 },
    });
    expect(res.status).toBe(201);
    const c = (await res.json()) as { id: string; counts: Funnel };
    id = c.id;
    expect(c.counts).toMatchObject({ targeted: 3 });

    await waitFor(() => campaignPrompts('D_EN').length > 0 && campaignPrompts('D_ZH').length > 0, {
      what: 'the campaign on both dormant cars',
    });
    expect(campaignPrompts('D_EN').map((p) => [p.locale, p.title, p.actions.map((a) => a.label)])).toEqual([
      ['en', 'We miss you', ['Book a check', 'Dismiss']],
    ]);
    expect(campaignPrompts('D_ZH').map((p) => [p.locale, p.title, p.actions[0].label])).toEqual([['zh-CN', '好久不见', '预约检测']]);
    await waitFor(async () => (await stats(id)).totals.delivered === 2, { what: 'both deliveries confirmed by the cars' });
    // the one in its quiet hours is targeted but held; the active ones are not targeted at all
    expect((await promptsFor('DQ')).map((p) => p.hmiState)).toEqual(['pending']);
    expect(campaignPrompts('DQ')).toEqual([]);
    expect(await promptsFor('A_EN')).toEqual([]);
    expect(await promptsFor('A_ZH')).toEqual([]);
    expect(campaignPrompts('A_EN')).toEqual([]);
  });

  it('HMI acks move the funnel: shown, acted, conversion = acted ÷ delivered', async () => {
    const [p] = campaignPrompts('D_EN');
    const car = cars.get('D_EN')!.client;
    await car.publishAsync(
      `v1/vehicles/${FLEET.D_EN.vin}/prompts/ack`,
      Buffer.from(encodePromptAck({ promptId: p.promptId, outcome: 'SHOWN', ts: Date.now() })),
      { qos: 1 },
    );
    await car.publishAsync(
      `v1/vehicles/${FLEET.D_EN.vin}/prompts/ack`,
      Buffer.from(encodePromptAck({ promptId: p.promptId, outcome: 'ACTED', ts: Date.now(), actionId: 'book_service' })),
      { qos: 1 },
    );
    const s = await waitFor(
      async () => {
        const x = await stats(id);
        return x.totals.acted === 1 ? x : undefined;
      },
      { what: 'the acted ack in the stats' },
    );
    expect(s!.totals).toMatchObject({ targeted: 3, pending: 1, delivered: 2, shown: 1, acted: 1, conversion: 0.5 });
    expect(s!.segments.map((g) => [g.activity, g.targeted])).toEqual([['dormant', 3]]);
  });

  it('the frequency cap holds across an ingest restart: a pass after it gives the acted vehicle nothing new', async () => {
    const reuse = { dataDir: ingest.dataDir, httpPort: ingest.httpPort, mqttPort: ingest.mqttPort, token: ingest.token };
    await ingest.stop('SIGKILL');
    for (const c of cars.values()) c.client.end(true);
    ingest = await startIngestProcess(ingest.env, reuse);
    for (const key of Object.keys(FLEET) as Key[]) await connectCar(key);
    await waitFor(async () => (await apiGet<VehicleDetailJson>(ingest, `/api/v1/vehicles/${FLEET.D_ZH.vin}`)).online.online, {
      what: 'births after the restart',
    });
    // pause withdraws what the owners have not seen (D_ZH on its car, DQ held); resume makes a pass
    expect((await apiRequest(ingest, 'POST', `/api/v1/campaigns/${id}/pause`)).status).toBe(200);
    const resumed = await apiRequest(ingest, 'POST', `/api/v1/campaigns/${id}/resume`);
    expect(resumed.status).toBe(200);
    expect(((await resumed.json()) as { counts: Funnel }).counts).toMatchObject({ targeted: 5, acted: 1, withdrawn: 2 });
    expect((await promptsFor('D_EN')).map((p) => p.dedupKey.split(':').at(-1))).toEqual(['1']); // no second message
    expect((await promptsFor('D_ZH')).map((p) => p.dedupKey.split(':').at(-1)).sort()).toEqual(['1', '2']);
    await waitFor(() => campaignPrompts('D_ZH').filter((p) => !p.withdrawn).length === 2, { what: 'the new message on the zh-CN car' });
    expect(campaignPrompts('D_EN').filter((p) => !p.withdrawn)).toHaveLength(1);
  });

  it('cancel withdraws the messages the owners have not seen, on the car and not yet sent; the acted one stays', async () => {
    await waitFor(async () => (await stats(id)).totals.delivered === 3, { what: 'the new zh-CN message confirmed' });
    const res = await apiRequest(ingest, 'POST', `/api/v1/campaigns/${id}/cancel`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { status: string; counts: Funnel }).counts).toMatchObject({ pending: 0, acted: 1, withdrawn: 4 });
    const zh = (await promptsFor('D_ZH')).find((p) => p.dedupKey.endsWith(':2'))!;
    await waitFor(() => campaignPrompts('D_ZH').some((p) => p.promptId === zh.id && p.withdrawn), {
      what: 'the withdrawal on the zh-CN car',
    });
    expect((await promptsFor('DQ')).every((p) => p.hmiState === 'withdrawn')).toBe(true);
    // never shown on the car in its quiet hours (it is only told to drop what it never had)
    expect(campaignPrompts('DQ').filter((p) => !p.withdrawn)).toEqual([]);
    expect((await promptsFor('D_EN'))[0]).toMatchObject({ hmiState: 'acted', outcome: 'acted' });
    expect((await apiRequest(ingest, 'POST', `/api/v1/campaigns/${id}/resume`)).status).toBe(409);
  });

  it('every state change of a delivery reached the lifecycle system as a signed com.odopulse.campaign.* event', async () => {
    await waitFor(() => campaignEvents(FLEET.D_ZH.vin).includes('2:withdrawn') && campaignEvents(FLEET.DQ.vin).includes('2:withdrawn'), {
      what: 'the withdrawal events',
    });
    expect(campaignEvents(FLEET.D_EN.vin)).toEqual(['1:targeted', '1:delivered', '1:shown', '1:acted']);
    expect(campaignEvents(FLEET.D_ZH.vin)).toEqual([
      '1:targeted',
      '1:delivered',
      '1:withdrawn',
      '2:targeted',
      '2:delivered',
      '2:withdrawn',
    ]);
    expect(campaignEvents(FLEET.DQ.vin)).toEqual(['1:targeted', '1:withdrawn', '2:targeted', '2:withdrawn']);
    expect(campaignEvents(FLEET.A_EN.vin)).toEqual([]);
    const acted = [...events.values()].find((e) => e.type === 'com.odopulse.campaign.acted')!;
    expect(acted.data).toMatchObject({ campaignId: id, vin: FLEET.D_EN.vin, occurrence: 1, step: 'acted', locale: 'en' });
  });
});
