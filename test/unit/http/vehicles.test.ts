// Ops and vehicle routes through app.inject over the in-memory stores.
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TelemetryUnavailableError } from '../../../ingest/store/telemetry-errors.js';
import { VSS } from '../../../proto/signals.js';
import { makeHarness, profile, T0, VIN_A, VIN_B, VIN_C, type Harness } from './harness.js';

let h: Harness;
beforeEach(async () => {
  h = await makeHarness();
});
afterEach(async () => {
  await h.close();
});

const HOUR = 3_600_000;

describe('ops', () => {
  it('GET /healthz answers 200 when ready, 200 degraded with the reason, and 503 with the failing checks when down', async () => {
    const ok = await h.app.inject('/healthz');
    expect(ok.statusCode).toBe(200);
    expect(ok.json()).toEqual({ ok: true, status: 'ok', checks: { broker: true, influx: true, workers: true } });

    // InfluxDB away: telemetry is still journalled, so a load balancer keeps this instance
    h.health = {
      ok: false,
      status: 'degraded',
      checks: { broker: true, influxdb: false, influxdbError: 'not reachable since 2026-03-01T08:00:00.000Z: ECONNREFUSED', workers: true },
    };
    const degraded = await h.app.inject('/healthz');
    expect(degraded.statusCode).toBe(200);
    expect(degraded.json()).toMatchObject({
      ok: false,
      status: 'degraded',
      checks: { influxdb: false, influxdbError: /^not reachable since/ },
    });

    h.health = { ok: false, checks: { broker: true, influx: 'connection refused', workers: true } };
    const down = await h.app.inject('/healthz');
    expect(down.statusCode).toBe(503);
    expect(down.json().status).toBe('down');
    expect(down.json().checks.influx).toBe('connection refused');

    h.health = new Error('probe crashed');
    const crashed = await h.app.inject('/healthz');
    expect(crashed.statusCode).toBe(503);
    expect(crashed.json()).toEqual({ ok: false, status: 'down', checks: { health: 'probe crashed' } });
  });

  it('GET /metrics returns the Prometheus text with its content type', async () => {
    const res = await h.app.inject('/metrics');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('text/plain; version=0.0.4');
    expect(res.body).toContain('odopulse_up 1');
  });

  it('accepts a shared pino logger instance as well as logger options', async () => {
    for (const logger of [pino({ level: 'silent' }), { level: 'silent' }]) {
      const other = await makeHarness({ logger });
      expect((await other.app.inject('/healthz')).statusCode).toBe(200);
      await other.close();
    }
  });

  it('unknown routes get a JSON 404, not fastify default text', async () => {
    const res = await h.app.inject('/api/v1/nothing-here');
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: 'not_found', message: 'no route GET /api/v1/nothing-here', details: null });
  });
});

describe('PUT /api/v1/vehicles/:vin', () => {
  it('creates (201), then updates (200), and tells the rules', async () => {
    const created = await h.app.inject({ method: 'PUT', url: `/api/v1/vehicles/${VIN_A}`, payload: profile('D001') });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({
      vin: VIN_A,
      model: 'Aurora EV',
      dealerId: 'D001',
      vehicleType: 'passenger',
      online: { online: false },
    });
    const updated = await h.app.inject({ method: 'PUT', url: `/api/v1/vehicles/${VIN_A}`, payload: profile('D002', { locale: 'zh-CN' }) });
    expect(updated.statusCode).toBe(200);
    expect(await h.stores.vehicles.get(VIN_A)).toMatchObject({ dealerId: 'D002', locale: 'zh-CN' });
    expect(h.profileChanges).toEqual([VIN_A, VIN_A]);
  });

  it('rejects a bad VIN and a bad body with 400 and the zod issues', async () => {
    const badVin = await h.app.inject({ method: 'PUT', url: '/api/v1/vehicles/LSVAU2180N218329O', payload: profile() });
    expect(badVin.statusCode).toBe(400);
    expect(badVin.json()).toMatchObject({ error: 'validation', details: { in: 'params', issues: [{ path: '/vin' }] } });

    const badBody = await h.app.inject({
      method: 'PUT',
      url: `/api/v1/vehicles/${VIN_A}`,
      payload: { ...profile(), powertrain: 'EV', deliveryDate: 'soon' },
    });
    expect(badBody.statusCode).toBe(400);
    const body = badBody.json();
    expect(body.error).toBe('validation');
    expect(body.details.in).toBe('body');
    expect([...new Set(body.details.issues.map((i: { path: string }) => i.path))].sort()).toEqual(['/deliveryDate', '/powertrain']);
    expect(await h.stores.vehicles.get(VIN_A)).toBeUndefined();
  });

  it('rejects malformed JSON and a missing body with a JSON 4xx', async () => {
    const broken = await h.app.inject({
      method: 'PUT',
      url: `/api/v1/vehicles/${VIN_A}`,
      headers: { 'content-type': 'application/json' },
      payload: '{"model":',
    });
    expect(broken.statusCode).toBe(400);
    expect(broken.json()).toHaveProperty('error');
    expect(broken.json()).toHaveProperty('message');
    const none = await h.app.inject({ method: 'PUT', url: `/api/v1/vehicles/${VIN_A}` });
    expect(none.statusCode).toBe(400);
    expect(none.json().error).toBe('validation');
    const tooBig = await h.app.inject({
      method: 'PUT',
      url: `/api/v1/vehicles/${VIN_A}`,
      payload: { ...profile(), model: 'x'.repeat(2_000_000) },
    });
    expect(tooBig.statusCode).toBe(413);
    expect(tooBig.json().error).toBe('FST_ERR_CTP_BODY_TOO_LARGE');
  });
});

