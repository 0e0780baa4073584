// Lifecycle webhooks end to end: prompt changes -> CloudEvents -> outbox -> a real HTTP receiver
// that fails for a while; then a dispatcher stopped mid-way and a reopened SQLite outbox.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { eventsForChanges, eventsForSegmentChanges, segmentsChanged, type CloudEvent } from '../../ingest/outbound/cloudevents.js';
import { sign, verifySignature, WebhookDispatcher } from '../../ingest/outbound/webhook.js';
import { createMemoryStores, openSqliteStores } from '../../ingest/stores.js';
import type { Stores } from '../../ingest/store/ports.js';
import { T0, VIN_A, VIN_B, open, render, resolveEv } from '../ports/fixtures.js';
import { waitFor } from '../support/wait.js';

const SECRET = 'test-secret-不要用在生产';

interface Received {
  headers: IncomingMessage['headers'];
  body: string;
  status: number;
}

/** A lifecycle-system stand-in: `answer` decides each reply; null holds the request open. */
async function receiver(answer: (n: number, body: string) => number | null) {
  const got: Received[] = [];
  const held: ServerResponse[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const status = answer(got.length + held.length + 1, body);
      if (status === null) {
        held.push(res);
        return;
      }
      got.push({ headers: req.headers, body, status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
  const close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return { url, got, held, close };
}

const tmp = mkdtempSync(join(tmpdir(), 'odopulse-webhook-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** Some real prompt changes for two vehicles. */
async function makeChanges(stores: Stores, count: number) {
  const changes = [];
  for (let i = 0; i < count; i++) {
    const vin = i % 2 ? VIN_B : VIN_A;
    changes.push(...(await stores.prompts.applyRuleEvents(vin, [open({ dedupKey: `k${i}` })], render, 'D1', T0 + i)));
  }
  return changes;
}

describe('CloudEvents for the lifecycle system', () => {
  it('builds one event per change and URL with stable ids, types and subject', async () => {
    const stores = createMemoryStores();
    const [created] = await stores.prompts.applyRuleEvents(VIN_A, [open()], render, 'D1', T0);
    const [withdrawn] = await stores.prompts.applyRuleEvents(VIN_A, [resolveEv('charging.low_soc')], render, 'D1', T0 + 1);
    const urls = ['http://a/', 'http://b/'];
    const rows = eventsForChanges([created, withdrawn], urls);
    expect(rows.map((r) => r.url)).toEqual(['http://a/', 'http://b/', 'http://a/', 'http://b/']);
    expect(rows[0].id).toBe(rows[1].id);
    expect(rows[0].id).not.toBe(rows[2].id);
    // Building again gives the same ids and bodies: re-enqueueing is a no-op in the outbox.
    expect(eventsForChanges([created, withdrawn], urls)).toEqual(rows);
    const ev = JSON.parse(rows[0].body) as CloudEvent<Record<string, unknown>>;
    expect(ev).toMatchObject({
      specversion: '1.0',
      id: rows[0].id,
      source: 'odopulse/ingest',
      type: 'com.odopulse.prompt.created',
      subject: VIN_A,
      time: new Date(T0).toISOString(),
      datacontenttype: 'application/json',
    });
    expect(ev.data).toMatchObject({
      id: created.promptId,
      vin: VIN_A,
      kind: 'charging.low_soc',
      status: 'open',
      dedupKey: 'charging.low_soc',
    });
    expect(ev.data).not.toHaveProperty('hmiState');
    expect((JSON.parse(rows[2].body) as CloudEvent).type).toBe('com.odopulse.prompt.withdrawn');
    expect(eventsForChanges([created], [])).toEqual([]);

    const seg = eventsForSegmentChanges(
      [{ vin: VIN_A, from: null, to: { stage: 'new_owner', activity: 'active', maturity: 'novice' }, at: T0 }],
      ['http://a/'],
    );
    expect(JSON.parse(seg[0].body)).toMatchObject({
      type: 'com.odopulse.segment.changed',
      subject: VIN_A,
      data: { to: { stage: 'new_owner' } },
    });
    const s1 = { stage: 'new_owner', activity: 'active', maturity: 'novice' } as const;
    expect(segmentsChanged(null, s1)).toBe(true);
    expect(segmentsChanged(s1, { ...s1 })).toBe(false);
    expect(segmentsChanged(s1, { ...s1, activity: 'declining' })).toBe(true);
  });

  it('verifySignature accepts the signed request and rejects tampering, other keys and stale timestamps', () => {
    const now = 1_800_000_000;
    const headers = { 'webhook-id': 'e1', 'webhook-timestamp': String(now), 'webhook-signature': sign(SECRET, 'e1', now, '{"a":1}') };
    expect(verifySignature(SECRET, headers, '{"a":1}', 300, now)).toBe(true);
    expect(verifySignature(SECRET, new Headers(headers), '{"a":1}', 300, now + 299)).toBe(true);
    expect(verifySignature(SECRET, headers, '{"a":2}', 300, now)).toBe(false);
    expect(verifySignature('other', headers, '{"a":1}', 300, now)).toBe(false);
    expect(verifySignature(SECRET, headers, '{"a":1}', 300, now + 301)).toBe(false);
    expect(verifySignature(SECRET, { ...headers, 'webhook-id': 'e2' }, '{"a":1}', 300, now)).toBe(false);
    expect(
      verifySignature(SECRET, { ...headers, 'webhook-signature': `v1,AAAA ${headers['webhook-signature']}` }, '{"a":1}', 300, now),
    ).toBe(true);
    expect(verifySignature(SECRET, { 'webhook-id': 'e1' }, '{"a":1}', 300, now)).toBe(false);
    expect(verifySignature(SECRET, { ...headers, 'webhook-timestamp': 'soon' }, '{"a":1}', 300, now)).toBe(false);
    // A Standard Webhooks secret ("whsec_" + base64) signs with its decoded bytes.
    const whsec = 'whsec_' + Buffer.from('k3y').toString('base64');
    expect(sign(whsec, 'e1', now, 'b')).toBe(sign('k3y', 'e1', now, 'b'));
  });
});

describe('WebhookDispatcher', () => {
  it('retries through a failing receiver until every event is accepted, ids stable, signatures valid', async () => {
    const FAILURES = 6;
    const rx = await receiver((n) => (n <= FAILURES ? 500 : 200));
    cleanups.push(rx.close);
    const stores = createMemoryStores();
    const changes = await makeChanges(stores, 5);
    const rows = eventsForChanges(changes, [rx.url]);
    await stores.outbox.enqueue(rows, Date.now());
    const errors: string[] = [];
    const d = new WebhookDispatcher({
      outbox: stores.outbox,
      secret: SECRET,
      baseBackoffMs: 5,
      maxBackoffMs: 40,
      concurrency: 2,
      timeoutMs: 30_000,
      onError: (e) => errors.push(e.message),
    });
    cleanups.push(() => d.stop());
    d.start();
    await waitFor(async () => (await stores.outbox.pending()) === 0, { what: 'the outbox drained', intervalMs: 10 });

    expect(d.delivered).toBe(rows.length);
    expect(d.failed).toBe(FAILURES);
    expect(errors.filter((e) => e.includes('HTTP 500'))).toHaveLength(FAILURES);
    const ok = rx.got.filter((r) => r.status === 200);
    expect(new Set(ok.map((r) => r.headers['webhook-id']))).toEqual(new Set(rows.map((r) => r.id)));
    for (const r of rx.got) {
      const id = r.headers['webhook-id'] as string;
      // Every attempt of an event carries the same id and body as what was enqueued.
      expect(r.body).toBe(rows.find((x) => x.id === id)!.body);
      expect((JSON.parse(r.body) as CloudEvent).id).toBe(id);
      expect(r.headers['content-type']).toBe('application/cloudevents+json');
      expect(verifySignature(SECRET, r.headers, r.body, 300)).toBe(true);
    }
    const retried = rx.got.filter((r) => r.status === 500).map((r) => r.headers['webhook-id']);
    for (const id of retried) expect(ok.some((r) => r.headers['webhook-id'] === id)).toBe(true);
    expect((await stores.outbox.get(rows[0].id, rx.url))?.deliveredAt).not.toBeNull();
  });

  it('loses nothing when stopped mid-way: a new dispatcher on the reopened SQLite outbox finishes the job', async () => {
    const dir = join(tmp, 'restart');
    let holdAt = 5;
    const rx = await receiver((n) => (n === holdAt ? null : 200));
    cleanups.push(rx.close);
    let stores = openSqliteStores(dir);
    const rows = eventsForChanges(await makeChanges(stores, 12), [rx.url]);
    await stores.outbox.enqueue(rows, Date.now());

    const d1 = new WebhookDispatcher({ outbox: stores.outbox, secret: SECRET, concurrency: 1, baseBackoffMs: 5, maxBackoffMs: 40 });
    d1.start();
    await waitFor(() => rx.held.length === 1, { what: 'the 5th request in flight, unanswered', intervalMs: 10 });
    await d1.stop();
    holdAt = -1;
    const heldId = rows[4].id;
    expect(d1.delivered).toBe(4);
    expect(await stores.outbox.pending()).toBe(rows.length - 4);
    await stores.close();

    stores = openSqliteStores(dir);
    cleanups.push(() => stores.close());
    expect(await stores.outbox.pending()).toBe(rows.length - 4);
    const d2 = new WebhookDispatcher({ outbox: stores.outbox, secret: SECRET, concurrency: 3, baseBackoffMs: 5, maxBackoffMs: 40 });
    cleanups.push(() => d2.stop());
    d2.start();
    d2.kick();
    await waitFor(async () => (await stores.outbox.pending()) === 0, { what: 'the outbox drained', intervalMs: 10 });

    expect(d2.delivered).toBe(rows.length - 4);
    const okIds = rx.got.filter((r) => r.status === 200).map((r) => r.headers['webhook-id'] as string);
    expect(new Set(okIds)).toEqual(new Set(rows.map((r) => r.id)));
    // The interrupted event came again under the same id, with the same body.
    const again = rx.got.find((r) => r.headers['webhook-id'] === heldId)!;
    expect(again.body).toBe(rows[4].body);
    for (const r of rx.got) expect(verifySignature(SECRET, r.headers, r.body, 300)).toBe(true);
    for (const res of rx.held) res.destroy();
  });

  it('wakes up for new events when kicked, whatever clock enqueued them, and survives a storage error', async () => {
    const rx = await receiver(() => 204);
    cleanups.push(rx.close);
    const stores = createMemoryStores();
    const errors: Error[] = [];
    let failDue = true;
    const outbox = {
      ...stores.outbox,
      due: async (now: number, limit: number) => {
        if (failDue) {
          failDue = false;
          throw new Error('disk I/O error');
        }
        return stores.outbox.due(now, limit);
      },
    };
    const d = new WebhookDispatcher({ outbox, secret: SECRET, pollMs: 60_000, onError: (e) => errors.push(e) });
    cleanups.push(() => d.stop());
    d.start();
    await waitFor(() => errors.length === 1, { what: 'the storage error reported', intervalMs: 10 });
    expect(errors[0].message).toBe('disk I/O error');
    // Enqueued on a fleet clock a year ahead of the wall clock: still sent at once.
    await stores.outbox.enqueue(eventsForChanges(await makeChanges(stores, 2), [rx.url]), Date.now() + 365 * 86_400_000);
    d.kick();
    await waitFor(async () => (await stores.outbox.pending()) === 0, { what: 'the outbox drained', intervalMs: 10 });
    expect(d.delivered).toBe(2);
  });

  it('backs off exponentially with jitter, capped, on its own clock', async () => {
    const stores = createMemoryStores();
    cleanups.push(() => stores.close());
    let now = 1_900_000_000_000;
    let answer = 503;
    const seen: string[] = [];
    const fetchImpl = (async (_url: string | URL | Request, init?: RequestInit) => {
      seen.push((init?.headers as Record<string, string>)['webhook-id']);
      return new Response(null, { status: answer });
    }) as typeof fetch;
    const [row] = eventsForChanges(await makeChanges(stores, 1), ['http://lifecycle.invalid/hook']);
    await stores.outbox.enqueue([row], now);
    const d = new WebhookDispatcher({
      outbox: stores.outbox,
      secret: SECRET,
      clock: () => now,
      baseBackoffMs: 1000,
      maxBackoffMs: 8000,
      pollMs: 60_000,
      fetchImpl,
    });
    cleanups.push(() => d.stop());
    d.start();
    for (let attempt = 1; attempt <= 6; attempt++) {
      await waitFor(async () => (await stores.outbox.get(row.id, row.url))!.attempts === attempt, {
        what: `attempt ${attempt}`,
        intervalMs: 10,
      });
      const e = (await stores.outbox.get(row.id, row.url))!;
      const ceiling = Math.min(8000, 1000 * 2 ** (attempt - 1));
      expect(e.nextAttemptAt - now).toBeGreaterThanOrEqual(ceiling / 2);
      expect(e.nextAttemptAt - now).toBeLessThanOrEqual(ceiling);
      expect(e.lastError).toBe('HTTP 503');
      if (attempt === 6) answer = 204;
      now = e.nextAttemptAt; // time passes only when the test says so
      d.kick();
    }
    await waitFor(async () => (await stores.outbox.pending()) === 0, { what: 'the outbox drained', intervalMs: 10 });
    expect(seen).toEqual(Array(7).fill(row.id));
    expect(d.failed).toBe(6);
    expect(d.delivered).toBe(1);
  });

  it('refuses to start without a secret', () => {
    expect(() => new WebhookDispatcher({ outbox: createMemoryStores().outbox, secret: '' })).toThrow(/secret is required/);
  });
});
