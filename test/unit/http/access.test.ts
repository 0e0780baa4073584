// Access control through buildApp: every route needs a principal (but /healthz), dealer scope on
// every read and change, position only with location:read, console sessions with CSRF, keys
// managed within a dealer, the audit trail, query limits and the rate limit.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { VSS } from '../../../proto/signals.js';
import { makeHarness, profile, T0, VIN_A, VIN_C, type Harness } from './harness.js';

let h: Harness;
beforeEach(async () => {
  // the route-by-route refusal test presents over a hundred bad credentials from one address
  h = await makeHarness({ limits: { authFailuresPerMinute: 10_000 } });
  await h.register(VIN_A, 'D001');
  await h.register(VIN_C, 'D002');
  await h.telemetry.write(
    [{ vin: VIN_A, ts: T0 - 60_000, signals: { [VSS.speed]: 0, [VSS.latitude]: 31.23, [VSS.longitude]: 121.47, [VSS.voltage12v]: 12.4 } }],
    () => ({}),
  );
});
afterEach(async () => {
  await h.close();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Every documented route with its path parameters filled in. */
async function documentedRoutes(): Promise<Array<{ method: string; url: string }>> {
  const doc = (await h.app.inject('/openapi.json')).json() as { paths: Record<string, Record<string, unknown>> };
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.keys(ops).map((m) => ({ method: m.toUpperCase(), url: path.replace('{vin}', VIN_A).replace('{id}', 'p_x') })),
  );
}

describe('authentication', () => {
  it('every documented route but /healthz answers 401 without a credential, with a revoked or expired key, and never 500', async () => {
    const routes = await documentedRoutes();
    expect(routes.length).toBeGreaterThan(15);
    const revoked = await h.keyFor('operator');
    const keyId = revoked.split('_')[1];
    await h.stores.keys.revoke(keyId, Date.now());
    const { createApiKey } = await import('../../../ingest/auth/keys.js');
    const expiring = await createApiKey(
      h.stores.keys,
      { name: 'x', role: 'operator', dealers: [], permissions: [], expiresAt: Date.now() + 50, createdBy: null },
      Date.now(),
    );
    await new Promise((r) => setTimeout(r, 60)); // let the key expire (a real expiry, not a fake clock)
    for (const { method, url } of routes) {
      for (const headers of [
        {},
        bearer(revoked),
        bearer(expiring.token),
        bearer('odp_garbage'),
        { authorization: 'Basic abc' },
        { cookie: 'odopulse_session=nope' },
      ]) {
        const res = await h.app.inject({ method: method as 'GET', url, headers, noAuth: true } as never);
        if (url === '/healthz') {
          expect(res.statusCode, `${method} ${url}`).toBe(200);
          continue;
        }
        expect(res.statusCode, `${method} ${url} ${JSON.stringify(headers)}`).toBe(401);
        expect(res.json().error).toBe('unauthorized');
        expect(res.headers['www-authenticate']).toContain('Bearer');
      }
    }
  });

  it('an address presenting refused credentials again and again gets 429s; no credential at all is not counted', async () => {
    await h.close();
    h = await makeHarness({ limits: { authFailuresPerMinute: 3 } });
    for (let i = 0; i < 5; i++) expect((await h.app.inject({ url: '/api/v1/vehicles', noAuth: true } as never)).statusCode).toBe(401);
    for (let i = 0; i < 3; i++)
      expect((await h.app.inject({ url: '/api/v1/vehicles', headers: bearer(`odp_${'a'.repeat(12)}_${'b'.repeat(43)}`) })).statusCode).toBe(
        401,
      );
    const blocked = await h.app.inject({ url: '/api/v1/vehicles', headers: bearer(`odp_${'a'.repeat(12)}_${'c'.repeat(43)}`) });
    expect(blocked.statusCode).toBe(429);
    expect(blocked.headers['retry-after']).toBe('60');
    // even a good key from that address waits out the minute: the guesser cannot tell a hit
    expect((await h.app.inject({ url: '/api/v1/vehicles' })).statusCode).toBe(429);
  });

  it('roles: a metrics key reads only /metrics; a lifecycle key cannot change anything', async () => {
    const m = bearer(await h.keyFor('metrics'));
    expect((await h.app.inject({ url: '/metrics', headers: m })).statusCode).toBe(200);
    expect((await h.app.inject({ url: '/api/v1/vehicles', headers: m })).statusCode).toBe(403);
    expect((await h.app.inject({ url: '/openapi.json', headers: m })).statusCode).toBe(403);
    const l = bearer(await h.keyFor('lifecycle'));
    expect((await h.app.inject({ url: '/api/v1/vehicles', headers: l })).json().items).toHaveLength(2);
    expect((await h.app.inject({ method: 'PUT', url: `/api/v1/vehicles/${VIN_A}`, headers: l, payload: profile('D009') })).statusCode).toBe(
      403,
    );
    const c = await h.openPrompt(VIN_A);
    expect((await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${c.promptId}/ack`, headers: l, payload: {} })).statusCode).toBe(
      403,
    );
    expect((await h.app.inject({ url: '/api/v1/audit', headers: l })).statusCode).toBe(403);
    expect((await h.stores.vehicles.get(VIN_A))?.dealerId).toBe('D001');
  });
});

describe('dealer scope', () => {
  it("an advisor sees only its dealers' vehicles, prompts, telemetry and stats; another dealer's VIN or prompt is 404", async () => {
    const a = bearer(await h.keyFor('advisor', ['D001']));
    const mine = await h.openPrompt(VIN_A, { key: 'mine' });
    const theirs = await h.openPrompt(VIN_C, { key: 'theirs' });
    const list = (await h.app.inject({ url: '/api/v1/vehicles', headers: a })).json();
    expect(list.items.map((v: { vin: string }) => v.vin)).toEqual([VIN_A]);
    expect((await h.app.inject({ url: '/api/v1/vehicles?dealerId=D002', headers: a })).json().items).toEqual([]);
    const prompts = (await h.app.inject({ url: '/api/v1/prompts', headers: a })).json();
    expect(prompts.items.map((p: { id: string }) => p.id)).toEqual([mine.promptId]);
    expect((await h.app.inject({ url: '/api/v1/prompts?dealerId=D002', headers: a })).json().items).toEqual([]);
    for (const url of [
      `/api/v1/vehicles/${VIN_C}`,
      `/api/v1/vehicles/${VIN_C}/telemetry?signal=${VSS.speed}`,
      `/api/v1/prompts/${theirs.promptId}`,
    ]) {
      const res = await h.app.inject({ url, headers: a });
      expect(res.statusCode, url).toBe(404);
    }
    for (const path of ['ack', 'resolve']) {
      const res = await h.app.inject({
        method: 'POST',
        url: `/api/v1/prompts/${theirs.promptId}/${path}`,
        headers: a,
        payload: { outcome: 'booked' },
      });
      expect(res.statusCode, path).toBe(404);
    }
    const visit = await h.app.inject({
      method: 'POST',
      url: `/api/v1/vehicles/${VIN_C}/service-records`,
      headers: a,
      payload: { date: '2026-02-01', odometer: 10_000, items: ['oil'] },
    });
    expect(visit.statusCode).toBe(404);
    expect((await h.stores.prompts.get(theirs.promptId))?.status).toBe('open');
    expect(await h.stores.vehicles.serviceRecords(VIN_C)).toEqual([]);
    const stats = (await h.app.inject({ url: `/api/v1/stats/prompts?from=${T0 - 1}&to=${h.clock.now() + 1}`, headers: a })).json();
    await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${mine.promptId}/ack`, headers: a, payload: {} });
    await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${theirs.promptId}/ack`, payload: {} }); // the operator, on D002
    const after = (await h.app.inject({ url: `/api/v1/stats/prompts?from=${T0 - 1}&to=${h.clock.now() + 1}`, headers: a })).json();
    expect(stats.kinds).toEqual([expect.objectContaining({ kind: 'fault.dtc', acknowledged: 0 })]);
    expect(after.kinds).toEqual([expect.objectContaining({ kind: 'fault.dtc', acknowledged: 1, delivered: 1 })]);
  });

  it('an advisor of two dealers sees both, and only those', async () => {
    await h.register('WVWZZZ1KZ6W000009', 'D003');
    const a = bearer(await h.keyFor('advisor', ['D001', 'D002']));
    const vins = (await h.app.inject({ url: '/api/v1/vehicles', headers: a })).json().items.map((v: { vin: string }) => v.vin);
    expect(vins.sort()).toEqual([VIN_A, VIN_C].sort());
  });
});

describe('position', () => {
  it('position signals need location:read; the lifecycle role never gets them', async () => {
    const cases: Array<[string, boolean]> = [
      [await h.keyFor('advisor', ['D001']), false],
      [await h.keyFor('advisor', ['D001'], ['location:read']), true],
      [await h.keyFor('lifecycle'), false],
      [await h.keyFor('operator'), false],
      [h.token, true], // operator with location:read
    ];
    for (const [token, sees] of cases) {
      const v = (await h.app.inject({ url: `/api/v1/vehicles/${VIN_A}`, headers: bearer(token) })).json();
      expect(v.latest.signals[VSS.voltage12v]).toBe(12.4);
      expect(VSS.latitude in v.latest.signals, token).toBe(sees);
      expect(VSS.longitude in v.latest.signals).toBe(sees);
      const t = await h.app.inject({
        url: `/api/v1/vehicles/${VIN_A}/telemetry?signal=${VSS.latitude}&from=${T0 - 3_600_000}&to=${T0}`,
        headers: bearer(token),
      });
      expect(t.statusCode).toBe(sees ? 200 : 403);
      if (sees) expect(t.json().points).toEqual([{ ts: T0 - 60_000, value: 31.23 }]);
    }
  });

  it('a sampling policy that enables location is operator-only', async () => {
    const policy = {
      version: 2,
      signals: [],
      triggers: [],
      batchMaxSamples: 50,
      batchMaxDelayMs: 5000,
      locationEnabled: true,
      locationPrecisionDeg: 0.01,
    };
    const admin = bearer(await h.keyFor('dealer_admin', ['D001']));
    const res = await h.app.inject({ method: 'PUT', url: `/api/v1/vehicles/${VIN_A}/sampling-policy`, headers: admin, payload: policy });
    expect(res.statusCode).toBe(403);
    const noLocation = await h.app.inject({
      method: 'PUT',
      url: `/api/v1/vehicles/${VIN_A}/sampling-policy`,
      headers: admin,
      payload: { ...policy, locationEnabled: false },
    });
    expect(noLocation.statusCode).toBe(503); // allowed; this harness has no broker to publish to
    const adv = bearer(await h.keyFor('advisor', ['D001']));
    expect(
      (
        await h.app.inject({
          method: 'PUT',
          url: `/api/v1/vehicles/${VIN_A}/sampling-policy`,
          headers: adv,
          payload: { ...policy, locationEnabled: false },
        })
      ).statusCode,
    ).toBe(403);
  });
});

describe('console sessions', () => {
  it('a bearer credential opens an httpOnly SameSite=Strict session; changes need the CSRF header; sign-out ends it', async () => {
    const key = await h.keyFor('advisor', ['D001']);
    const open = await h.app.inject({ method: 'POST', url: '/api/v1/session', headers: bearer(key) });
    expect(open.statusCode).toBe(201);
    const setCookie = String(open.headers['set-cookie']);
    expect(setCookie).toMatch(/^odopulse_session=[A-Za-z0-9_-]{40,};/);
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    const body = open.json();
    expect(body.principal).toMatchObject({ role: 'advisor', dealers: ['D001'] });
    const cookie = setCookie.split(';')[0];
    const who = await h.app.inject({ url: '/api/v1/session', headers: { cookie } });
    expect(who.json()).toMatchObject({ principal: { role: 'advisor' }, csrfToken: body.csrfToken });
    expect((await h.app.inject({ url: '/api/v1/vehicles', headers: { cookie } })).json().items).toHaveLength(1);
    const c = await h.openPrompt(VIN_A);
    const noCsrf = await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${c.promptId}/ack`, headers: { cookie }, payload: {} });
    expect(noCsrf.statusCode).toBe(403);
    expect(noCsrf.json().error).toBe('csrf');
    const ok = await h.app.inject({
      method: 'POST',
      url: `/api/v1/prompts/${c.promptId}/ack`,
      headers: { cookie, 'x-csrf-token': body.csrfToken },
      payload: {},
    });
    expect(ok.statusCode).toBe(200);
    // a session cannot open another session
    expect(
      (await h.app.inject({ method: 'POST', url: '/api/v1/session', headers: { cookie, 'x-csrf-token': body.csrfToken } })).statusCode,
    ).toBe(400);
    const out = await h.app.inject({ method: 'DELETE', url: '/api/v1/session', headers: { cookie, 'x-csrf-token': body.csrfToken } });
    expect(out.statusCode).toBe(204);
    expect((await h.app.inject({ url: '/api/v1/session', headers: { cookie } })).statusCode).toBe(401);
  });

  it('revoking the key ends its sessions', async () => {
    const key = await h.keyFor('advisor', ['D001']);
    const cookie = String(
      (await h.app.inject({ method: 'POST', url: '/api/v1/session', headers: bearer(key) })).headers['set-cookie'],
    ).split(';')[0];
    await h.stores.keys.revoke(key.split('_')[1], Date.now());
    expect((await h.app.inject({ url: '/api/v1/vehicles', headers: { cookie } })).statusCode).toBe(401);
  });
});