describe('GET /api/v1/vehicles', () => {
  it('filters by dealer and pages with the cursor', async () => {
    await h.register(VIN_A, 'D001');
    await h.register(VIN_B, 'D001');
    await h.register(VIN_C, 'D002');
    const d1 = (await h.app.inject('/api/v1/vehicles?dealerId=D001')).json();
    expect(d1.items.map((v: { vin: string }) => v.vin).sort()).toEqual([VIN_A, VIN_B]);

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: { items: Array<{ vin: string }>; nextCursor: string | null } = (
        await h.app.inject(`/api/v1/vehicles?limit=2${cursor ? `&cursor=${cursor}` : ''}`)
      ).json();
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((v) => v.vin));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(2);
    expect(seen.sort()).toEqual([VIN_A, VIN_B, VIN_C].sort());
  });

  it('rejects a limit over 500 and a forged cursor with 400', async () => {
    expect((await h.app.inject('/api/v1/vehicles?limit=501')).statusCode).toBe(400);
    expect((await h.app.inject('/api/v1/vehicles?limit=abc')).statusCode).toBe(400);
    const forged = await h.app.inject('/api/v1/vehicles?cursor=not-a-cursor');
    expect(forged.statusCode).toBe(400);
    expect(forged.json().error).toBe('invalid_cursor');
  });
});

describe('GET /api/v1/vehicles/:vin', () => {
  it('shows profile, latest signals, segments, online status and open prompts', async () => {
    await h.register(VIN_A);
    await h.telemetry.write(
      [
        { vin: VIN_A, ts: T0 - 2 * HOUR, signals: { [VSS.odometer]: 4200, [VSS.soc]: 60 } },
        { vin: VIN_A, ts: T0 - HOUR, signals: { [VSS.odometer]: 4210.5, [VSS.voltage12v]: 12.4 } },
      ],
      () => ({}),
    );
    await h.stores.vehicles.setSegments(VIN_A, { stage: 'new_owner', activity: 'active', maturity: 'novice' }, T0);
    await h.stores.vehicles.setOnline(VIN_A, true, { agentVersion: '1.2.3', configVersion: 4, at: T0 });
    const a = await h.openPrompt(VIN_A, { key: 'a' });
    await h.openPrompt(VIN_A, { key: 'b' });
    await h.stores.prompts.resolve(a.promptId, 'li', 'booked', undefined, h.clock.now());

    const res = await h.app.inject(`/api/v1/vehicles/${VIN_A}`);
    expect(res.statusCode).toBe(200);
    const v = res.json();
    expect(v).toMatchObject({ vin: VIN_A, model: 'Aurora EV', dealerId: 'D001', openPrompts: 1, latestError: null });
    expect(v.latest.ts).toBe(T0 - HOUR);
    expect(v.latest.signals).toMatchObject({ [VSS.odometer]: 4210.5, [VSS.soc]: 60, [VSS.voltage12v]: 12.4 });
    expect(v.segments).toEqual({ stage: 'new_owner', activity: 'active', maturity: 'novice' });
    expect(v.online).toMatchObject({ online: true, agentVersion: '1.2.3', configVersion: 4 });
  });

  it('404 for an unknown vehicle; profile still served when telemetry is down', async () => {
    const missing = await h.app.inject(`/api/v1/vehicles/${VIN_B}`);
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ error: 'not_found', details: { vehicle: VIN_B } });

    await h.register(VIN_A);
    h.telemetry.setAvailable(false);
    const res = await h.app.inject(`/api/v1/vehicles/${VIN_A}`);
    expect(res.statusCode).toBe(200);
    expect(res.json().latest).toBeNull();
    expect(res.json().latestError).toMatch(/unavailable/);
  });
});

