// Prompt routes (list, filters, cursor, detail, ack/resolve with 404/409, stats), the OpenAPI
// document and the console's static files, through app.inject.
import { parseKey } from '../../../ingest/auth/keys.js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeHarness, VIN_A, VIN_B, VIN_C, type Harness } from './harness.js';

let h: Harness;
beforeEach(async () => {
  h = await makeHarness();
  await h.register(VIN_A, 'D001');
  await h.register(VIN_B, 'D001');
  await h.register(VIN_C, 'D002');
});
afterEach(async () => {
  await h.close();
});

const ids = (page: { items: Array<{ id: string }> }): string[] => page.items.map((p) => p.id);

describe('GET /api/v1/prompts', () => {
  it('serves the contract prompt JSON, newest first', async () => {
    const first = await h.openPrompt(VIN_A, { key: 'k1' });
    const second = await h.openPrompt(VIN_B, { key: 'k2', kind: 'charging.low_soc', severity: 'warning', audience: ['hmi'] });
    const res = await h.app.inject('/api/v1/prompts');
    expect(res.statusCode).toBe(200);
    const page = res.json();
    expect(ids(page)).toEqual([second.promptId, first.promptId]);
    expect(page.nextCursor).toBeNull();
    const p = page.items[1];
    for (const key of [
      'id',
      'vin',
      'kind',
      'audience',
      'severity',
      'status',
      'title',
      'body',
      'locale',
      'dedupKey',
      'evidence',
      'createdAt',
      'updatedAt',
      'outcome',
    ]) {
      expect(p, key).toHaveProperty(key);
    }
    expect(p).toMatchObject({
      vin: VIN_A,
      kind: 'fault.dtc',
      audience: ['hmi', 'advisor'],
      severity: 'critical',
      status: 'open',
      locale: 'en',
      dedupKey: 'k1',
      outcome: null,
    });
    expect(p.evidence).toEqual({ dtc: 'P0A80', 'Vehicle.TraveledDistance': 4210.5 });
  });

  it('filters by vin, kind, audience, status and dealer', async () => {
    const a = await h.openPrompt(VIN_A, { key: 'a' });
    const b = await h.openPrompt(VIN_B, { key: 'b', kind: 'charging.low_soc', audience: ['hmi'] });
    const c = await h.openPrompt(VIN_C, { key: 'c', kind: 'maintenance.upcoming', audience: ['hmi', 'advisor', 'lifecycle'] });
    await h.stores.prompts.acknowledge(a.promptId, 'li', undefined, h.clock.now());
    const q = async (s: string) => ids((await h.app.inject(`/api/v1/prompts?${s}`)).json()).sort();
    expect(await q(`vin=${VIN_A}`)).toEqual([a.promptId]);
    expect(await q('kind=charging.low_soc')).toEqual([b.promptId]);
    expect(await q('audience=advisor')).toEqual([a.promptId, c.promptId].sort());
    expect(await q('status=acknowledged')).toEqual([a.promptId]);
    expect(await q('status=open')).toEqual([b.promptId, c.promptId].sort());
    expect(await q('dealerId=D002')).toEqual([c.promptId]);
    expect(await q('dealerId=D001&audience=advisor')).toEqual([a.promptId]);
    expect(await q('dealerId=D999')).toEqual([]);
  });

  it('pages with limit and nextCursor without gaps or repeats', async () => {
    const opened: string[] = [];
    for (let i = 0; i < 7; i++) opened.unshift((await h.openPrompt(VIN_A, { key: `p${i}` })).promptId);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await h.app.inject(`/api/v1/prompts?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      expect(res.statusCode).toBe(200);
      const page: { items: Array<{ id: string }>; nextCursor: string | null } = res.json();
      seen.push(...ids(page));
      cursor = page.nextCursor;
      pages++;
    } while (cursor && pages < 10);
    expect(pages).toBe(3);
    expect(seen).toEqual(opened);
  });

  it('rejects bad filters with 400 and the issues', async () => {
    for (const q of ['limit=0', 'limit=501', 'kind=fault.bogus', 'audience=owner', 'status=closed', 'vin=123', 'cursor=%25%25%25']) {
      const res = await h.app.inject(`/api/v1/prompts?${q}`);
      expect(res.statusCode, q).toBe(400);
      expect(res.json().error, q).toMatch(/validation|invalid_cursor/);
    }
    const res = await h.app.inject('/api/v1/prompts?limit=501');
    expect(res.json().details.issues[0].path).toBe('/limit');
  });

  it('defaults to 50 items', async () => {
    for (let i = 0; i < 52; i++) await h.openPrompt(VIN_A, { key: `n${i}` });
    const page = (await h.app.inject('/api/v1/prompts')).json();
    expect(page.items).toHaveLength(50);
    expect(page.nextCursor).toEqual(expect.any(String));
  });
});

describe('GET /api/v1/prompts/:id', () => {
  it('returns the prompt or 404', async () => {
    const c = await h.openPrompt(VIN_A);
    const res = await h.app.inject(`/api/v1/prompts/${c.promptId}`);
    expect(res.statusCode).toBe(200);
    expect(res.json().id).toBe(c.promptId);
    const missing = await h.app.inject('/api/v1/prompts/p_doesnotexist');
    expect(missing.statusCode).toBe(404);
    expect(missing.json()).toMatchObject({ error: 'not_found', details: { prompt: 'p_doesnotexist' } });
  });
});

describe('ack and resolve', () => {
  /** `by` is the authenticated principal; a display name from the body stands beside it, never instead. */
  const who = (display?: string) => {
    const id = `key:${parseKey(h.token)!.id}`;
    return display ? `${display} (operator, ${id})` : `operator (${id})`;
  };

  it('acknowledge records who, when and the note, publishes the change, and a second ack is 409', async () => {
    const c = await h.openPrompt(VIN_A);
    const before = h.published.length;
    const res = await h.app.inject({
      method: 'POST',
      url: `/api/v1/prompts/${c.promptId}/ack`,
      payload: { by: 'Li Wei', note: 'calling the owner' },
    });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.prompt).toMatchObject({
      status: 'acknowledged',
      acknowledgedBy: who('Li Wei'),
      note: 'calling the owner',
      updatedAt: new Date(h.clock.now()).toISOString(),
    });
    expect(body.change).toMatchObject({ step: 'acknowledged', by: who('Li Wei') });
    expect((await h.stores.prompts.get(c.promptId))?.status).toBe('acknowledged');
    expect(h.published.slice(before).map((x) => x.step)).toEqual(['acknowledged']);
    expect((await h.stores.prompts.changesSince(c.seq, undefined, 10)).map((x) => [x.step, x.by])).toEqual([
      ['acknowledged', who('Li Wei')],
    ]);

    const again = await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${c.promptId}/ack`, payload: { by: 'Li Wei' } });
    expect(again.statusCode).toBe(409);
    expect(again.json()).toMatchObject({ error: 'conflict', details: { status: 'acknowledged' } });
  });

  it('resolve closes with an outcome; ack or resolve of a resolved prompt is 409', async () => {
    const c = await h.openPrompt(VIN_A);
    const res = await h.app.inject({
      method: 'POST',
      url: `/api/v1/prompts/${c.promptId}/resolve`,
      payload: { by: 'Zhang', outcome: 'booked', note: 'Tue 9:00' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().prompt).toMatchObject({ status: 'resolved', outcome: 'booked', resolvedBy: who('Zhang'), note: 'Tue 9:00' });
    expect(h.published.at(-1)?.step).toBe('resolved');
    for (const [path, payload] of [
      ['ack', { by: 'x' }],
      ['resolve', { by: 'x', outcome: 'other' }],
    ] as const) {
      const late = await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${c.promptId}/${path}`, payload });
      expect(late.statusCode, path).toBe(409);
      expect(late.json().details.status).toBe('resolved');
    }
    expect(await h.stores.prompts.get(c.promptId)).toMatchObject({ outcome: 'booked', resolvedBy: who('Zhang') });

    // without a display name the key's own name is recorded; a display name cannot hide who acted
    const d = await h.openPrompt(VIN_A, { key: 'second' });
    const plain = await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${d.promptId}/ack`, payload: {} });
    expect(plain.json().prompt.acknowledgedBy).toBe(who());
    const e = await h.openPrompt(VIN_A, { key: 'third' });
    const fake = await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${e.promptId}/ack`, payload: { by: 'operator' } });
    expect(fake.json().prompt.acknowledgedBy).toBe(who());
  });

  it('validates the body (400) before looking the prompt up, and 404s unknown prompts', async () => {
    const c = await h.openPrompt(VIN_A);
    const cases: Array<[string, unknown]> = [
      ['ack', { by: '   ' }],
      ['ack', { by: 'x'.repeat(65) }],
      ['resolve', { by: 'a', outcome: 'sold' }],
      ['resolve', { by: 'a' }],
    ];
    for (const [path, payload] of cases) {
      const res = await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${c.promptId}/${path}`, payload: payload as object });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(res.json().error).toBe('validation');
    }
    expect((await h.stores.prompts.get(c.promptId))?.status).toBe('open');
    const unknown = await h.app.inject({ method: 'POST', url: '/api/v1/prompts/p_nope/resolve', payload: { by: 'a', outcome: 'booked' } });
    expect(unknown.statusCode).toBe(404);
  });
});