describe('keys and audit', () => {
  it("a dealer admin manages its own dealer's advisor keys only; operators any; the token is shown once", async () => {
    const admin = bearer(await h.keyFor('dealer_admin', ['D001']));
    const made = await h.app.inject({
      method: 'POST',
      url: '/api/v1/keys',
      headers: admin,
      payload: { name: 'Li Wei', role: 'advisor', dealers: ['D001'] },
    });
    expect(made.statusCode).toBe(201);
    const { key, token } = made.json();
    expect(token).toMatch(/^odp_/);
    expect((await h.app.inject({ url: '/api/v1/vehicles', headers: bearer(token) })).json().items).toHaveLength(1);
    for (const payload of [
      { name: 'x', role: 'advisor', dealers: ['D002'] },
      { name: 'x', role: 'operator' },
      { name: 'x', role: 'advisor', dealers: ['D001'], permissions: ['location:read'] },
    ]) {
      expect(
        (await h.app.inject({ method: 'POST', url: '/api/v1/keys', headers: admin, payload })).statusCode,
        JSON.stringify(payload),
      ).toBe(403);
    }
    const listed = (await h.app.inject({ url: '/api/v1/keys', headers: admin })).json().items;
    expect(listed.map((k: { id: string }) => k.id)).toContain(key.id);
    // the secret is everything after odp_<id>_ (base64url: it may hold '_' itself)
    expect(JSON.stringify(listed)).not.toContain(token.split('_').slice(2).join('_'));
    expect(listed.every((k: { dealers: string[] }) => k.dealers.every((d) => d === 'D001'))).toBe(true);
    const other = (await h.keyFor('advisor', ['D002'])).split('_')[1];
    expect((await h.app.inject({ method: 'DELETE', url: `/api/v1/keys/${other}`, headers: admin })).statusCode).toBe(404);
    expect((await h.app.inject({ method: 'DELETE', url: `/api/v1/keys/${key.id}`, headers: admin })).statusCode).toBe(204);
    expect((await h.app.inject({ url: '/api/v1/vehicles', headers: bearer(token) })).statusCode).toBe(401);
    const bad = await h.app.inject({ method: 'POST', url: '/api/v1/keys', payload: { name: 'x', role: 'advisor' } });
    expect(bad.statusCode).toBe(400);
  });

  it('reads of telemetry and position and every change are audited, with principal, action, VIN and request id', async () => {
    const advKey = await h.keyFor('advisor', ['D001']);
    const advId = `key:${advKey.split('_')[1]}`;
    await h.app.inject({ url: `/api/v1/vehicles/${VIN_A}`, headers: bearer(advKey) });
    await h.app.inject({ url: `/api/v1/vehicles/${VIN_A}/telemetry?signal=${VSS.speed}`, headers: bearer(advKey) });
    const c = await h.openPrompt(VIN_A);
    await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${c.promptId}/ack`, headers: bearer(advKey), payload: {} });
    await h.app.inject({
      method: 'POST',
      url: `/api/v1/prompts/${c.promptId}/resolve`,
      headers: bearer(advKey),
      payload: { outcome: 'booked' },
    });
    await h.app.inject({
      method: 'POST',
      url: `/api/v1/vehicles/${VIN_A}/service-records`,
      headers: bearer(advKey),
      payload: { date: '2026-02-01', odometer: 1, items: [] },
    });
    await h.app.inject({ method: 'PUT', url: `/api/v1/vehicles/${VIN_A}`, payload: profile('D002') });
    const res = await h.app.inject(`/api/v1/audit?vin=${VIN_A}`);
    expect(res.statusCode).toBe(200);
    const items = res.json().items as Array<{ principal: string; action: string; vin: string; requestId: string }>;
    expect(items.map((e) => e.action).reverse()).toEqual([
      'vehicle.read',
      'telemetry.read',
      'prompt.acknowledged',
      'prompt.resolved',
      'service_record.created',
      'vehicle.profile.changed',
    ]);
    expect(items.slice(1).every((e) => e.principal === advId && e.vin === VIN_A && e.requestId.length > 0)).toBe(true);
    expect((await h.app.inject(`/api/v1/audit?principal=${advId}`)).json().items).toHaveLength(5);
    expect((await h.app.inject({ url: '/api/v1/audit', headers: bearer(advKey) })).statusCode).toBe(403);
  });
});

describe('limits', () => {
  it('telemetry history: past the point limit `every` is required; too many windows is a 400; an unknown time zone is refused', async () => {
    await h.close();
    h = await makeHarness({ limits: { maxHistoryPoints: 10 } });
    await h.register(VIN_A, 'D001');
    await h.telemetry.write(
      Array.from({ length: 20 }, (_, i) => ({ vin: VIN_A, ts: T0 - 100_000 + i * 1000, signals: { [VSS.speed]: i } })),
      () => ({}),
    );
    const url = `/api/v1/vehicles/${VIN_A}/telemetry?signal=${VSS.speed}&from=${T0 - 200_000}&to=${T0}`;
    const raw = await h.app.inject(url);
    expect(raw.statusCode).toBe(400);
    expect(raw.json().message).toMatch(/every/);
    expect((await h.app.inject(`${url}&every=1m`)).statusCode).toBe(200);
    expect((await h.app.inject(`${url}&every=1s`)).statusCode).toBe(400);
    const tz = await h.app.inject({
      method: 'PUT',
      url: `/api/v1/vehicles/${VIN_A}`,
      payload: profile('D001', { timeZone: 'Mars/Olympus_Mons' }),
    });
    expect(tz.statusCode).toBe(400);
    expect(JSON.stringify(tz.json().details)).toContain('timeZone');
    const hours = await h.app.inject({
      method: 'PUT',
      url: `/api/v1/vehicles/${VIN_A}`,
      payload: profile('D001', { quietHours: { start: '25:00', end: '07:00' } }),
    });
    expect(hours.statusCode).toBe(400);
    expect((await h.stores.vehicles.get(VIN_A))?.timeZone).toBeUndefined();
  });

  it('stats windows are bounded, and requests per principal are rate limited with a JSON 429', async () => {
    await h.close();
    h = await makeHarness({ limits: { ratePerMinute: 5 } });
    const over = await h.app.inject(`/api/v1/stats/prompts?from=0&to=${T0}`);
    expect(over.statusCode).toBe(400);
    for (let i = 0; i < 4; i++) expect((await h.app.inject('/api/v1/vehicles')).statusCode).toBe(200);
    const limited = await h.app.inject('/api/v1/vehicles');
    expect(limited.statusCode).toBe(429);
    expect(limited.json().error).toBe('rate_limited');
    // another principal has its own budget
    expect((await h.app.inject({ url: '/api/v1/vehicles', headers: bearer(await h.keyFor('operator')) })).statusCode).toBe(200);
  });

  it('security headers: a CSP the console passes, no CORS unless configured', async () => {
    const res = await h.app.inject('/');
    expect(res.headers['content-security-policy']).toMatch(/default-src 'self'/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const cors = await h.app.inject({ url: '/api/v1/vehicles', headers: { origin: 'https://evil.example' } });
    expect(cors.headers['access-control-allow-origin']).toBeUndefined();
  });
});