describe('GET /api/v1/vehicles/:vin/telemetry', () => {
  beforeEach(async () => {
    await h.register(VIN_A);
    const readings = [0, 10, 20, 70, 80].map((min, i) => ({ vin: VIN_A, ts: T0 + min * 60_000, signals: { [VSS.soc]: 50 + i * 10 } }));
    await h.telemetry.write(readings, () => ({}));
  });

  it('returns raw points, and buckets them with every', async () => {
    const url = `/api/v1/vehicles/${VIN_A}/telemetry?signal=${VSS.soc}&from=${T0}&to=${T0 + 2 * HOUR}`;
    const raw = (await h.app.inject(url)).json();
    expect(raw).toMatchObject({ vin: VIN_A, signal: VSS.soc, from: T0, to: T0 + 2 * HOUR, everyMs: null });
    expect(raw.points.map((p: { value: number }) => p.value)).toEqual([50, 60, 70, 80, 90]);

    const hourly = (await h.app.inject(`${url}&every=1h`)).json();
    expect(hourly.everyMs).toBe(HOUR);
    expect(hourly.points).toEqual([
      { ts: T0, value: 60 },
      { ts: T0 + HOUR, value: 85 },
    ]);
  });

  it('accepts ISO times and defaults to the last 7 days of the fleet clock', async () => {
    const iso = (
      await h.app.inject(`/api/v1/vehicles/${VIN_A}/telemetry?signal=${VSS.soc}&from=2026-03-01T08:15:00Z&to=2026-03-01T09:00:00Z`)
    ).json();
    expect(iso.points.map((p: { value: number }) => p.value)).toEqual([70]);
    h.clock.set(T0 + 3 * HOUR);
    const def = (await h.app.inject(`/api/v1/vehicles/${VIN_A}/telemetry?signal=${VSS.soc}`)).json();
    expect(def.to).toBe(T0 + 3 * HOUR);
    expect(def.from).toBe(T0 + 3 * HOUR - 7 * 24 * HOUR);
    expect(def.points).toHaveLength(5);
  });

  it('400 for unknown signal, bad every, bad or inverted range, too many buckets; 404; 503 when down', async () => {
    const base = `/api/v1/vehicles/${VIN_A}/telemetry`;
    for (const q of [
      `signal=Vehicle.Nope`,
      `signal=${VSS.soc}&every=5 minutes`,
      `signal=${VSS.soc}&every=0m`,
      `signal=${VSS.soc}&from=yesterday`,
      `signal=${VSS.soc}&from=${T0}&to=${T0}`,
      `signal=${VSS.soc}&from=0&to=${T0}&every=1s`,
      '',
    ]) {
      const res = await h.app.inject(`${base}?${q}`);
      expect(res.statusCode, q).toBe(400);
      expect(res.json().message, q).toBeTruthy();
    }
    expect((await h.app.inject(`/api/v1/vehicles/${VIN_B}/telemetry?signal=${VSS.soc}`)).statusCode).toBe(404);
    h.telemetry.setAvailable(false);
    const down = await h.app.inject(`${base}?signal=${VSS.soc}`);
    expect(down.statusCode).toBe(503);
    expect(down.json().error).toBe('telemetry_unavailable');
  });

  it('InfluxDB not connected: 503 JSON naming InfluxDB and why; the vehicle view says it in latestError', async () => {
    const why = 'InfluxDB not reachable since 2026-03-01T08:00:00.000Z: connect ECONNREFUSED 127.0.0.1:8086';
    vi.spyOn(h.telemetry, 'history').mockRejectedValue(new TelemetryUnavailableError(why));
    vi.spyOn(h.telemetry, 'latest').mockRejectedValue(new TelemetryUnavailableError(why));
    const res = await h.app.inject(`/api/v1/vehicles/${VIN_A}/telemetry?signal=${VSS.soc}`);
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toContain('application/json');
    expect(res.json()).toEqual({ error: 'telemetry_unavailable', message: why, details: null });
    const view = await h.app.inject(`/api/v1/vehicles/${VIN_A}`);
    expect(view.statusCode).toBe(200);
    expect(view.json()).toMatchObject({ latest: null, latestError: why });
  });
});

describe('POST /api/v1/vehicles/:vin/service-records', () => {
  it('stores the visit and hands it to the rules', async () => {
    await h.register(VIN_A);
    const rec = { date: '2026-02-20', odometer: 5012, items: ['oil filter', 'cabin filter'] };
    const res = await h.app.inject({ method: 'POST', url: `/api/v1/vehicles/${VIN_A}/service-records`, payload: rec });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ vin: VIN_A, ...rec });
    expect(await h.stores.vehicles.serviceRecords(VIN_A)).toMatchObject([rec]);
    expect(h.serviceCalls).toEqual([{ vin: VIN_A, rec }]);
    expect((await h.app.inject(`/api/v1/vehicles/${VIN_A}`)).json().serviceRecords).toMatchObject([rec]);
  });

  it('400 for a bad record, 404 for an unknown vehicle, and nothing is stored', async () => {
    await h.register(VIN_A);
    const bad = await h.app.inject({
      method: 'POST',
      url: `/api/v1/vehicles/${VIN_A}/service-records`,
      payload: { date: '20/02/2026', odometer: -5, items: 'oil' },
    });
    expect(bad.statusCode).toBe(400);
    expect([...new Set(bad.json().details.issues.map((i: { path: string }) => i.path))].sort()).toEqual(['/date', '/items', '/odometer']);
    const unknown = await h.app.inject({
      method: 'POST',
      url: `/api/v1/vehicles/${VIN_B}/service-records`,
      payload: { date: '2026-02-20', odometer: 1, items: [] },
    });
    expect(unknown.statusCode).toBe(404);
    expect(h.serviceCalls).toEqual([]);
    expect(await h.stores.vehicles.serviceRecords(VIN_A)).toEqual([]);
  });
});