describe('GET /api/v1/stats/prompts', () => {
  it('counts outcomes per kind in the window', async () => {
    const from = h.clock.now();
    const a = await h.openPrompt(VIN_A, { key: 'a' });
    const b = await h.openPrompt(VIN_B, { key: 'b' });
    await h.openPrompt(VIN_C, { key: 'c', kind: 'charging.low_soc' });
    await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${a.promptId}/resolve`, payload: { by: 'li', outcome: 'booked' } });
    await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${b.promptId}/ack`, payload: { by: 'li' } });
    const res = await h.app.inject(`/api/v1/stats/prompts?from=${from}&to=${h.clock.now() + 1}`);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.from).toBe(new Date(from).toISOString());
    const dtc = body.kinds.find((k: { kind: string }) => k.kind === 'fault.dtc');
    expect(dtc).toMatchObject({ booked: 1, acknowledged: 1, resolved: 1 });
    const empty = (await h.app.inject(`/api/v1/stats/prompts?from=${from - 10_000}&to=${from - 5_000}`)).json();
    expect(empty.kinds.every((k: { booked: number }) => k.booked === 0)).toBe(true);
  });

  it('400 for a bad or inverted window', async () => {
    expect((await h.app.inject('/api/v1/stats/prompts?from=last-week')).statusCode).toBe(400);
    expect((await h.app.inject('/api/v1/stats/prompts?from=2000&to=1000')).statusCode).toBe(400);
  });
});

