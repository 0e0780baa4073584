// Outbox behaviour, run against every implementation.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Stores } from '../../ingest/store/ports.js';
import type { Outbox } from '../../ingest/store/ports.js';
import { HOUR, T0 } from './fixtures.js';

const U1 = 'http://127.0.0.1:1/hook';
const U2 = 'http://127.0.0.1:2/hook';

export function outboxSuite(name: string, make: () => Stores | Promise<Stores>): void {
  describe(`Outbox (${name})`, () => {
    let stores: Stores;
    let ob: Outbox;
    beforeEach(async () => {
      stores = await make();
      ob = stores.outbox;
    });
    afterEach(async () => {
      await stores.close();
    });

    it('enqueue is idempotent on (id, url) and new rows are due at once whatever the clock, oldest first', async () => {
      await ob.enqueue([{ id: 'e2', url: U1, body: '{"n":2}' }], T0 + 10);
      await ob.enqueue(
        [
          { id: 'e1', url: U1, body: '{"n":1}' },
          { id: 'e1', url: U2, body: '{"n":1}' },
        ],
        T0,
      );
      await ob.enqueue([{ id: 'e1', url: U1, body: '{"changed":true}' }], T0 + 20);
      expect(await ob.pending()).toBe(3);
      const due = await ob.due(T0 - HOUR, 10); // the enqueuer's clock may run ahead of the dispatcher's
      expect(due.map((e) => [e.id, e.url])).toEqual([
        ['e1', U1],
        ['e1', U2],
        ['e2', U1],
      ]);
      expect(due[0]).toEqual({
        id: 'e1',
        url: U1,
        body: '{"n":1}',
        state: 'pending',
        attempts: 0,
        nextAttemptAt: T0,
        createdAt: T0,
        deliveredAt: null,
        lastError: null,
        firstFailedAt: null,
        deadAt: null,
      });
      expect(await ob.due(T0 + 10, 2)).toHaveLength(2);
      expect(await ob.nextDueAt()).toBe(0);
    });

    it('markFailed counts the attempt and defers; markDelivered removes from due and pending', async () => {
      await ob.enqueue(
        [
          { id: 'a', url: U1, body: 'x' },
          { id: 'b', url: U1, body: 'y' },
        ],
        T0,
      );
      await ob.markFailed('a', U1, 'HTTP 500', T0 + 5000);
      expect((await ob.due(T0 + 1, 10)).map((e) => e.id)).toEqual(['b']);
      expect(await ob.nextDueAt()).toBe(0);
      await ob.markDelivered('b', U1, T0 + 2);
      expect(await ob.pending()).toBe(1);
      expect(await ob.nextDueAt()).toBe(T0 + 5000);
      const [a] = await ob.due(T0 + 5000, 10);
      expect(a).toMatchObject({ id: 'a', attempts: 1, lastError: 'HTTP 500', nextAttemptAt: T0 + 5000 });
      expect(await ob.get('b', U1)).toMatchObject({ deliveredAt: T0 + 2 });
      // A late failure report for a delivered event changes nothing.
      await ob.markFailed('b', U1, 'late', T0 + 9999);
      expect(await ob.get('b', U1)).toMatchObject({ state: 'delivered', deliveredAt: T0 + 2, attempts: 0, lastError: null });
      await ob.markDelivered('a', U1, T0 + 6000);
      expect(await ob.pending()).toBe(0);
      expect(await ob.nextDueAt()).toBeNull();
      expect(await ob.due(T0 + 99_999, 10)).toEqual([]);
      // Re-enqueueing a delivered event does not send it again.
      await ob.enqueue([{ id: 'a', url: U1, body: 'x' }], T0 + 7000);
      expect(await ob.pending()).toBe(0);
    });

    it('a failed attempt keeps its error and starts the give-up window once; the last one makes the event dead, never due again', async () => {
      await ob.enqueue(
        [
          { id: 'a', url: U1, body: '{"type":"t","subject":"V"}' },
          { id: 'b', url: U1, body: 'y' },
        ],
        T0,
      );
      await ob.markFailed('a', U1, 'HTTP 500', T0 + 1000, { now: T0 });
      await ob.markFailed('a', U1, 'HTTP 502', T0 + 3000, { now: T0 + 1000 });
      expect(await ob.get('a', U1)).toMatchObject({
        state: 'pending',
        attempts: 2,
        lastError: 'HTTP 502',
        firstFailedAt: T0,
        deadAt: null,
      });
      await ob.markFailed('a', U1, 'ECONNREFUSED', T0 + 9000, { now: T0 + 3000, dead: true });
      expect(await ob.get('a', U1)).toMatchObject({
        state: 'dead',
        attempts: 3,
        lastError: 'ECONNREFUSED',
        firstFailedAt: T0,
        deadAt: T0 + 3000,
        deliveredAt: null,
      });
      // Dead: not due whatever the time, not pending, not what the dispatcher waits for.
      expect((await ob.due(T0 + 99 * HOUR, 10)).map((e) => e.id)).toEqual(['b']);
      expect(await ob.pending()).toBe(1);
      expect(await ob.count('dead')).toBe(1);
      expect(await ob.count('pending')).toBe(1);
      await ob.markDelivered('b', U1, T0 + 4000);
      expect(await ob.nextDueAt()).toBeNull();
      expect(await ob.due(T0 + 99 * HOUR, 10)).toEqual([]);
      // A late failure report changes nothing on a dead event; re-enqueueing does not revive it.
      await ob.markFailed('a', U1, 'late', T0 + 10_000, { now: T0 + 10_000 });
      await ob.enqueue([{ id: 'a', url: U1, body: 'x' }], T0 + 11_000);
      expect(await ob.get('a', U1)).toMatchObject({ state: 'dead', attempts: 3, lastError: 'ECONNREFUSED' });
      // Without `now`, the window starts at nextAttemptAt (a caller with one clock only).
      await ob.enqueue([{ id: 'c', url: U1, body: 'z' }], T0);
      await ob.markFailed('c', U1, 'HTTP 500', T0 + 7);
      expect(await ob.get('c', U1)).toMatchObject({ firstFailedAt: T0 + 7, state: 'pending' });
    });

    it('retry puts dead events back, due at once, attempts and error kept, a new window; one URL or every URL of the id', async () => {
      await ob.enqueue(
        [
          { id: 'a', url: U1, body: 'x' },
          { id: 'a', url: U2, body: 'x' },
          { id: 'b', url: U1, body: 'y' },
        ],
        T0,
      );
      for (const [id, url] of [
        ['a', U1],
        ['a', U2],
      ]) {
        await ob.markFailed(id, url, 'HTTP 500', T0 + 1000, { now: T0 });
        await ob.markFailed(id, url, 'HTTP 503', T0 + 5000, { now: T0 + 1000, dead: true });
      }
      expect(await ob.retry('b', U1, T0 + HOUR)).toEqual([]); // pending, not dead: nothing to do
      expect(await ob.retry('nope', null, T0 + HOUR)).toEqual([]);
      expect((await ob.get('b', U1))?.state).toBe('pending');

      const [one] = await ob.retry('a', U2, T0 + HOUR);
      expect(one).toMatchObject({ id: 'a', url: U2, state: 'pending', attempts: 2, lastError: 'HTTP 503', nextAttemptAt: T0 + HOUR });
      expect(one.firstFailedAt).toBeNull();
      expect(one.deadAt).toBeNull();
      expect(await ob.get('a', U2)).toEqual(one);
      expect((await ob.due(T0 + HOUR, 10)).map((e) => [e.id, e.url])).toEqual([
        ['a', U2],
        ['b', U1],
      ]);
      expect((await ob.due(T0 + HOUR - 1, 10)).map((e) => [e.id, e.url])).toEqual([['b', U1]]);
      expect(await ob.retry('a', U2, T0 + HOUR)).toEqual([]); // already pending
      // url null: every dead URL of the id.
      await ob.markFailed('a', U2, 'HTTP 500', T0 + 2 * HOUR, { now: T0 + HOUR, dead: true });
      const all = await ob.retry('a', null, T0 + 3 * HOUR);
      expect(all.map((e) => [e.url, e.state, e.attempts])).toEqual([
        [U1, 'pending', 2],
        [U2, 'pending', 3],
      ]);
      expect(await ob.count('dead')).toBe(0);
      expect(await ob.pending()).toBe(3);
      // The next failure starts a new window.
      await ob.markFailed('a', U1, 'HTTP 500', T0 + 4 * HOUR, { now: T0 + 3 * HOUR });
      expect(await ob.get('a', U1)).toMatchObject({ attempts: 3, firstFailedAt: T0 + 3 * HOUR, state: 'pending' });
      // A dead event a receiver accepted after all is delivered.
      await ob.markFailed('b', U1, 'HTTP 500', T0, { now: T0, dead: true });
      await ob.markDelivered('b', U1, T0 + 5 * HOUR);
      expect(await ob.get('b', U1)).toMatchObject({ state: 'delivered', deliveredAt: T0 + 5 * HOUR, deadAt: null });
    });

    it('lists one state oldest first (createdAt, id, url), paged with an opaque cursor', async () => {
      for (let i = 0; i < 5; i++) {
        await ob.enqueue(
          [
            { id: `e${i}`, url: U2, body: '{}' },
            { id: `e${i}`, url: U1, body: '{}' },
          ],
          T0 + (i % 3), // e0,e3 at T0; e1,e4 at T0+1; e2 at T0+2
        );
      }
      for (let i = 0; i < 5; i++)
        for (const url of [U1, U2]) if (i !== 2) await ob.markFailed(`e${i}`, url, 'x', T0, { now: T0, dead: true });
      await ob.markDelivered('e2', U1, T0 + 9);
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await ob.list({ state: 'dead', limit: 3, cursor });
        expect(page.items.length).toBeLessThanOrEqual(3);
        seen.push(...page.items.map((e) => `${e.id} ${e.url === U1 ? 'U1' : 'U2'} ${e.state}`));
        cursor = page.nextCursor ?? undefined;
        pages++;
      } while (cursor && pages < 10);
      expect(seen).toEqual([
        'e0 U1 dead',
        'e0 U2 dead',
        'e3 U1 dead',
        'e3 U2 dead',
        'e1 U1 dead',
        'e1 U2 dead',
        'e4 U1 dead',
        'e4 U2 dead',
      ]);
      expect(pages).toBe(3);
      expect((await ob.list({ state: 'pending', limit: 10 })).items.map((e) => [e.id, e.url])).toEqual([['e2', U2]]);
      expect(await ob.list({ state: 'delivered', limit: 10 })).toEqual({
        items: [expect.objectContaining({ id: 'e2', url: U1 })],
        nextCursor: null,
      });
      expect((await ob.list({ state: 'dead', limit: 8 })).nextCursor).toBeNull();
      await expect(ob.list({ state: 'dead', limit: 3, cursor: 'garbage' })).rejects.toThrow(/invalid cursor/);
    });

    it('prune keeps dead events whatever their age, and deletes only old delivered ones', async () => {
      await ob.enqueue(
        [
          { id: 'dead', url: U1, body: '' },
          { id: 'pending', url: U1, body: '' },
          { id: 'delivered', url: U1, body: '' },
        ],
        T0,
      );
      await ob.markFailed('dead', U1, 'HTTP 410', T0 + 1, { now: T0 + 1, dead: true });
      await ob.markDelivered('delivered', U1, T0 + 1);
      expect((await stores.prune(T0 + 1000 * HOUR)).outbox).toBe(1);
      expect((await ob.get('dead', U1))?.state).toBe('dead');
      expect((await ob.get('pending', U1))?.state).toBe('pending');
      expect(await ob.get('delivered', U1)).toBeUndefined();
    });
  });
}
