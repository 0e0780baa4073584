// Rule states, dead letters, transactions and retention, run against every Stores implementation.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Stores } from '../../ingest/store/ports.js';
import type { VehicleRuleState } from '../../rules/types.js';
import { HOUR, T0, VIN_A, VIN_B, open, render, resolveEv } from './fixtures.js';

const ruleState = (vin: string, lastTs: number): VehicleRuleState => ({
  vin,
  lastTs,
  latest: { 'Vehicle.TraveledDistance': 4210.5 },
  latestTs: lastTs,
  activeDtcs: ['P0A80'],
  families: { maintenance: { nextDueKm: 5000 } },
});

export function storesSuite(name: string, make: () => Stores): void {
  describe(`Stores (${name})`, () => {
    let stores: Stores;
    beforeEach(() => {
      stores = make();
    });
    afterEach(() => stores.close());

    it('saves and loads rule states as JSON, one per vehicle', () => {
      expect(stores.ruleStates.load(VIN_A)).toBeUndefined();
      stores.ruleStates.save([ruleState(VIN_A, T0), ruleState(VIN_B, T0)]);
      stores.ruleStates.save([ruleState(VIN_A, T0 + 1)]);
      expect(stores.ruleStates.load(VIN_A)).toEqual(ruleState(VIN_A, T0 + 1));
      expect([...stores.ruleStates.all()].map((s) => [s.vin, s.lastTs])).toEqual([
        [VIN_A, T0 + 1],
        [VIN_B, T0],
      ]);
    });

    it('keeps dead letters with reason and payload bytes, newest first', () => {
      stores.deadLetters.add({
        topic: 'v1/vehicles/X/telemetry',
        clientId: 'c1',
        reason: 'decode failed',
        payload: new Uint8Array([0, 255, 7]),
        at: T0,
      });
      stores.deadLetters.add({ topic: 't2', clientId: null, reason: 'too large', payload: new Uint8Array(), at: T0 + 1 });
      expect(stores.deadLetters.count()).toBe(2);
      const [newest, oldest] = stores.deadLetters.list(10);
      expect(newest).toMatchObject({ topic: 't2', clientId: null, reason: 'too large', payloadBase64: '' });
      expect(oldest).toMatchObject({
        topic: 'v1/vehicles/X/telemetry',
        clientId: 'c1',
        at: new Date(T0).toISOString(),
        payloadBase64: Buffer.from([0, 255, 7]).toString('base64'),
      });
      expect(stores.deadLetters.list(1)).toHaveLength(1);
    });

    it('transaction commits everything inside, and rolls everything back when it throws', () => {
      const ok = stores.transaction(() => {
        stores.ruleStates.save([ruleState(VIN_A, T0)]);
        stores.outbox.enqueue([{ id: 'e1', url: 'http://x/', body: '{}' }], T0);
        return stores.prompts.applyRuleEvents(VIN_A, [open()], render, 'D1', T0).length;
      });
      expect(ok).toBe(1);
      const before = stores.prompts.changesSince(0, undefined, 100).length;
      expect(() =>
        stores.transaction(() => {
          stores.ruleStates.save([ruleState(VIN_A, T0 + 5)]);
          stores.outbox.enqueue([{ id: 'e2', url: 'http://x/', body: '{}' }], T0);
          stores.prompts.applyRuleEvents(VIN_A, [resolveEv('charging.low_soc'), open({ dedupKey: 'other' })], render, 'D1', T0 + 5);
          stores.deadLetters.add({ topic: 't', clientId: null, reason: 'r', payload: new Uint8Array([1]), at: T0 });
          throw new Error('batch failed');
        }),
      ).toThrow('batch failed');
      expect(stores.ruleStates.load(VIN_A)?.lastTs).toBe(T0);
      expect(stores.outbox.pending()).toBe(1);
      expect(stores.deadLetters.count()).toBe(0);
      expect(stores.prompts.changesSince(0, undefined, 100)).toHaveLength(before);
      expect(stores.prompts.list({ limit: 10 }).items.map((p) => [p.dedupKey, p.status])).toEqual([['charging.low_soc', 'open']]);
      // The store still works after a rollback, and seq keeps increasing.
      const [c] = stores.prompts.applyRuleEvents(VIN_A, [open({ dedupKey: 'after' })], render, 'D1', T0 + 6);
      expect(c.seq).toBeGreaterThan(stores.prompts.changesSince(0, undefined, 100)[0].seq);
    });

    it('a failing render leaves no half-applied batch', () => {
      const bad = () => {
        throw new Error('no text for kind');
      };
      expect(() =>
        stores.prompts.applyRuleEvents(
          VIN_A,
          [open({ dedupKey: 'a' }), open({ dedupKey: 'b' })],
          (d) => (d.dedupKey === 'b' ? bad() : render(d)),
          'D1',
          T0,
        ),
      ).toThrow('no text');
      expect(stores.prompts.list({ limit: 10 }).items).toEqual([]);
    });

    it('prune deletes old delivered events, closed prompts and dead letters, and keeps the rest', () => {
      const cutoff = T0 + 10 * HOUR;
      const [old] = stores.prompts.applyRuleEvents(VIN_A, [open({ dedupKey: 'old' })], render, 'D1', T0);
      stores.prompts.resolve(old.promptId, 'x', 'other', undefined, T0 + 1);
      const [openOld] = stores.prompts.applyRuleEvents(VIN_A, [open({ dedupKey: 'still-open' })], render, 'D1', T0);
      const [recent] = stores.prompts.applyRuleEvents(VIN_A, [open({ dedupKey: 'recent' })], render, 'D1', T0);
      stores.prompts.resolve(recent.promptId, 'x', 'other', undefined, cutoff + 1);
      stores.outbox.enqueue(
        [
          { id: 'd-old', url: 'u', body: '' },
          { id: 'undelivered', url: 'u', body: '' },
          { id: 'd-new', url: 'u', body: '' },
        ],
        T0,
      );
      stores.outbox.markDelivered('d-old', 'u', T0 + 1);
      stores.outbox.markDelivered('d-new', 'u', cutoff);
      stores.deadLetters.add({ topic: 'a', clientId: null, reason: 'r', payload: new Uint8Array(), at: T0 });
      stores.deadLetters.add({ topic: 'b', clientId: null, reason: 'r', payload: new Uint8Array(), at: cutoff });

      const r = stores.prune(cutoff);
      expect(r).toEqual({ prompts: 1, promptChanges: 2, outbox: 1, deadLetters: 1, audit: 0 });
      expect(stores.prompts.get(old.promptId)).toBeUndefined();
      expect(stores.prompts.get(openOld.promptId)?.status).toBe('open');
      expect(stores.prompts.get(recent.promptId)?.status).toBe('resolved');
      expect(stores.prompts.changesSince(0, undefined, 100).some((c) => c.promptId === old.promptId)).toBe(false);
      expect(stores.outbox.get('d-old', 'u')).toBeUndefined();
      expect(stores.outbox.get('d-new', 'u')).toBeDefined();
      expect(stores.outbox.pending()).toBe(1);
      expect(stores.deadLetters.list(10).map((d) => d.topic)).toEqual(['b']);
    });
  });
}
