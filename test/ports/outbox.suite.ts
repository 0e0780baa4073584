// Outbox behaviour, run against every implementation.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Stores } from '../../ingest/store/ports.js';
import type { Outbox } from '../../ingest/store/ports.js';
import { HOUR, T0 } from './fixtures.js';

const U1 = 'http://127.0.0.1:1/hook';
const U2 = 'http://127.0.0.1:2/hook';

export function outboxSuite(name: string, make: () => Stores): void {
  describe(`Outbox (${name})`, () => {
    let stores: Stores;
    let ob: Outbox;
    beforeEach(() => {
      stores = make();
      ob = stores.outbox;
    });
    afterEach(() => stores.close());

    it('enqueue is idempotent on (id, url) and new rows are due at once whatever the clock, oldest first', () => {
      ob.enqueue([{ id: 'e2', url: U1, body: '{"n":2}' }], T0 + 10);
      ob.enqueue(
        [
          { id: 'e1', url: U1, body: '{"n":1}' },
          { id: 'e1', url: U2, body: '{"n":1}' },
        ],
        T0,
      );
      ob.enqueue([{ id: 'e1', url: U1, body: '{"changed":true}' }], T0 + 20);
      expect(ob.pending()).toBe(3);
      const due = ob.due(T0 - HOUR, 10); // the enqueuer's clock may run ahead of the dispatcher's
      expect(due.map((e) => [e.id, e.url])).toEqual([
        ['e1', U1],
        ['e1', U2],
        ['e2', U1],
      ]);
      expect(due[0]).toEqual({
        id: 'e1',
        url: U1,
        body: '{"n":1}',
        attempts: 0,
        nextAttemptAt: T0,
        createdAt: T0,
        deliveredAt: null,
        lastError: null,
      });
      expect(ob.due(T0 + 10, 2)).toHaveLength(2);
      expect(ob.nextDueAt()).toBe(0);
    });

    it('markFailed counts the attempt and defers; markDelivered removes from due and pending', () => {
      ob.enqueue(
        [
          { id: 'a', url: U1, body: 'x' },
          { id: 'b', url: U1, body: 'y' },
        ],
        T0,
      );
      ob.markFailed('a', U1, 'HTTP 500', T0 + 5000);
      expect(ob.due(T0 + 1, 10).map((e) => e.id)).toEqual(['b']);
      expect(ob.nextDueAt()).toBe(0);
      ob.markDelivered('b', U1, T0 + 2);
      expect(ob.pending()).toBe(1);
      expect(ob.nextDueAt()).toBe(T0 + 5000);
      const [a] = ob.due(T0 + 5000, 10);
      expect(a).toMatchObject({ id: 'a', attempts: 1, lastError: 'HTTP 500', nextAttemptAt: T0 + 5000 });
      expect(ob.get('b', U1)).toMatchObject({ deliveredAt: T0 + 2 });
      // A late failure report for a delivered event changes nothing.
      ob.markFailed('b', U1, 'late', T0 + 9999);
      expect(ob.get('b', U1)).toMatchObject({ deliveredAt: T0 + 2, attempts: 0, lastError: null });
      ob.markDelivered('a', U1, T0 + 6000);
      expect(ob.pending()).toBe(0);
      expect(ob.nextDueAt()).toBeNull();
      expect(ob.due(T0 + 99_999, 10)).toEqual([]);
      // Re-enqueueing a delivered event does not send it again.
      ob.enqueue([{ id: 'a', url: U1, body: 'x' }], T0 + 7000);
      expect(ob.pending()).toBe(0);
    });
  });
}
