// PromptStore behaviour, run against every implementation (memory and SQLite).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Stores } from '../../ingest/store/ports.js';
import type { PromptStore } from '../../ingest/store/ports.js';
import { InvalidCursorError } from '../../ingest/store/paging.js';
import { HOUR, T0, VIN_A, VIN_B, open, render, resolveEv } from './fixtures.js';

export function promptStoreSuite(name: string, make: () => Stores): void {
  describe(`PromptStore (${name})`, () => {
    let stores: Stores;
    let ps: PromptStore;
    beforeEach(() => {
      stores = make();
      ps = stores.prompts;
    });
    afterEach(() => stores.close());

    const openOne = (over = {}, vin = VIN_A, now = T0, dealer: string | null = 'D1') => {
      const [c] = ps.applyRuleEvents(vin, [open(over)], render, dealer, now);
      if (!c) throw new Error('expected a created change');
      return c.prompt;
    };

    it('creates a prompt from an open event, with a created change carrying the snapshot', () => {
      const changes = ps.applyRuleEvents(VIN_A, [open({ expiresAt: T0 + HOUR, value: 3 })], render, 'D1', T0);
      expect(changes).toHaveLength(1);
      const c = changes[0];
      expect(c.step).toBe('created');
      expect(c.seq).toBeGreaterThan(0);
      const p = c.prompt;
      expect(p.id).toMatch(/^p_[a-z2-7]{16}$/);
      expect(p).toMatchObject({
        vin: VIN_A,
        kind: 'charging.low_soc',
        status: 'open',
        title: 'title charging.low_soc',
        locale: 'en',
        hmiState: 'pending',
        dealerId: 'D1',
        createdAt: '2026-03-01T08:00:00.000Z',
        expiresAt: '2026-03-01T09:00:00.000Z',
        value: 3,
        outcome: null,
        evidence: { soc: 18 },
      });
      expect(ps.get(p.id)).toEqual(p);
      expect(ps.get('p_nonexistent')).toBeUndefined();
    });

    it('an advisor-only prompt has no HMI state', () => {
      expect(openOne({ audience: ['advisor'] }).hmiState).toBe('none');
    });

    it('opens a situation once: a repeated open is ignored until the situation resolves', () => {
      const first = openOne();
      expect(ps.applyRuleEvents(VIN_A, [open(), open()], render, 'D1', T0 + 1)).toEqual([]);
      // Another vehicle's situation with the same key is its own.
      expect(ps.applyRuleEvents(VIN_B, [open()], render, 'D1', T0 + 1)).toHaveLength(1);
      const [res] = ps.applyRuleEvents(VIN_A, [resolveEv('charging.low_soc')], render, 'D1', T0 + 2);
      expect(res.promptId).toBe(first.id);
      const again = ps.applyRuleEvents(VIN_A, [open()], render, 'D1', T0 + 3);
      expect(again).toHaveLength(1);
      expect(again[0].prompt.id).not.toBe(first.id);
    });

    it('a resolve event withdraws a prompt nobody acted on, and tells the HMI to drop it', () => {
      const p = openOne();
      const [c] = ps.applyRuleEvents(VIN_A, [resolveEv(p.dedupKey)], render, 'D1', T0 + HOUR);
      expect(c.step).toBe('withdrawn');
      expect(c.prompt).toMatchObject({ status: 'resolved', outcome: 'withdrawn', hmiState: 'withdrawn', resolvedBy: 'system' });
      expect(ps.pendingHmi(VIN_A, T0 + HOUR)).toEqual([]);
      // Nothing open any more for the key: a second resolve changes nothing.
      expect(ps.applyRuleEvents(VIN_A, [resolveEv(p.dedupKey)], render, 'D1', T0 + HOUR)).toEqual([]);
    });

    it('a resolve event after the owner acted keeps the outcome', () => {
      const p = openOne();
      ps.markHmiSent(p.id, T0 + 1);
      ps.recordHmiAck(p.id, VIN_A, 'ACTED', T0 + 2);
      const [c] = ps.applyRuleEvents(VIN_A, [resolveEv(p.dedupKey)], render, 'D1', T0 + 3);
      expect(c.step).toBe('resolved');
      expect(c.prompt).toMatchObject({ status: 'resolved', outcome: 'acted', hmiState: 'acted' });
    });

    it('HMI path: sent (no step) -> delivered (once, own vehicle) -> shown -> acted; duplicates are no-ops', () => {
      const p = openOne();
      const seq = ps.lastChangeSeq();
      expect(ps.markHmiSent(p.id, T0 + 1)).toMatchObject({ status: 'open', hmiState: 'sent' });
      expect(ps.lastChangeSeq()).toBe(seq); // published is not delivered: no change
      expect(ps.markHmiSent(p.id, T0 + 2)).toBeUndefined();
      expect(ps.pendingHmi(VIN_A, T0 + 2)).toEqual([]);
      expect(ps.pendingHmi(VIN_A, T0 + 2, true).map((x) => x.id)).toEqual([p.id]);
      expect(ps.markHmiDelivered(p.id, VIN_B, T0 + 2)).toBeUndefined();
      const delivered = ps.markHmiDelivered(p.id, VIN_A, T0 + 2);
      expect(delivered?.step).toBe('delivered');
      expect(delivered?.prompt).toMatchObject({ status: 'delivered', hmiState: 'delivered' });
      expect(ps.markHmiDelivered(p.id, VIN_A, T0 + 3)).toBeUndefined();
      expect(ps.pendingHmi(VIN_A, T0 + 3, true)).toEqual([]);
      expect(ps.recordHmiAck(p.id, VIN_B, 'SHOWN', T0 + 3)).toBeUndefined();
      expect(ps.get(p.id)?.hmiState).toBe('delivered');
      expect(ps.recordHmiAck(p.id, VIN_A, 'SHOWN', T0 + 3)?.prompt).toMatchObject({ hmiState: 'shown', outcome: 'shown' });
      expect(ps.recordHmiAck(p.id, VIN_A, 'SHOWN', T0 + 4)).toBeUndefined();
      const acted = ps.recordHmiAck(p.id, VIN_A, 'ACTED', T0 + 5);
      expect(acted?.step).toBe('acted');
      expect(acted?.prompt).toMatchObject({ hmiState: 'acted', outcome: 'acted', updatedAt: new Date(T0 + 5).toISOString() });
      expect(ps.recordHmiAck(p.id, VIN_A, 'DISMISSED', T0 + 6)).toBeUndefined();
      expect(ps.recordHmiAck('p_unknown', VIN_A, 'SHOWN', T0)).toBeUndefined();
    });

    it('advisor path: acknowledge once, then resolve once; closing withdraws it from the HMI', () => {
      const p = openOne({ audience: ['hmi', 'advisor'] });
      const ack = ps.acknowledge(p.id, 'alice', 'calling owner', T0 + 1);
      expect(ack?.step).toBe('acknowledged');
      expect(ack?.by).toBe('alice');
      expect(ack?.prompt).toMatchObject({ status: 'acknowledged', acknowledgedBy: 'alice', note: 'calling owner' });
      expect(ps.acknowledge(p.id, 'bob', undefined, T0 + 2)).toBeUndefined();
      const res = ps.resolve(p.id, 'alice', 'booked', undefined, T0 + 3);
      expect(res?.prompt).toMatchObject({
        status: 'resolved',
        outcome: 'booked',
        resolvedBy: 'alice',
        hmiState: 'withdrawn',
        note: 'calling owner',
      });
      expect(ps.resolve(p.id, 'alice', 'declined', undefined, T0 + 4)).toBeUndefined();
      expect(ps.acknowledge('p_unknown', 'x', undefined, T0)).toBeUndefined();
    });

    it('expires prompts past expiresAt, and never offers an expired one to the HMI', () => {
      const p = openOne({ expiresAt: T0 + HOUR });
      const keep = openOne({ dedupKey: 'k2' });
      expect(ps.pendingHmi(VIN_A, T0 + HOUR).map((x) => x.id)).toEqual([keep.id]);
      expect(ps.expire(T0 + HOUR - 1)).toEqual([]);
      const changes = ps.expire(T0 + HOUR);
      expect(changes.map((c) => [c.promptId, c.step])).toEqual([[p.id, 'expired']]);
      expect(ps.get(p.id)).toMatchObject({ status: 'expired', outcome: 'expired', hmiState: 'withdrawn' });
      expect(ps.expire(T0 + 2 * HOUR)).toEqual([]);
      // Expired frees the key for a new occurrence.
      expect(ps.applyRuleEvents(VIN_A, [open()], render, 'D1', T0 + 2 * HOUR)).toHaveLength(1);
    });

    it('pendingHmi: own vehicle, pending only, urgent first, then value, then oldest', () => {
      const low = openOne({ dedupKey: 'a', value: 1 }, VIN_A, T0);
      const urgent = openOne({ dedupKey: 'b', value: 0, urgent: true }, VIN_A, T0 + 3);
      const high = openOne({ dedupKey: 'c', value: 5 }, VIN_A, T0 + 2);
      const lowLater = openOne({ dedupKey: 'd', value: 1 }, VIN_A, T0 + 1);
      openOne({ dedupKey: 'e', audience: ['advisor'] }, VIN_A, T0);
      openOne({ dedupKey: 'f' }, VIN_B, T0);
      const sent = openOne({ dedupKey: 'g', value: 9 }, VIN_A, T0);
      ps.markHmiSent(sent.id, T0 + 5);
      expect(ps.pendingHmi(VIN_A, T0 + 10).map((p) => p.id)).toEqual([urgent.id, high.id, low.id, lowLater.id]);
      // with the unconfirmed: the sent one too, in the same order; a delivered one never
      expect(ps.pendingHmi(VIN_A, T0 + 10, true).map((p) => p.id)).toEqual([urgent.id, sent.id, high.id, low.id, lowLater.id]);
      ps.markHmiDelivered(sent.id, VIN_A, T0 + 6);
      expect(ps.pendingHmi(VIN_A, T0 + 10, true).map((p) => p.id)).toEqual([urgent.id, high.id, low.id, lowLater.id]);
    });

    it('lists newest first with a keyset cursor that pages through everything once', () => {
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) ids.push(openOne({ dedupKey: `k${i}` }, VIN_A, T0 + Math.floor(i / 2)).id); // ties on createdAt
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 10; page++) {
        const r = ps.list({ limit: 3, cursor });
        seen.push(...r.items.map((p) => p.id));
        if (!r.nextCursor) break;
        cursor = r.nextCursor;
      }
      expect(new Set(seen).size).toBe(7);
      expect([...seen].sort()).toEqual([...ids].sort());
      const created = seen.map((id) => Date.parse(ps.get(id)!.createdAt));
      expect(created).toEqual([...created].sort((a, b) => b - a));
      expect(ps.list({ limit: 7 }).nextCursor).toBeNull();
      expect(() => ps.list({ limit: 3, cursor: 'garbage!' })).toThrow(InvalidCursorError);
    });

    it('filters by vin, kind, audience, status and dealer', () => {
      const a = openOne({ dedupKey: 'a', audience: ['advisor'] }, VIN_A, T0, 'D1');
      const b = openOne({ dedupKey: 'b', kind: 'fault.dtc' }, VIN_A, T0 + 1, 'D2');
      const c = openOne({ dedupKey: 'c' }, VIN_B, T0 + 2, 'D1');
      ps.acknowledge(c.id, 'x', undefined, T0 + 3);
      const ids = (f: Parameters<PromptStore['list']>[0]) => ps.list(f).items.map((p) => p.id);
      expect(ids({ limit: 10, vin: VIN_A })).toEqual([b.id, a.id]);
      expect(ids({ limit: 10, kind: 'fault.dtc' })).toEqual([b.id]);
      expect(ids({ limit: 10, audience: 'advisor' })).toEqual([a.id]);
      expect(ids({ limit: 10, audience: 'hmi' })).toEqual([c.id, b.id]);
      expect(ids({ limit: 10, status: 'acknowledged' })).toEqual([c.id]);
      expect(ids({ limit: 10, dealerId: 'D1' })).toEqual([c.id, a.id]);
      expect(ids({ limit: 10, dealerId: 'D1', vin: VIN_A })).toEqual([a.id]);
    });

    it('changesSince resumes after a seq, in order, by dealer, bounded by limit', () => {
      const a = openOne({ dedupKey: 'a' }, VIN_A, T0, 'D1');
      openOne({ dedupKey: 'b' }, VIN_B, T0, 'D2');
      ps.markHmiSent(a.id, T0 + 1);
      ps.markHmiDelivered(a.id, VIN_A, T0 + 1);
      ps.acknowledge(a.id, 'x', undefined, T0 + 2);
      const all = ps.changesSince(0, undefined, 100);
      expect(all.map((c) => c.step)).toEqual(['created', 'created', 'delivered', 'acknowledged']);
      const seqs = all.map((c) => c.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      expect(new Set(seqs).size).toBe(4);
      expect(ps.changesSince(all[1].seq, undefined, 100).map((c) => c.step)).toEqual(['delivered', 'acknowledged']);
      expect(ps.changesSince(0, 'D1', 100).map((c) => c.step)).toEqual(['created', 'delivered', 'acknowledged']);
      expect(ps.changesSince(0, undefined, 2)).toHaveLength(2);
      // Each change carries the prompt as it was after that step.
      expect(all[2].prompt.status).toBe('delivered');
      expect(all[3].prompt.status).toBe('acknowledged');
    });

    it('stats count each step per kind in the window and compute conversion', () => {
      const a = openOne({ dedupKey: 'a' });
      const b = openOne({ dedupKey: 'b' });
      const c = openOne({ dedupKey: 'c', kind: 'fault.dtc', audience: ['advisor'] });
      openOne({ dedupKey: 'd', kind: 'usage.dormant_vehicle' });
      ps.markHmiSent(a.id, T0 + 1);
      ps.recordHmiAck(a.id, VIN_A, 'SHOWN', T0 + 2);
      ps.recordHmiAck(a.id, VIN_A, 'ACTED', T0 + 3);
      ps.markHmiSent(b.id, T0 + 1);
      ps.recordHmiAck(b.id, VIN_A, 'DISMISSED', T0 + 2);
      ps.acknowledge(c.id, 'x', undefined, T0 + 1);
      ps.resolve(c.id, 'x', 'booked', undefined, T0 + 2);
      const stats = ps.stats(T0, T0 + HOUR);
      const low = stats.find((s) => s.kind === 'charging.low_soc');
      expect(low).toMatchObject({ delivered: 2, shown: 1, dismissed: 1, acted: 1, booked: 0, conversion: 0.5 });
      const dtc = stats.find((s) => s.kind === 'fault.dtc');
      expect(dtc).toMatchObject({ delivered: 1, acknowledged: 1, resolved: 1, booked: 1, conversion: 1 });
      expect(stats.find((s) => s.kind === 'usage.dormant_vehicle')).toMatchObject({ delivered: 0, conversion: null });
      // Outside the window nothing counts.
      expect(ps.stats(T0 + HOUR, T0 + 2 * HOUR)).toEqual([]);
    });

    it('hands out copies: changing a returned prompt does not change the store', () => {
      const p = openOne();
      p.status = 'expired';
      p.audience.push('advisor');
      expect(ps.get(p.id)?.status).toBe('open');
      expect(ps.get(p.id)?.audience).toEqual(['hmi', 'lifecycle']);
    });
  });
}