describe('OpenAPI and console files', () => {
  it('documents every API route from the zod schemas', async () => {
    const res = await h.app.inject('/openapi.json');
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    const routes = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(routes.sort()).toEqual(
      [
        'GET /healthz',
        'GET /metrics',
        'PUT /api/v1/vehicles/{vin}',
        'GET /api/v1/vehicles',
        'GET /api/v1/vehicles/{vin}',
        'GET /api/v1/vehicles/{vin}/telemetry',
        'POST /api/v1/vehicles/{vin}/service-records',
        'PUT /api/v1/vehicles/{vin}/sampling-policy',
        'GET /api/v1/prompts',
        'GET /api/v1/prompts/{id}',
        'POST /api/v1/prompts/{id}/ack',
        'POST /api/v1/prompts/{id}/resolve',
        'GET /api/v1/stats/prompts',
        'GET /api/v1/stream',
        'POST /api/v1/session',
        'GET /api/v1/session',
        'DELETE /api/v1/session',
        'GET /api/v1/keys',
        'POST /api/v1/keys',
        'DELETE /api/v1/keys/{id}',
        'GET /api/v1/audit',
        'GET /api/v1/outbox',
        'POST /api/v1/outbox/{id}/retry',
        'POST /api/v1/campaigns',
        'GET /api/v1/campaigns',
        'GET /api/v1/campaigns/{id}',
        'GET /api/v1/campaigns/{id}/stats',
        'POST /api/v1/campaigns/{id}/pause',
        'POST /api/v1/campaigns/{id}/resume',
        'POST /api/v1/campaigns/{id}/cancel',
      ].sort(),
    );
    const put = doc.paths['/api/v1/vehicles/{vin}'].put;
    expect(put.requestBody.content['application/json'].schema.properties.powertrain.enum).toEqual(['BEV', 'PHEV', 'ICE']);
    const resolve = doc.paths['/api/v1/prompts/{id}/resolve'].post;
    expect(resolve.requestBody.content['application/json'].schema.properties.outcome.enum).toEqual([
      'booked',
      'declined',
      'unreachable',
      'other',
    ]);
    expect(Object.keys(resolve.responses).sort()).toEqual(['200', '400', '404', '409']);
  });

  it('serves the console page, its assets and uPlot; nothing else from disk', async () => {
    const page = await h.app.inject('/');
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toContain('text/html');
    expect(page.body).toContain('data-testid="alert-list"');
    // every script the page loads is served (the whitelist and the page agree)
    for (const [, src] of page.body.matchAll(/<script src="([^"]+)"/g)) expect((await h.app.inject(src)).statusCode, src).toBe(200);
    for (const url of [
      '/console/app.js',
      '/console/vehicle.js',
      '/console/signin.js',
      '/console/alerts.js',
      '/console/i18n.js',
      '/console/app.css',
      '/vendor/uplot/uPlot.iife.min.js',
      '/vendor/uplot/uPlot.min.css',
    ]) {
      const res = await h.app.inject(url);
      expect(res.statusCode, url).toBe(200);
      expect(res.body.length, url).toBeGreaterThan(100);
    }
    expect((await h.app.inject('/vendor/uplot/uPlot.iife.min.js')).body).toContain('uPlot');
    for (const url of ['/console/..%2Fpackage.json', '/console/index.ts', '/vendor/uplot/package.json']) {
      const res = await h.app.inject(url);
      expect(res.statusCode, url).toBe(404);
      expect(res.json().error).toBe('not_found');
    }
  });
});
