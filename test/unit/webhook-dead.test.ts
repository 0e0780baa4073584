// The webhook dispatcher gives up: an event failing for the give-up age (from its first failed
// attempt, on the dispatcher's own clock) becomes dead, is counted and never dispatched again;
// an operator's retry puts it back and it is delivered exactly once. Time moves only when the
// test says so (injected clock); no network (injected fetch).
import { afterEach, describe, expect, it } from 'vitest';
import { createMetrics } from '../../ingest/metrics.js';
import { eventsForChanges } from '../../ingest/outbound/cloudevents.js';
import { WebhookDispatcher } from '../../ingest/outbound/webhook.js';
import type { OutboxEvent, Stores } from '../../ingest/store/ports.js';
import { createMemoryStores } from '../../ingest/stores.js';
import { HOUR, T0, VIN_A, open, render } from '../ports/fixtures.js';
import { waitFor } from '../support/wait.js';

const URL = 'http://lifecycle.invalid/hook';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(o: { giveUpMs?: number } = {}) {
  const stores: Stores = createMemoryStores();
  cleanups.push(() => stores.close());
  const [change] = await stores.prompts.applyRuleEvents(VIN_A, [open()], render, 'D1', T0);
  const [row] = eventsForChanges([change], [URL]);
  // enqueued on a fleet clock far behind the dispatcher's: the give-up age does not start here
  await stores.outbox.enqueue([row], T0 - 365 * 24 * HOUR);
  let now = T0;
  let answer = 503;
  const requests: string[] = [];
  let dueCalls = 0;
  const outbox = {
    ...stores.outbox,
    due: (at: number, limit: number) => {
      dueCalls++;
      return stores.outbox.due(at, limit);
    },
  };
  const deaths: Array<{ e: OutboxEvent; error: string }> = [];
  const d = new WebhookDispatcher({
    outbox,
    secret: 'k',
    clock: () => now,
    baseBackoffMs: 1000,
    maxBackoffMs: 8000,
    pollMs: 60_000,
    giveUpMs: o.giveUpMs ?? 72 * HOUR,
    fetchImpl: (async (_url: string | URL | Request, init?: RequestInit) => {
      requests.push((init?.headers as Record<string, string>)['webhook-id']);
      return new Response(null, { status: answer });
    }) as typeof fetch,
    onDead: (e, error) => void deaths.push({ e, error }),
  });
  cleanups.push(() => d.stop());
  const get = async () => (await stores.outbox.get(row.id, row.url))!;
  /** Kick and wait until the loop has looked at the outbox again (so "nothing sent" is a fact, not a guess). */
  const settle = async () => {
    const before = dueCalls;
    d.kick();
    await waitFor(() => dueCalls > before, { what: 'the dispatcher looked at the outbox', intervalMs: 5 });
  };
  return {
    stores,
    row,
    d,
    get,
    requests,
    deaths,
    settle,
    at: (t: number) => void (now = t),
    answer: (s: number) => void (answer = s),
  };
}

