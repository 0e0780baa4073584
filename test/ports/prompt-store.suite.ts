// PromptStore behaviour, run against every implementation (memory and SQLite).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Stores } from '../../ingest/store/ports.js';
import type { PromptStore } from '../../ingest/store/ports.js';
import { InvalidCursorError } from '../../ingest/store/paging.js';
import { HOUR, T0, VIN_A, VIN_B, open, render, resolveEv } from './fixtures.js';

export function promptStoreSuite(name: string, make: () => Stores | Promise<Stores>): void {
  describe(`PromptStore (${name})`, () => {
    let stores: Stores;
    let ps: PromptStore;
    beforeEach(async () => {
      stores = await make();
      ps = stores.prompts;
    });
    afterEach(async () => {
      await stores.close();
    });

    const openOne = async (over = {}, vin = VIN_A, now = T0, dealer: string | null = 'D1') => {
      const [c] = await ps.applyRuleEvents(vin, [open(over)], render, dealer, now);
      if (!c) throw new Error('expected a created change');
      return c.prompt;
    };

    it('creates a prompt from an open event, with a created change carrying the snapshot', async () => {
      const changes = await ps.applyRuleEvents(VIN_A, [open({ expiresAt: T0 + HOUR, value: 3 })], render, 'D1', T0);
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
      expect(await ps.get(p.id)).toEqual(p);
      expect(await ps.get('p_nonexistent')).toBeUndefined();
    });

    it('an advisor-only prompt has no HMI state', async () => {
      expect((await openOne({ audience: ['advisor'] })).hmiState).toBe('none');
    });

    it('opens a situation once: a repeated open is ignored until the situation resolves', async () => {
      const first = await openOne();
      expect(await ps.applyRuleEvents(VIN_A, [open(), open()], render, 'D1', T0 + 1)).toEqual([]);
      // Another vehicle's situation with the same key is its own.
      expect(await ps.applyRuleEvents(VIN_B, [open()], render, 'D1', T0 + 1)).toHaveLength(1);
      const [res] = await ps.applyRuleEvents(VIN_A, [resolveEv('charging.low_soc')], render, 'D1', T0 + 2);
      expect(res.promptId).toBe(first.id);
      const again = await ps.applyRuleEvents(VIN_A, [open()], render, 'D1', T0 + 3);
      expect(again).toHaveLength(1);
      expect(again[0].prompt.id).not.toBe(first.id);
    });

    it('a resolve event withdraws a prompt nobody acted on, and tells the HMI to drop it', async () => {
      const p = await openOne();
      const [c] = await ps.applyRuleEvents(VIN_A, [resolveEv(p.dedupKey)], render, 'D1', T0 + HOUR);
      expect(c.step).toBe('withdrawn');
      expect(c.prompt).toMatchObject({ status: 'resolved', outcome: 'withdrawn', hmiState: 'withdrawn', resolvedBy: 'system' });
      expect(await ps.pendingHmi(VIN_A, T0 + HOUR)).toEqual([]);
      // Nothing open any more for the key: a second resolve changes nothing.
      expect(await ps.applyRuleEvents(VIN_A, [resolveEv(p.dedupKey)], render, 'D1', T0 + HOUR)).toEqual([]);
    });

    it('a resolve event after the owner acted keeps the outcome', async () => {
      const p = await openOne();
      await ps.markHmiSent(p.id, T0 + 1);
      await ps.recordHmiAck(p.id, VIN_A, 'ACTED', T0 + 2);
      const [c] = await ps.applyRuleEvents(VIN_A, [resolveEv(p.dedupKey)], render, 'D1', T0 + 3);
      expect(c.step).toBe('resolved');
      expect(c.prompt).toMatchObject({ status: 'resolved', outcome: 'acted', hmiState: 'acted' });
    });

    it('HMI path: sent (no step) -> delivered (once, own vehicle) -> shown -> acted; duplicates are no-ops', async () => {
      const p = await openOne();
      const seq = await ps.lastChangeSeq();
      expect(await ps.markHmiSent(p.id, T0 + 1)).toMatchObject({ status: 'open', hmiState: 'sent' });
      expect(await ps.lastChangeSeq()).toBe(seq); // published is not delivered: no change
      expect(await ps.markHmiSent(p.id, T0 + 2)).toBeUndefined();
      expect(await ps.pendingHmi(VIN_A, T0 + 2)).toEqual([]);
      expect((await ps.pendingHmi(VIN_A, T0 + 2, true)).map((x) => x.id)).toEqual([p.id]);
      expect(await ps.markHmiDelivered(p.id, VIN_B, T0 + 2)).toBeUndefined();
      const delivered = await ps.markHmiDelivered(p.id, VIN_A, T0 + 2);
      expect(delivered?.step).toBe('delivered');
      expect(delivered?.prompt).toMatchObject({ status: 'delivered', hmiState: 'delivered' });
      expect(await ps.markHmiDelivered(p.id, VIN_A, T0 + 3)).toBeUndefined();
      expect(await ps.pendingHmi(VIN_A, T0 + 3, true)).toEqual([]);
      expect(await ps.recordHmiAck(p.id, VIN_B, 'SHOWN', T0 + 3)).toBeUndefined();
      expect((await ps.get(p.id))?.hmiState).toBe('delivered');
      expect((await ps.recordHmiAck(p.id, VIN_A, 'SHOWN', T0 + 3))?.prompt).toMatchObject({ hmiState: 'shown', outcome: 'shown' });
      expect(await ps.recordHmiAck(p.id, VIN_A, 'SHOWN', T0 + 4)).toBeUndefined();
      const acted = await ps.recordHmiAck(p.id, VIN_A, 'ACTED', T0 + 5);
      expect(acted?.step).toBe('acted');
      expect(acted?.prompt).toMatchObject({ hmiState: 'acted', outcome: 'acted', updatedAt: new Date(T0 + 5).toISOString() });
      expect(await ps.recordHmiAck(p.id, VIN_A, 'DISMISSED', T0 + 6)).toBeUndefined();
      expect(await ps.recordHmiAck('p_unknown', VIN_A, 'SHOWN', T0)).toBeUndefined();
    });

    it('advisor path: acknowledge once, then resolve once; closing withdraws it from the HMI', async () => {
      const p = await openOne({ audience: ['hmi', 'advisor'] });
      const ack = await ps.acknowledge(p.id, 'alice', 'calling owner', T0 + 1);
      expect(ack?.step).toBe('acknowledged');
      expect(ack?.by).toBe('alice');
      expect(ack?.prompt).toMatchObject({ status: 'acknowledged', acknowledgedBy: 'alice', note: 'calling owner' });
      expect(await ps.acknowledge(p.id, 'bob', undefined, T0 + 2)).toBeUndefined();
      const res = await ps.resolve(p.id, 'alice', 'booked', undefined, T0 + 3);
      expect(res?.prompt).toMatchObject({
        status: 'resolved',
        outcome: 'booked',
        resolvedBy: 'alice',
        hmiState: 'withdrawn',
        note: 'calling owner',
      });
      expect(await ps.resolve(p.id, 'alice', 'declined', undefined, T0 + 4)).toBeUndefined();
      expect(await ps.acknowledge('p_unknown', 'x', undefined, T0)).toBeUndefined();
    });

    it('expires prompts past expiresAt, and never offers an expired one to the HMI', async () => {
      const p = await openOne({ expiresAt: T0 + HOUR });
      const keep = await openOne({ dedupKey: 'k2' });
      expect((await ps.pendingHmi(VIN_A, T0 + HOUR)).map((x) => x.id)).toEqual([keep.id]);
      expect(await ps.expire(T0 + HOUR - 1)).toEqual([]);
      const changes = await ps.expire(T0 + HOUR);
      expect(changes.map((c) => [c.promptId, c.step])).toEqual([[p.id, 'expired']]);
      expect(await ps.get(p.id)).toMatchObject({ status: 'expired', outcome: 'expired', hmiState: 'withdrawn' });
      expect(await ps.expire(T0 + 2 * HOUR)).toEqual([]);
      // Expired frees the key for a new occurrence.
      expect(await ps.applyRuleEvents(VIN_A, [open()], render, 'D1', T0 + 2 * HOUR)).toHaveLength(1);
    });

    it('pendingHmi: own vehicle, pending only, urgent first, then value, then oldest', async () => {
      const low = await openOne({ dedupKey: 'a', value: 1 }, VIN_A, T0);
      const urgent = await openOne({ dedupKey: 'b', value: 0, urgent: true }, VIN_A, T0 + 3);
      const high = await openOne({ dedupKey: 'c', value: 5 }, VIN_A, T0 + 2);
      const lowLater = await openOne({ dedupKey: 'd', value: 1 }, VIN_A, T0 + 1);
      await openOne({ dedupKey: 'e', audience: ['advisor'] }, VIN_A, T0);
      await openOne({ dedupKey: 'f' }, VIN_B, T0);
      const sent = await openOne({ dedupKey: 'g', value: 9 }, VIN_A, T0);
      await ps.markHmiSent(sent.id, T0 + 5);
      expect((await ps.pendingHmi(VIN_A, T0 + 10)).map((p) => p.id)).toEqual([urgent.id, high.id, low.id, lowLater.id]);
      // with the unconfirmed: the sent one too, in the same order; a delivered one never
      expect((await ps.pendingHmi(VIN_A, T0 + 10, true)).map((p) => p.id)).toEqual([urgent.id, sent.id, high.id, low.id, lowLater.id]);
      await ps.markHmiDelivered(sent.id, VIN_A, T0 + 6);
      expect((await ps.pendingHmi(VIN_A, T0 + 10, true)).map((p) => p.id)).toEqual([urgent.id, high.id, low.id, lowLater.id]);
    });

    it('lists newest first with a keyset cursor that pages through everything once', async () => {
      const ids: string[] = [];
      for (let i = 0; i < 7; i++) ids.push((await openOne({ dedupKey: `k${i}` }, VIN_A, T0 + Math.floor(i / 2))).id); // ties on createdAt
      const seen: string[] = [];
      let cursor: string | undefined;
      for (let page = 0; page < 10; page++) {
        const r = await ps.list({ limit: 3, cursor });
        seen.push(...r.items.map((p) => p.id));
        if (!r.nextCursor) break;
        cursor = r.nextCursor;
      }
      expect(new Set(seen).size).toBe(7);
      expect([...seen].sort()).toEqual([...ids].sort());
      const created: number[] = [];
      for (const id of seen) created.push(Date.parse((await ps.get(id))!.createdAt));
      expect(created).toEqual([...created].sort((a, b) => b - a));
      expect((await ps.list({ limit: 7 })).nextCursor).toBeNull();
      await expect(ps.list({ limit: 3, cursor: 'garbage!' })).rejects.toThrow(InvalidCursorError);
    });

    it('filters by vin, kind, audience, status and dealer', async () => {
      const a = await openOne({ dedupKey: 'a', audience: ['advisor'] }, VIN_A, T0, 'D1');
      const b = await openOne({ dedupKey: 'b', kind: 'fault.dtc' }, VIN_A, T0 + 1, 'D2');
      const c = await openOne({ dedupKey: 'c' }, VIN_B, T0 + 2, 'D1');
      await ps.acknowledge(c.id, 'x', undefined, T0 + 3);
      const ids = async (f: Parameters<PromptStore['list']>[0]) => (await ps.list(f)).items.map((p) => p.id);
      expect(await ids({ limit: 10, vin: VIN_A })).toEqual([b.id, a.id]);
      expect(await ids({ limit: 10, kind: 'fault.dtc' })).toEqual([b.id]);
      expect(await ids({ limit: 10, audience: 'advisor' })).toEqual([a.id]);
      expect(await ids({ limit: 10, audience: 'hmi' })).toEqual([c.id, b.id]);
      expect(await ids({ limit: 10, status: 'acknowledged' })).toEqual([c.id]);
      expect(await ids({ limit: 10, dealerId: 'D1' })).toEqual([c.id, a.id]);
      expect(await ids({ limit: 10, dealerId: 'D1', vin: VIN_A })).toEqual([a.id]);
    });

    it('changesSince resumes after a seq, in order, by dealer, bounded by limit', async () => {
      const a = await openOne({ dedupKey: 'a' }, VIN_A, T0, 'D1');
      await openOne({ dedupKey: 'b' }, VIN_B, T0, 'D2');
      await ps.markHmiSent(a.id, T0 + 1);
      await ps.markHmiDelivered(a.id, VIN_A, T0 + 1);
      await ps.acknowledge(a.id, 'x', undefined, T0 + 2);
      const all = await ps.changesSince(0, undefined, 100);
      expect(all.map((c) => c.step)).toEqual(['created', 'created', 'delivered', 'acknowledged']);
      const seqs = all.map((c) => c.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      expect(new Set(seqs).size).toBe(4);
      expect((await ps.changesSince(all[1].seq, undefined, 100)).map((c) => c.step)).toEqual(['delivered', 'acknowledged']);
      expect((await ps.changesSince(0, 'D1', 100)).map((c) => c.step)).toEqual(['created', 'delivered', 'acknowledged']);
      expect(await ps.changesSince(0, undefined, 2)).toHaveLength(2);
      // Each change carries the prompt as it was after that step.
      expect(all[2].prompt.status).toBe('delivered');
      expect(all[3].prompt.status).toBe('acknowledged');
    });

    it('stats count each step per kind in the window and compute conversion', async () => {
      const a = await openOne({ dedupKey: 'a' });
      const b = await openOne({ dedupKey: 'b' });
      const c = await openOne({ dedupKey: 'c', kind: 'fault.dtc', audience: ['advisor'] });
      await openOne({ dedupKey: 'd', kind: 'usage.dormant_vehicle' });
      await ps.markHmiSent(a.id, T0 + 1);
      await ps.recordHmiAck(a.id, VIN_A, 'SHOWN', T0 + 2);
      await ps.recordHmiAck(a.id, VIN_A, 'ACTED', T0 + 3);
      await ps.markHmiSent(b.id, T0 + 1);
      await ps.recordHmiAck(b.id, VIN_A, 'DISMISSED', T0 + 2);
      await ps.acknowledge(c.id, 'x', undefined, T0 + 1);
      await ps.resolve(c.id, 'x', 'booked', undefined, T0 + 2);
      const stats = await ps.stats(T0, T0 + HOUR);
      const low = stats.find((s) => s.kind === 'charging.low_soc');
      expect(low).toMatchObject({ delivered: 2, shown: 1, dismissed: 1, acted: 1, booked: 0, conversion: 0.5 });
      const dtc = stats.find((s) => s.kind === 'fault.dtc');
      expect(dtc).toMatchObject({ delivered: 1, acknowledged: 1, resolved: 1, booked: 1, conversion: 1 });
      expect(stats.find((s) => s.kind === 'usage.dormant_vehicle')).toMatchObject({ delivered: 0, conversion: null });
      // Outside the window nothing counts.
      expect(await ps.stats(T0 + HOUR, T0 + 2 * HOUR)).toEqual([]);
    });

    it('hands out copies: changing a returned prompt does not change the store', async () => {
      const p = await openOne();
      p.status = 'expired';
      p.audience.push('advisor');
      expect((await ps.get(p.id))?.status).toBe('open');
      expect((await ps.get(p.id))?.audience).toEqual(['hmi', 'lifecycle']);
    });
  });
}
