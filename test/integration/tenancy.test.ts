// Dealer tenancy against a real ingest process, its embedded broker and influxd: two dealers with
// an advisor each never see each other's vehicles, prompts, telemetry, stats or stream events and
// cannot act on each other's prompts (404); position reaches only principals with location:read,
// never the lifecycle role; the audit trail has the calls.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sample } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';
import type { PromptPageJson, StatsJson, VehicleDetailJson } from '../support/api.js';
import { startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { apiGet, promptsOf, publishBatch, putVehicle, runBin, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { PROFILE } from '../support/scenario.js';
import { readPromptStream } from '../support/sse.js';
import { waitFor } from '../support/wait.js';

const V1 = 'LSVAU2180N2183501';
const V2 = 'LSVAU2180N2183502';
let influx: InfluxdHandle;
let ingest: IngestProcess;
const keys: Record<'adv1' | 'adv2' | 'adv1loc' | 'crm', string> = { adv1: '', adv2: '', adv1loc: '', crm: '' };

const as = (token: string) => ({ api: ingest.api, auth: { authorization: `Bearer ${token}` } });
const status = async (token: string, path: string, init: RequestInit = {}) => {
  const r = await fetch(`${ingest.api}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
  });
  await r.arrayBuffer();
  return r.status;
};
async function makeKey(...args: string[]): Promise<string> {
  const r = await runBin(['keys', 'create', ...args], { ODOPULSE_DATA_DIR: ingest.dataDir });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim().split('\n').at(-1)!;
}
const parkedLow = (ts: number, soc: number): Sample => ({
  ts,
  signals: { [VSS.soc]: soc, [VSS.speed]: 0, [VSS.lowVoltageSystemState]: 'OFF', [VSS.latitude]: 31.2304, [VSS.longitude]: 121.4737 },
});

/** Every `prompt` event of this principal's stream, as it arrives. */
function stream(token: string) {
  const r = readPromptStream(`${ingest.api}/api/v1/stream`, { authorization: `Bearer ${token}` });
  return {
    get events() {
      return r.events.map((e) => e.prompt);
    },
    close: () => r.close(),
  };
}

beforeAll(async () => {
  influx = await startInfluxd({ database: 'tenancy' });
  ingest = await startIngestProcess({ INFLUX_URL: influx.url, INFLUX_BUCKET: 'tenancy' });
  await putVehicle(ingest, V1, { ...PROFILE, dealerId: 'D1' });
  await putVehicle(ingest, V2, { ...PROFILE, dealerId: 'D2' });
  keys.adv1 = await makeKey('--role', 'advisor', '--dealer', 'D1', '--name', 'Li Wei');
  keys.adv2 = await makeKey('--role', 'advisor', '--dealer', 'D2', '--name', 'Zhang Min');
  keys.adv1loc = await makeKey('--role', 'advisor', '--dealer', 'D1', '--permission', 'location:read');
  keys.crm = await makeKey('--role', 'lifecycle', '--name', 'CRM');
  const now = Date.now();
  for (const [i, vin] of [V1, V2].entries()) await publishBatch(ingest.mqttUrl, vin, [parkedLow(now - 60_000 + i, 5)], { seq: 1 });
  for (const vin of [V1, V2]) {
    await waitFor(async () => (await promptsOf(ingest, vin)).some((p) => p.kind === 'charging.critical_soc'), {
      what: `${vin}'s critical prompt`,
    });
  }
});
afterAll(async () => {
  await ingest?.stop();
  await influx?.stop();
});

