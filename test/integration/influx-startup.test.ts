// ingest starts while InfluxDB is down (nothing listens on INFLUX_URL): the broker PUBACKs telemetry
// into the journal, /healthz answers 200 degraded with the reason, telemetry reads answer 503 JSON
// naming InfluxDB; once influxd is up on that port the journalled readings arrive and /healthz is ok.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sample } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';
import { influxNumber, startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { apiRequest, metric, publishBatch, putVehicle, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { PROFILE } from '../support/scenario.js';
import { waitFor } from '../support/wait.js';

const VIN = 'LSVAU2180N2183294';
const T0 = Date.UTC(2026, 2, 1, 8);
const DB = 'startup';

interface Health {
  ok: boolean;
  status: string;
  checks: Record<string, boolean | string>;
}

let influx: InfluxdHandle;
let ingest: IngestProcess | undefined;

beforeAll(async () => {
  // the database exists on disk, then the server goes away: its port has no listener
  influx = await startInfluxd({ database: DB });
  await influx.pause();
});
afterAll(async () => {
  await ingest?.stop('SIGKILL');
  await influx?.stop();
});

async function health(): Promise<{ code: number; body: Health }> {
  const r = await fetch(`${ingest!.api}/healthz`);
  return { code: r.status, body: (await r.json()) as Health };
}

describe('ingest start-up without InfluxDB', () => {
  it('journals and serves while InfluxDB is down, and writes the journal once it is up', { timeout: 180_000 }, async () => {
    // returns once /healthz answers 200: degraded is 200
    ingest = await startIngestProcess({ INFLUX_URL: influx.url, INFLUX_BUCKET: DB, ODOPULSE_CLOCK: 'event' }, undefined, {
      ready: 'serving',
    });
    const degraded = await health();
    expect(degraded.code).toBe(200);
    expect(degraded.body).toMatchObject({ ok: false, status: 'degraded', checks: { broker: true, influxdb: false, workers: true } });
    expect(degraded.body.checks.influxdbError).toMatch(/^not reachable since \d{4}-\d\d-\d\dT\S+Z: .*ECONNREFUSED/);

    await putVehicle(ingest, VIN, PROFILE);
    const batches = [0, 1, 2].map((b) =>
      Array.from({ length: 4 }, (_, k): Sample => ({ ts: T0 + (b * 4 + k) * 60_000, signals: { [VSS.soc]: 80 - b * 4 - k } })),
    );
    // each publish resolves on the broker's PUBACK: journalled, InfluxDB or not
    for (const [i, samples] of batches.entries()) await publishBatch(ingest.mqttUrl, VIN, samples, { seq: i + 1 });
    await waitFor(async () => (await health()).body.checks.journalPendingInflux === '3', { what: 'three batches pending for InfluxDB' });
    // the InfluxDB loop counts and logs it as an outage
    await waitFor(async () => (await metric(ingest!, 'odopulse_influx_write_errors_total')) >= 1, { what: 'the outage counted' });

    const read = await apiRequest(ingest, 'GET', `/api/v1/vehicles/${VIN}/telemetry?signal=${VSS.soc}&from=${T0}&to=${T0 + 3_600_000}`);
    expect(read.status).toBe(503);
    expect(read.headers.get('content-type')).toContain('application/json');
    const body = (await read.json()) as { error: string; message: string };
    expect(body.error).toBe('telemetry_unavailable');
    expect(body.message).toMatch(/^InfluxDB not reachable since \S+Z: /);
    const view = await apiRequest(ingest, 'GET', `/api/v1/vehicles/${VIN}`);
    expect(view.status).toBe(200);
    expect(((await view.json()) as { latestError: string }).latestError).toMatch(/^InfluxDB not reachable/);

    // influxd back on the same port and data: ingest connects and writes what it journalled
    await influx.resume();
    await waitFor(async () => (await influxNumber(influx.url, DB, `SELECT COUNT("${VSS.soc}") FROM "telemetry"`)) === 12, {
      what: 'the journalled readings in InfluxDB',
      timeoutMs: 90_000,
      intervalMs: 250,
    });
    const ok = await waitFor(
      async () => {
        const h = await health();
        return h.body.status === 'ok' ? h : false;
      },
      { what: '/healthz ok' },
    );
    expect(ok.code).toBe(200);
    expect(ok.body.ok).toBe(true);
    expect(ok.body.checks.influxdb).toBe(true);
    expect(ok.body.checks.influxdbError).toBeUndefined();
    expect(ok.body.checks.journalPendingInflux).toBe('0');
    const points = await apiRequest(ingest, 'GET', `/api/v1/vehicles/${VIN}/telemetry?signal=${VSS.soc}&from=${T0}&to=${T0 + 3_600_000}`);
    expect(points.status).toBe(200);
    expect(((await points.json()) as { points: unknown[] }).points).toHaveLength(12);
    expect(ingest.output()).toMatch(/InfluxDB not reachable/);
  });
});
