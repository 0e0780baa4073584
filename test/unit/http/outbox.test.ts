// GET /api/v1/outbox and POST /api/v1/outbox/{id}/retry: operators only (outbox:manage), dead events
// listed without their data, a retry puts dead events back (one URL or all), wakes the dispatcher
// and is audited; what is not dead is a 404 or a 409.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { eventsForChanges } from '../../../ingest/outbound/cloudevents.js';
import { makeHarness, T0, VIN_A, type Harness } from './harness.js';

const U1 = 'http://crm.invalid/a';
const U2 = 'http://crm.invalid/b';

let h: Harness;
let kicks: number;
beforeEach(async () => {
  kicks = 0;
  h = await makeHarness({ dispatcher: { now: () => T0 + 99_000, kick: () => void kicks++ } });
  await h.register(VIN_A, 'D001');
});
afterEach(async () => {
  await h.close();
});

/** Two prompt events for two URLs; the first event dies at both URLs, the second at U1 only. */
async function deadEvents() {
  const changes = [await h.openPrompt(VIN_A, { key: 'k1' }), await h.openPrompt(VIN_A, { key: 'k2' })];
  const rows = eventsForChanges(changes, [U1, U2]);
  // one after the other (oldest first is by creation time; ids are random)
  await h.stores.outbox.enqueue(rows.slice(0, 2), T0);
  await h.stores.outbox.enqueue(rows.slice(2), T0 + 1);
  const [a1, a2, b1] = rows;
  for (const r of [a1, a2, b1]) await h.stores.outbox.markFailed(r.id, r.url, 'HTTP 410', T0 + 1000, { now: T0 + 500, dead: true });
  return { a: a1.id, b: b1.id };
}