describe('two dealers, one advisor each', () => {
  it("lists, reads, telemetry and actions stay inside the advisor's dealer; the other's VIN and prompt are 404", async () => {
    const mine = (await apiGet<PromptPageJson>(as(keys.adv1), '/api/v1/prompts')).items;
    expect(mine.length).toBeGreaterThan(0);
    expect(mine.every((p) => p.vin === V1)).toBe(true);
    const theirs = (await apiGet<PromptPageJson>(as(keys.adv2), '/api/v1/prompts')).items;
    expect(theirs.every((p) => p.vin === V2)).toBe(true);
    const foreign = theirs[0];
    expect(await status(keys.adv1, `/api/v1/prompts/${foreign.id}`)).toBe(404);
    expect(await status(keys.adv1, `/api/v1/prompts/${foreign.id}/ack`, { method: 'POST', body: '{}' })).toBe(404);
    expect(await status(keys.adv1, `/api/v1/prompts/${foreign.id}/resolve`, { method: 'POST', body: '{"outcome":"booked"}' })).toBe(404);
    expect(await status(keys.adv1, `/api/v1/vehicles/${V2}`)).toBe(404);
    expect(await status(keys.adv1, `/api/v1/vehicles/${V2}/telemetry?signal=${VSS.soc}`)).toBe(404);
    expect(await status(keys.adv1, `/api/v1/prompts?vin=${V2}`)).toBe(200);
    expect((await apiGet<PromptPageJson>(as(keys.adv1), `/api/v1/prompts?vin=${V2}`)).items).toEqual([]);
    expect((await apiGet<PromptPageJson>(as(keys.adv1), '/api/v1/prompts?dealerId=D2')).items).toEqual([]);
    expect((await apiGet<{ items: Array<{ vin: string }> }>(as(keys.adv1), '/api/v1/vehicles')).items.map((v) => v.vin)).toEqual([V1]);
    const after = (await apiGet<PromptPageJson>(as(keys.adv2), '/api/v1/prompts')).items.find((p) => p.id === foreign.id)!;
    expect(after.status).toBe(foreign.status);

    // stats count the caller's dealers only
    const own = mine.find((p) => p.kind === 'charging.critical_soc')!;
    expect(await status(keys.adv1, `/api/v1/prompts/${own.id}/ack`, { method: 'POST', body: '{}' })).toBe(200);
    const window = `?from=${Date.now() - 86_400_000}&to=${Date.now() + 60_000}`;
    const s1 = await apiGet<StatsJson>(as(keys.adv1), `/api/v1/stats/prompts${window}`);
    const s2 = await apiGet<StatsJson>(as(keys.adv2), `/api/v1/stats/prompts${window}`);
    const acked = (s: StatsJson) => s.kinds.reduce((n, k) => n + k.acknowledged, 0);
    expect(acked(s1)).toBe(1);
    expect(acked(s2)).toBe(0);
  });

  it("each advisor's stream carries its own dealer's changes only", async () => {
    const s1 = stream(keys.adv1);
    const s2 = stream(keys.adv2);
    // a positive marker on each stream: a new fault on each vehicle
    await waitFor(
      async () => {
        const t = Date.now();
        await publishBatch(ingest.mqttUrl, V1, [{ ts: t - 1000, signals: {}, dtcs: ['P0301'] }], { seq: 10 + Math.floor(t % 1000) });
        await publishBatch(ingest.mqttUrl, V2, [{ ts: t - 1000, signals: {}, dtcs: ['P0302'] }], { seq: 10 + Math.floor(t % 1000) });
        return s1.events.some((p) => p.kind === 'fault.dtc') && s2.events.some((p) => p.kind === 'fault.dtc');
      },
      { what: 'a fault prompt on each advisor stream', intervalMs: 1000 },
    );
    await s1.close();
    await s2.close();
    expect(s1.events.every((p) => p.vin === V1 && p.dealerId === 'D1')).toBe(true);
    expect(s2.events.every((p) => p.vin === V2 && p.dealerId === 'D2')).toBe(true);
  });
});

describe('position', () => {
  it('only principals with location:read see it; the lifecycle role never', async () => {
    const latest = async (token: string) => (await apiGet<VehicleDetailJson>(as(token), `/api/v1/vehicles/${V1}`)).latest!.signals;
    await waitFor(async () => (await latest(ingest.token))[VSS.soc] !== undefined, { what: 'the reading in InfluxDB' });
    expect((await latest(ingest.token))[VSS.latitude]).toBe(31.2304); // operator with location:read
    expect((await latest(keys.adv1loc))[VSS.latitude]).toBe(31.2304);
    for (const token of [keys.adv1, keys.crm]) {
      const signals = await latest(token);
      expect(signals[VSS.soc]).toBe(5);
      expect(signals[VSS.latitude]).toBeUndefined();
      expect(signals[VSS.longitude]).toBeUndefined();
      expect(await status(token, `/api/v1/vehicles/${V1}/telemetry?signal=${encodeURIComponent(VSS.latitude)}`)).toBe(403);
    }
    expect(await status(keys.adv1loc, `/api/v1/vehicles/${V1}/telemetry?signal=${encodeURIComponent(VSS.latitude)}`)).toBe(200);
    // a lifecycle key cannot be given location either
    const r = await runBin(['keys', 'create', '--role', 'lifecycle', '--permission', 'location:read'], {
      ODOPULSE_DATA_DIR: ingest.dataDir,
    });
    expect(r.code).toBe(2);
  });

  it('the audit trail has the reads and the changes, with principal, VIN and request id', async () => {
    const { items } = await apiGet<{ items: Array<{ principal: string; action: string; vin: string | null; requestId: string }> }>(
      ingest,
      `/api/v1/audit?vin=${V1}&limit=1000`,
    );
    const adv1 = `key:${keys.adv1.split('_')[1]}`;
    const actions = new Set(items.filter((e) => e.principal === adv1).map((e) => e.action));
    expect(actions).toEqual(new Set(['prompt.acknowledged', 'vehicle.read', 'telemetry.read.refused']));
    expect(items.every((e) => e.vin === V1 && e.requestId.length > 0)).toBe(true);
    expect(items.some((e) => e.action === 'vehicle.profile.changed')).toBe(true);
    expect(await status(keys.adv1, '/api/v1/audit')).toBe(403);
  });
});