describe('WebhookDispatcher: give-up age and the dead state', () => {
  it('an event failing for the give-up age becomes dead on its next failure, counted, and is not dispatched again', async () => {
    const s = await setup();
    s.d.start();
    await waitFor(async () => (await s.get()).attempts === 1, { what: 'the first attempt', intervalMs: 5 });
    expect(await s.get()).toMatchObject({ state: 'pending', firstFailedAt: T0, lastError: 'HTTP 503' });

    // 71 h of failing: still pending.
    s.at(T0 + 71 * HOUR);
    s.d.kick();
    await waitFor(async () => (await s.get()).attempts === 2, { what: 'the second attempt', intervalMs: 5 });
    expect(await s.get()).toMatchObject({ state: 'pending', firstFailedAt: T0 });
    expect(s.deaths).toEqual([]);

    // 72 h: the attempt fails, and it was the last one.
    s.at(T0 + 72 * HOUR);
    s.d.kick();
    await waitFor(async () => (await s.get()).state === 'dead', { what: 'the event dead', intervalMs: 5 });
    expect(await s.get()).toMatchObject({ state: 'dead', attempts: 3, lastError: 'HTTP 503', deadAt: T0 + 72 * HOUR, deliveredAt: null });
    expect(s.d.dead).toBe(1);
    expect(s.d.failed).toBe(3);
    expect(s.deaths).toHaveLength(1);
    expect(s.deaths[0].error).toBe('HTTP 503');
    expect(s.deaths[0].e).toMatchObject({ id: s.row.id, url: URL, state: 'dead', attempts: 3, deadAt: T0 + 72 * HOUR });
    expect(await s.stores.outbox.pending()).toBe(0);
    expect(await s.stores.outbox.nextDueAt()).toBeNull();

    // Days later, a receiver that would accept it: nothing is sent, the row is still there.
    s.answer(204);
    s.at(T0 + 200 * HOUR);
    await s.settle();
    expect(s.requests).toHaveLength(3);
    expect((await s.stores.prune(T0 + 10_000 * HOUR)).outbox).toBe(0);
    expect((await s.get()).state).toBe('dead');
  });

  it('a retry from dead delivers it once, under the same id; attempts are kept', async () => {
    const s = await setup({ giveUpMs: HOUR });
    s.d.start();
    await waitFor(async () => (await s.get()).attempts === 1, { what: 'the first attempt', intervalMs: 5 });
    s.at(T0 + HOUR);
    s.d.kick();
    await waitFor(async () => (await s.get()).state === 'dead', { what: 'the event dead', intervalMs: 5 });
    expect(s.requests).toEqual([s.row.id, s.row.id]);

    s.answer(204);
    s.at(T0 + 5 * HOUR);
    const [back] = await s.stores.outbox.retry(s.row.id, URL, T0 + 5 * HOUR);
    expect(back).toMatchObject({ state: 'pending', attempts: 2, nextAttemptAt: T0 + 5 * HOUR, firstFailedAt: null });
    s.d.kick();
    await waitFor(async () => (await s.get()).state === 'delivered', { what: 'the retried event delivered', intervalMs: 5 });
    expect(await s.get()).toMatchObject({ deliveredAt: T0 + 5 * HOUR, attempts: 2, lastError: null, deadAt: null });
    await s.settle();
    expect(s.requests).toEqual([s.row.id, s.row.id, s.row.id]); // exactly one more request
    expect(s.d.delivered).toBe(1);
    expect(s.d.dead).toBe(1);
  });

  it('a retried event that fails again gets a new give-up window from that failure', async () => {
    const s = await setup({ giveUpMs: HOUR });
    s.d.start();
    await waitFor(async () => (await s.get()).attempts === 1, { what: 'the first attempt', intervalMs: 5 });
    s.at(T0 + HOUR);
    s.d.kick();
    await waitFor(async () => (await s.get()).state === 'dead', { what: 'the event dead', intervalMs: 5 });
    s.at(T0 + 10 * HOUR);
    await s.stores.outbox.retry(s.row.id, null, T0 + 10 * HOUR);
    s.d.kick();
    await waitFor(async () => (await s.get()).attempts === 3, { what: 'the retried attempt', intervalMs: 5 });
    expect(await s.get()).toMatchObject({ state: 'pending', firstFailedAt: T0 + 10 * HOUR });
    s.at(T0 + 11 * HOUR);
    s.d.kick();
    await waitFor(async () => (await s.get()).state === 'dead', { what: 'dead again', intervalMs: 5 });
    expect(await s.get()).toMatchObject({ attempts: 4, deadAt: T0 + 11 * HOUR });
    expect(s.d.dead).toBe(2);
  });

  it('without a give-up age (0) it retries forever', async () => {
    const s = await setup({ giveUpMs: 0 });
    s.d.start();
    await waitFor(async () => (await s.get()).attempts === 1, { what: 'the first attempt', intervalMs: 5 });
    s.at(T0 + 10_000 * HOUR);
    s.d.kick();
    await waitFor(async () => (await s.get()).attempts === 2, { what: 'the second attempt', intervalMs: 5 });
    expect((await s.get()).state).toBe('pending');
    expect(s.d.dead).toBe(0);
  });
});

describe('outbox metrics', () => {
  it('the pending and dead gauges are read from the outbox at scrape time; the dead counter is there', async () => {
    const stores = createMemoryStores();
    cleanups.push(() => stores.close());
    await stores.outbox.enqueue(
      [
        { id: 'a', url: URL, body: '{}' },
        { id: 'b', url: URL, body: '{}' },
        { id: 'c', url: URL, body: '{}' },
      ],
      T0,
    );
    await stores.outbox.markFailed('a', URL, 'HTTP 500', T0, { now: T0, dead: true });
    await stores.outbox.markDelivered('b', URL, T0);
    const m = createMetrics({ outboxCount: (state) => stores.outbox.count(state) });
    m.outboxDead.inc();
    const text = await m.registry.metrics();
    expect(text).toMatch(/^odopulse_outbox_pending 1$/m);
    expect(text).toMatch(/^odopulse_outbox_dead 1$/m);
    expect(text).toMatch(/^odopulse_outbox_dead_total 1$/m);
    // a failing store does not fail the scrape, whether it throws or rejects
    const broken = createMetrics({
      outboxCount: () => {
        throw new Error('closed');
      },
    });
    expect(await broken.registry.metrics()).toMatch(/^odopulse_outbox_pending 0$/m);
    const rejecting = createMetrics({ outboxCount: () => Promise.reject(new Error('closed')) });
    expect(await rejecting.registry.metrics()).toMatch(/^odopulse_outbox_pending 0$/m);
  });
});