describe('outbox routes', () => {
  it('lists dead events (the default state) oldest first, paged, with type and subject but never the data', async () => {
    const { a, b } = await deadEvents();
    const first = await h.app.inject({ url: '/api/v1/outbox?limit=2' });
    expect(first.statusCode).toBe(200);
    const page = first.json();
    expect(page.items.map((e: { id: string; url: string }) => [e.id, e.url])).toEqual([
      [a, U1],
      [a, U2],
    ]);
    expect(page.items[0]).toEqual({
      id: a,
      url: U1,
      state: 'dead',
      type: 'com.odopulse.prompt.created',
      subject: VIN_A,
      attempts: 1,
      lastError: 'HTTP 410',
      createdAt: new Date(T0).toISOString(),
      nextAttemptAt: null,
      firstFailedAt: new Date(T0 + 500).toISOString(),
      deadAt: new Date(T0 + 500).toISOString(),
      deliveredAt: null,
    });
    expect(first.body).not.toContain('P0A80'); // the prompt's evidence stays in the outbox
    const second = (await h.app.inject({ url: `/api/v1/outbox?state=dead&limit=2&cursor=${page.nextCursor}` })).json();
    expect(second.items.map((e: { id: string }) => e.id)).toEqual([b]);
    expect(second.nextCursor).toBeNull();
    const pending = (await h.app.inject({ url: '/api/v1/outbox?state=pending' })).json();
    expect(pending.items.map((e: { id: string; url: string; state: string }) => [e.id, e.url, e.state])).toEqual([[b, U2, 'pending']]);
    expect(pending.items[0].nextAttemptAt).toBe(new Date(T0 + 1).toISOString());
    expect((await h.app.inject({ url: '/api/v1/outbox?state=lost' })).statusCode).toBe(400);
    expect((await h.app.inject({ url: '/api/v1/outbox?cursor=nonsense' })).json().error).toBe('invalid_cursor');
  });

  it('retries one URL (body or query) or every dead URL of an event, due at once on the dispatcher clock; audited; wakes the dispatcher', async () => {
    const { a, b } = await deadEvents();
    const one = await h.app.inject({ method: 'POST', url: `/api/v1/outbox/${a}/retry`, payload: { url: U2 } });
    expect(one.statusCode).toBe(200);
    expect(one.json().items).toEqual([
      expect.objectContaining({ id: a, url: U2, state: 'pending', attempts: 1, nextAttemptAt: new Date(T0 + 99_000).toISOString() }),
    ]);
    expect(await h.stores.outbox.get(a, U2)).toMatchObject({ state: 'pending', nextAttemptAt: T0 + 99_000, firstFailedAt: null });
    expect((await h.stores.outbox.get(a, U1))?.state).toBe('dead');
    expect(kicks).toBe(1);

    const byQuery = await h.app.inject({ method: 'POST', url: `/api/v1/outbox/${a}/retry?url=${encodeURIComponent(U1)}` });
    expect(byQuery.json().items.map((e: { url: string }) => e.url)).toEqual([U1]);

    const all = await h.app.inject({ method: 'POST', url: `/api/v1/outbox/${b}/retry` });
    expect(all.statusCode).toBe(200);
    expect(all.json().items.map((e: { url: string }) => e.url)).toEqual([U1]); // U2 of b was never dead
    expect(await h.stores.outbox.count('dead')).toBe(0);
    expect(kicks).toBe(3);

    const audit = (await h.stores.audit.query({ limit: 10 })).filter((e) => e.action === 'outbox.retried');
    expect(audit.map((e) => [e.vin, e.detail])).toEqual([
      [VIN_A, { eventId: b, urls: [U1], attempts: [1] }],
      [VIN_A, { eventId: a, urls: [U1], attempts: [1] }],
      [VIN_A, { eventId: a, urls: [U2], attempts: [1] }],
    ]);
    expect(audit[0].principal).toMatch(/^key:/);
  });

  it('what is not dead: 409 for a pending or delivered URL, 404 for an unknown event or URL; nothing audited', async () => {
    const { b } = await deadEvents();
    const pending = await h.app.inject({ method: 'POST', url: `/api/v1/outbox/${b}/retry`, payload: { url: U2 } });
    expect(pending.statusCode).toBe(409);
    expect(pending.json().details).toEqual({ id: b, url: U2, state: 'pending' });
    await h.stores.outbox.markDelivered(b, U2, T0 + 2000);
    expect(
      (await h.app.inject({ method: 'POST', url: `/api/v1/outbox/${b}/retry?url=${encodeURIComponent(U2)}` })).json().details.state,
    ).toBe('delivered');
    expect((await h.app.inject({ method: 'POST', url: '/api/v1/outbox/nope/retry' })).statusCode).toBe(404);
    expect(
      (await h.app.inject({ method: 'POST', url: `/api/v1/outbox/${b}/retry`, payload: { url: 'http://crm.invalid/other' } })).statusCode,
    ).toBe(404);
    const mismatch = await h.app.inject({
      method: 'POST',
      url: `/api/v1/outbox/${b}/retry?url=${encodeURIComponent(U1)}`,
      payload: { url: U2 },
    });
    expect(mismatch.statusCode).toBe(400);
    expect((await h.app.inject({ method: 'POST', url: `/api/v1/outbox/${b}/retry`, payload: { url: 'ftp://x' } })).statusCode).toBe(400);
    expect((await h.stores.audit.query({ limit: 10 })).filter((e) => e.action === 'outbox.retried')).toEqual([]);
    expect(kicks).toBe(0);
    expect((await h.stores.outbox.get(b, U1))?.state).toBe('dead');
  });

  it('operators only: every other role gets 403 on both routes, and nothing moves', async () => {
    const { a } = await deadEvents();
    for (const key of [
      await h.keyFor('advisor', ['D001'], ['location:read']),
      await h.keyFor('dealer_admin', ['D001']),
      await h.keyFor('lifecycle'),
      await h.keyFor('metrics'),
    ]) {
      const headers = { authorization: `Bearer ${key}` };
      expect((await h.app.inject({ url: '/api/v1/outbox', headers })).statusCode).toBe(403);
      expect((await h.app.inject({ method: 'POST', url: `/api/v1/outbox/${a}/retry`, headers })).statusCode).toBe(403);
    }
    expect(await h.stores.outbox.count('dead')).toBe(3);
    const operator = { authorization: `Bearer ${await h.keyFor('operator')}` };
    expect((await h.app.inject({ url: '/api/v1/outbox', headers: operator })).statusCode).toBe(200);
  });
});
