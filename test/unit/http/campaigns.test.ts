// The campaign API through the harness (docs/contract.md#campaigns): validation naming the field,
// the locale refusal, roles (lifecycle and operator manage, advisors are refused), live counts,
// stats, pause / resume / cancel and their conflicts, the audit trail.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { T0, VIN_A, VIN_B, VIN_C, makeHarness, profile, type Harness } from './harness.js';

const DAY = 86_400_000;
const body = (over: Record<string, unknown> = {}) => ({
  name: 'New-owner camp',
  audience: { stage: ['new_owner'] },
  message: { en: { title: 'Welcome', body: 'Join the camp' }, 'zh-CN': { title: '欢迎', body: '加入新车主营' } },
  actions: [{ id: 'join', label: { en: 'Join', 'zh-CN': '参加' } }],
  startsAt: new Date(T0 - DAY).toISOString(),
  endsAt: new Date(T0 + 30 * DAY).toISOString(),
  priority: 3,
  frequencyCap: { perVehicle: 1, perDays: 30 },
  quietHoursRespected: true,
  ...over,
});

describe('campaign API', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await makeHarness();
    await h.stores.vehicles.upsert(VIN_A, profile('D001', { locale: 'en' }), T0);
    await h.stores.vehicles.upsert(VIN_B, profile('D002', { locale: 'zh-CN' }), T0);
    await h.stores.vehicles.upsert(VIN_C, profile('D002', { locale: 'en' }), T0);
    await h.stores.vehicles.setSegments(VIN_A, { stage: 'new_owner', activity: 'active', maturity: 'novice' }, T0);
    await h.stores.vehicles.setSegments(VIN_B, { stage: 'new_owner', activity: 'active', maturity: 'novice' }, T0);
    await h.stores.vehicles.setSegments(VIN_C, { stage: 'active_owner', activity: 'dormant', maturity: 'skilled' }, T0);
  });
  afterEach(() => h.close());

  const post = (url: string, payload?: unknown, headers: Record<string, string> = {}) =>
    h.app.inject({ method: 'POST', url, payload: payload as object, headers });

  it('creates a running campaign that reaches its audience at once, with live counts and an audit entry', async () => {
    const res = await post('/api/v1/campaigns', body());
    expect(res.statusCode).toBe(201);
    const c = res.json();
    expect(c).toMatchObject({
      name: 'New-owner camp',
      state: 'active',
      status: 'active',
      priority: 3,
      counts: { targeted: 2, pending: 2, delivered: 0 },
    });
    expect(c.id).toMatch(/^c_[0-9a-f]{16}$/);
    const published = h.published.filter((x) => x.prompt.kind === 'campaign.message');
    expect(published.map((x) => [x.vin, x.prompt.locale, x.prompt.title]).sort()).toEqual([
      [VIN_A, 'en', 'Welcome'],
      [VIN_B, 'zh-CN', '欢迎'],
    ]);
    expect((await h.app.inject(`/api/v1/campaigns/${c.id}`)).json()).toMatchObject({ id: c.id, counts: { targeted: 2 } });
    const list = (await h.app.inject('/api/v1/campaigns?limit=1')).json();
    expect(list).toMatchObject({ items: [{ id: c.id }], nextCursor: null });
    expect((await h.stores.audit.query({ limit: 10 })).map((a) => a.action)).toContain('campaign.created');
  });

  it('validation errors name the field', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ name: '' }, '/name'],
      [{ audience: { activity: ['sleepy'] } }, '/audience/activity/0'],
      [{ audience: { colour: ['red'] } }, '/audience'],
      [{ endsAt: new Date(T0 - 2 * DAY).toISOString() }, '/endsAt'],
      [{ startsAt: '2026-03-01' }, '/startsAt'],
      [{ message: {} }, '/message'],
      [{ message: { en: { title: 'x'.repeat(201), body: 'b' } }, actions: [] }, '/message/en/title'],
      [{ actions: [{ id: 'join', label: { en: 'Join' } }] }, '/actions/0/label/zh-CN'],
      [{ actions: [{ id: 'dismiss', label: { en: 'x', 'zh-CN': 'x' } }] }, '/actions/0/id'],
      [{ priority: 11 }, '/priority'],
      [{ frequencyCap: { perVehicle: 0, perDays: 7 } }, '/frequencyCap/perVehicle'],
      // over before it could start: refused rather than stored as ended
      [{ startsAt: new Date(T0 - 3 * DAY).toISOString(), endsAt: new Date(T0).toISOString() }, '/endsAt'],
    ];
    for (const [over, path] of cases) {
      const res = await post('/api/v1/campaigns', body(over));
      expect(res.statusCode, JSON.stringify(over)).toBe(400);
      const e = res.json();
      expect(e.error).toBe('validation');
      expect(
        e.details.issues.map((i: { path: string }) => i.path),
        JSON.stringify(over),
      ).toContain(path);
    }
    expect((await h.stores.campaigns.list({ limit: 10 })).items).toEqual([]);
  });

  it('refuses a message missing a locale a vehicle the audience may reach uses, naming the locale', async () => {
    const onlyEn = { message: { en: { title: 'Welcome', body: 'Join' } }, actions: [{ id: 'join', label: { en: 'Join' } }] };
    const res = await post('/api/v1/campaigns', body(onlyEn));
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({
      error: 'validation',
      details: { in: 'body', issues: [{ path: '/message/zh-CN', code: 'missing_locale', locale: 'zh-CN', vehicles: 1 }] },
    });
    expect(res.json().message).toContain('zh-CN');
    // an audience no zh-CN vehicle can enter needs no zh-CN text
    const ok = await post('/api/v1/campaigns', body({ ...onlyEn, audience: { stage: ['new_owner'], dealerId: ['D001'] } }));
    expect(ok.statusCode).toBe(201);
  });

  it('lifecycle and operator manage campaigns; advisors and dealer admins are refused; metrics keys too', async () => {
    const lifecycle = { authorization: `Bearer ${await h.keyFor('lifecycle')}` };
    const created = await post('/api/v1/campaigns', body(), lifecycle);
    expect(created.statusCode).toBe(201);
    const id = created.json().id as string;
    expect((await h.app.inject({ url: `/api/v1/campaigns/${id}/stats`, headers: lifecycle })).statusCode).toBe(200);
    for (const [role, dealers] of [
      ['advisor', ['D001']],
      ['dealer_admin', ['D001']],
      ['metrics', []],
    ] as const) {
      const auth = { authorization: `Bearer ${await h.keyFor(role, [...dealers])}` };
      const refused = await post('/api/v1/campaigns', body(), auth);
      expect(refused.statusCode, role).toBe(403);
      expect(refused.json().details).toMatchObject({ role, needs: 'campaigns:manage' });
      expect((await post(`/api/v1/campaigns/${id}/cancel`, undefined, auth)).statusCode, role).toBe(403);
      expect((await h.app.inject({ url: '/api/v1/campaigns', headers: auth })).statusCode, role).toBe(403);
    }
  });

  it('pause, resume and cancel: each allowed once in its state, 409 otherwise, 404 for an unknown id', async () => {
    const id = (await post('/api/v1/campaigns', body())).json().id as string;
    expect((await post(`/api/v1/campaigns/${id}/resume`)).statusCode).toBe(409);
    const paused = await post(`/api/v1/campaigns/${id}/pause`);
    expect(paused.json()).toMatchObject({ status: 'paused', counts: { pending: 0, withdrawn: 2 } });
    const conflict = await post(`/api/v1/campaigns/${id}/pause`);
    expect(conflict.statusCode).toBe(409);
    expect(conflict.json()).toMatchObject({ error: 'conflict', details: { id, status: 'paused' } });
    expect((await post(`/api/v1/campaigns/${id}/resume`)).json()).toMatchObject({ status: 'active', counts: { targeted: 4, pending: 2 } });
    const cancelled = await post(`/api/v1/campaigns/${id}/cancel`);
    expect(cancelled.json()).toMatchObject({ status: 'cancelled', counts: { pending: 0, withdrawn: 4 } });
    expect(h.published.filter((x) => x.step === 'withdrawn')).toHaveLength(4);
    expect((await post(`/api/v1/campaigns/${id}/cancel`)).statusCode).toBe(409);
    expect((await post('/api/v1/campaigns/c_nope/pause')).statusCode).toBe(404);
    expect((await h.app.inject('/api/v1/campaigns/c_nope')).statusCode).toBe(404);
    expect((await h.app.inject('/api/v1/campaigns/c_nope/stats')).statusCode).toBe(404);
    const actions = (await h.stores.audit.query({ limit: 20 })).map((a) => a.action);
    expect(actions).toEqual(expect.arrayContaining(['campaign.paused', 'campaign.resumed', 'campaign.cancelled']));
  });

  it('stats: the funnel overall and per segment, conversion = acted ÷ delivered', async () => {
    const id = (await post('/api/v1/campaigns', body())).json().id as string;
    const [a, b] = await h.stores.campaigns.deliveries(id);
    await h.deps.changes.record!(async () => [
      (await h.stores.prompts.markHmiDelivered(a.promptId, a.vin, T0))!,
      (await h.stores.prompts.markHmiDelivered(b.promptId, b.vin, T0))!,
    ]);
    await h.deps.changes.record!(async () => [(await h.stores.prompts.recordHmiAck(a.promptId, a.vin, 'ACTED', T0 + 1))!]);
    await h.deps.changes.record!(async () => [(await h.stores.prompts.recordHmiAck(b.promptId, b.vin, 'DISMISSED', T0 + 1))!]);
    const s = (await h.app.inject(`/api/v1/campaigns/${id}/stats`)).json();
    expect(s).toEqual({
      campaignId: id,
      status: 'active',
      totals: { targeted: 2, pending: 0, delivered: 2, shown: 2, dismissed: 1, acted: 1, withdrawn: 0, expired: 0, conversion: 0.5 },
      segments: [
        {
          stage: 'new_owner',
          activity: 'active',
          maturity: 'novice',
          targeted: 2,
          pending: 0,
          delivered: 2,
          shown: 2,
          dismissed: 1,
          acted: 1,
          withdrawn: 0,
          expired: 0,
          conversion: 0.5,
        },
      ],
    });
  });
});
