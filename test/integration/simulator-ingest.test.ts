// The simulator against the real ingest service (embedded broker with its per-VIN ACL, HTTP API,
// rules) and a real influxd: profiles and service records land, telemetry is accepted, and the
// simulated lives produce prompts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadIngestConfig } from '../../ingest/config.js';
import { startIngest } from '../../ingest/main.js';
import { startLocalInfluxd } from '../../tools/influxd-local.js';
import { keysCreate } from '../../tools/keys.js';
import { runSimulate, type Summary } from '../../simulator/main.js';
import { createFleet } from '../../simulator/fleet.js';
import type { PromptPageJson, VehicleDetailJson, VehiclePageJson } from '../support/api.js';
import { apiRequest, type IngestApi } from '../support/ingest.js';
import { waitFor } from '../support/wait.js';

const START = Date.UTC(2026, 0, 5);
const SEED = 2;
const VEHICLES = 12;

let dir: string;
let influx: Awaited<ReturnType<typeof startLocalInfluxd>>;
let ingest: Awaited<ReturnType<typeof startIngest>>;
let api: IngestApi;
/** An operator key (it registers vehicles of every dealer), made in the data dir before the start. */
let token: string;
let summary: Summary;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'odopulse-sim-ingest-'));
  token = (await keysCreate(join(dir, 'data'), { role: 'operator', name: 'simulator' })).at(-1)!;
  influx = await startLocalInfluxd({ dataDir: join(dir, 'influx'), database: 'telemetry' });
  const cfg = loadIngestConfig(
    {
      ODOPULSE_MQTT_PORT: '0',
      ODOPULSE_HTTP_PORT: '0',
      ODOPULSE_MQTT_HOST: '127.0.0.1',
      ODOPULSE_HTTP_HOST: '127.0.0.1',
      ODOPULSE_DATA_DIR: join(dir, 'data'),
      ODOPULSE_WORKERS: '1',
      INFLUX_URL: influx.url,
      ODOPULSE_CLOCK: 'event',
      ODOPULSE_SWEEP_MS: '500',
      ODOPULSE_LOG_LEVEL: 'silent',
    },
    {},
  );
  ingest = await startIngest(cfg);
  api = { api: `http://127.0.0.1:${ingest.httpPort}`, auth: { authorization: `Bearer ${token}` } };
  // ~11 simulated days in a few wall seconds. Asked to multiplex, as the demo does: ingest's per-VIN
  // ACL refuses a shared identity, so the simulator falls back to one connection per vehicle.
  summary = await runSimulate({
    vehicles: VEHICLES,
    speedup: 200_000,
    seed: SEED,
    durationMs: 5000,
    broker: `mqtt://127.0.0.1:${ingest.mqttPort}`,
    api: api.api,
    apiKey: token,
    connections: 'multiplex',
    quiet: true,
    start: START,
  });
}, 120_000);

afterAll(async () => {
  await ingest?.stop();
  await influx?.stop();
  await rm(dir, { recursive: true, force: true });
});

const get = async <T>(path: string): Promise<T> => {
  const r = await apiRequest(api, 'GET', path);
  expect(r.status, path).toBe(200);
  return (await r.json()) as T;
};

describe('simulator -> ingest', () => {
  it('publishes without errors through the per-VIN ACL', () => {
    expect(summary.connections).toBe('per-vehicle');
    expect(summary.errors).toBe(0);
    expect(summary.registered).toBe(VEHICLES);
    expect(summary.batches).toBeGreaterThan(VEHICLES);
  });

  it("registers every profile and the owners' service history", async () => {
    const fleet = createFleet({ vehicles: VEHICLES, seed: SEED, start: START });
    const list = await get<VehiclePageJson>('/api/v1/vehicles?limit=100');
    expect(list.items).toHaveLength(VEHICLES);
    for (const v of fleet.vehicles) {
      const got = list.items.find((x) => x.vin === v.vin);
      expect(got, v.vin).toMatchObject({
        model: v.profile.model,
        powertrain: v.profile.powertrain,
        dealerId: v.profile.dealerId,
        locale: v.profile.locale,
        vehicleType: v.profile.vehicleType,
      });
    }
    let records = 0;
    for (const v of fleet.vehicles) records += (await get<VehicleDetailJson>(`/api/v1/vehicles/${v.vin}`)).serviceRecords.length;
    expect(records).toBe(summary.serviceRecords);
    expect(records).toBeGreaterThan(0);
  });

  it('the simulated lives produce prompts', async () => {
    // Rules run behind the journal: wait for the first prompts.
    const prompts = (await waitFor(
      async () => {
        const page = await get<PromptPageJson>('/api/v1/prompts?limit=200');
        return page.items.length > 0 ? page.items : undefined;
      },
      { what: 'prompts from the simulated fleet', intervalMs: 500 },
    ))!;
    const vins = new Set(createFleet({ vehicles: VEHICLES, seed: SEED, start: START }).vehicles.map((v) => v.vin));
    for (const p of prompts) expect(vins.has(p.vin)).toBe(true);
  });
});
