// Rule states, dead letters, transactions and retention, run against every Stores implementation.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Stores } from '../../ingest/store/ports.js';
import { toStateJson } from '../../rules/state-json.js';
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

const letter = (topic: string) => ({ topic, clientId: null, reason: 'r', payload: new Uint8Array([1]), at: T0 });

/** A promise and the function that resolves it, for a test to decide when an await inside a transaction ends. */
function latch(): { promise: Promise<void>; release: () => void } {
  let release!: () => void;
  const promise = new Promise<void>((r) => (release = r));
  return { promise, release };
}

/** Let other callers run for a while: timers, I/O (a networked backend) and every microtask. */
const settle = () => new Promise<void>((r) => setTimeout(r, 50));

export function storesSuite(name: string, make: () => Stores | Promise<Stores>): void {
  describe(`Stores (${name})`, () => {
    let stores: Stores;
    beforeEach(async () => {
      stores = await make();
    });
    afterEach(async () => {
      await stores.close();
    });

    it('saves and loads rule states as JSON, one per vehicle', async () => {
      expect(await stores.ruleStates.load(VIN_A)).toBeUndefined();
      await stores.ruleStates.save([ruleState(VIN_A, T0), ruleState(VIN_B, T0)].map(toStateJson));
      await stores.ruleStates.save([ruleState(VIN_A, T0 + 1)].map(toStateJson));
      expect(await stores.ruleStates.load(VIN_A)).toEqual(ruleState(VIN_A, T0 + 1));
      expect((await stores.ruleStates.all()).map((s) => [s.vin, s.lastTs])).toEqual([
        [VIN_A, T0 + 1],
        [VIN_B, T0],
      ]);
    });

    it('keeps dead letters with reason and payload bytes, newest first', async () => {
      await stores.deadLetters.add({
        topic: 'v1/vehicles/X/telemetry',
        clientId: 'c1',
        reason: 'decode failed',
        payload: new Uint8Array([0, 255, 7]),
        at: T0,
      });
      await stores.deadLetters.add({ topic: 't2', clientId: null, reason: 'too large', payload: new Uint8Array(), at: T0 + 1 });
      expect(await stores.deadLetters.count()).toBe(2);
      const [newest, oldest] = await stores.deadLetters.list(10);
      expect(newest).toMatchObject({ topic: 't2', clientId: null, reason: 'too large', payloadBase64: '' });
      expect(oldest).toMatchObject({
        topic: 'v1/vehicles/X/telemetry',
        clientId: 'c1',
        at: new Date(T0).toISOString(),
        payloadBase64: Buffer.from([0, 255, 7]).toString('base64'),
      });
      expect(await stores.deadLetters.list(1)).toHaveLength(1);
    });

    it('transaction commits everything inside, and rolls everything back when it throws', async () => {
      const ok = await stores.transaction(async () => {
        await stores.ruleStates.save([ruleState(VIN_A, T0)].map(toStateJson));
        await stores.outbox.enqueue([{ id: 'e1', url: 'http://x/', body: '{}' }], T0);
        return (await stores.prompts.applyRuleEvents(VIN_A, [open()], render, 'D1', T0)).length;
      });
      expect(ok).toBe(1);
      const before = (await stores.prompts.changesSince(0, undefined, 100)).length;
      await expect(
        stores.transaction(async () => {
          await stores.ruleStates.save([ruleState(VIN_A, T0 + 5)].map(toStateJson));
          await stores.outbox.enqueue([{ id: 'e2', url: 'http://x/', body: '{}' }], T0);
          await stores.prompts.applyRuleEvents(VIN_A, [resolveEv('charging.low_soc'), open({ dedupKey: 'other' })], render, 'D1', T0 + 5);
          await stores.deadLetters.add({ topic: 't', clientId: null, reason: 'r', payload: new Uint8Array([1]), at: T0 });
          throw new Error('batch failed');
        }),
      ).rejects.toThrow('batch failed');
      expect((await stores.ruleStates.load(VIN_A))?.lastTs).toBe(T0);
      expect(await stores.outbox.pending()).toBe(1);
      expect(await stores.deadLetters.count()).toBe(0);
      expect(await stores.prompts.changesSince(0, undefined, 100)).toHaveLength(before);
      expect((await stores.prompts.list({ limit: 10 })).items.map((p) => [p.dedupKey, p.status])).toEqual([['charging.low_soc', 'open']]);
      // The store still works after a rollback, and seq keeps increasing.
      const [c] = await stores.prompts.applyRuleEvents(VIN_A, [open({ dedupKey: 'after' })], render, 'D1', T0 + 6);
      expect(c.seq).toBeGreaterThan((await stores.prompts.changesSince(0, undefined, 100))[0].seq);
    });

    it('a write from outside an open transaction is neither seen inside it nor rolled back with it', async () => {
      const wroteX = latch();
      const goOn = latch();
      let seenInside: string[] = [];
      const a = stores.transaction(async () => {
        await stores.deadLetters.add(letter('X'));
        wroteX.release();
        await goOn.promise; // open and awaiting: another caller's turn
        seenInside = (await stores.deadLetters.list(10)).map((d) => d.topic);
        throw new Error('A failed');
      });
      await wroteX.promise;
      // Another async caller, outside A: issued now, awaited only after A has ended.
      const y = stores.deadLetters.add(letter('Y'));
      await settle(); // a backend that runs it at once has done so by now
      goOn.release();
      await expect(a).rejects.toThrow('A failed');
      await y;
      expect(seenInside).toEqual(['X']);
      expect((await stores.deadLetters.list(10)).map((d) => d.topic)).toEqual(['Y']);
      expect(await stores.deadLetters.count()).toBe(1);
    });

    it('two callers each in their own transaction at once: one rolling back takes nothing of the other', async () => {
      const wroteX = latch();
      const goOn = latch();
      const a = stores.transaction(async () => {
        await stores.deadLetters.add(letter('X'));
        wroteX.release();
        await goOn.promise;
        throw new Error('A failed');
      });
      const b = stores.transaction(async () => {
        await stores.deadLetters.add(letter('Y'));
        return (await stores.deadLetters.list(10)).map((d) => d.topic);
      });
      await wroteX.promise;
      await settle();
      goOn.release();
      await expect(a).rejects.toThrow('A failed');
      expect(await b).toEqual(['Y']); // B saw its own write only
      expect((await stores.deadLetters.list(10)).map((d) => d.topic)).toEqual(['Y']);
    });

    it('a nested transaction joins the outer one: its error, propagated, rolls back everything', async () => {
      await expect(
        stores.transaction(async () => {
          await stores.ruleStates.save([ruleState(VIN_A, T0)].map(toStateJson));
          await stores.transaction(async () => {
            await stores.outbox.enqueue([{ id: 'e1', url: 'http://x/', body: '{}' }], T0);
            throw new Error('inner failed');
          });
        }),
      ).rejects.toThrow('inner failed');
      expect(await stores.ruleStates.load(VIN_A)).toBeUndefined();
      expect(await stores.outbox.pending()).toBe(0);
    });

    it('a nested transaction that ended well is not committed on its own: the outer one failing takes it back', async () => {
      await expect(
        stores.transaction(async () => {
          const inner = await stores.transaction(async () => {
            await stores.deadLetters.add(letter('inner'));
            return (await stores.prompts.applyRuleEvents(VIN_A, [open()], render, 'D1', T0)).length;
          });
          expect(inner).toBe(1);
          // inside the outer one, what the inner one wrote is there
          expect(await stores.deadLetters.count()).toBe(1);
          throw new Error('outer failed');
        }),
      ).rejects.toThrow('outer failed');
      expect(await stores.deadLetters.count()).toBe(0);
      expect((await stores.prompts.list({ limit: 10 })).items).toEqual([]);
      expect(await stores.prompts.lastChangeSeq()).toBe(0);
    });

    it('a failing render leaves no half-applied batch', async () => {
      const bad = () => {
        throw new Error('no text for kind');
      };
      await expect(
        stores.prompts.applyRuleEvents(
          VIN_A,
          [open({ dedupKey: 'a' }), open({ dedupKey: 'b' })],
          (d) => (d.dedupKey === 'b' ? bad() : render(d)),
          'D1',
          T0,
        ),
      ).rejects.toThrow('no text');
      expect((await stores.prompts.list({ limit: 10 })).items).toEqual([]);
    });

    it('prune deletes old delivered events, closed prompts and dead letters, and keeps the rest', async () => {
      const cutoff = T0 + 10 * HOUR;
      const [old] = await stores.prompts.applyRuleEvents(VIN_A, [open({ dedupKey: 'old' })], render, 'D1', T0);
      await stores.prompts.resolve(old.promptId, 'x', 'other', undefined, T0 + 1);
      const [openOld] = await stores.prompts.applyRuleEvents(VIN_A, [open({ dedupKey: 'still-open' })], render, 'D1', T0);
      const [recent] = await stores.prompts.applyRuleEvents(VIN_A, [open({ dedupKey: 'recent' })], render, 'D1', T0);
      await stores.prompts.resolve(recent.promptId, 'x', 'other', undefined, cutoff + 1);
      await stores.outbox.enqueue(
        [
          { id: 'd-old', url: 'u', body: '' },
          { id: 'undelivered', url: 'u', body: '' },
          { id: 'd-new', url: 'u', body: '' },
        ],
        T0,
      );
      await stores.outbox.markDelivered('d-old', 'u', T0 + 1);
      await stores.outbox.markDelivered('d-new', 'u', cutoff);
      await stores.deadLetters.add({ topic: 'a', clientId: null, reason: 'r', payload: new Uint8Array(), at: T0 });
      await stores.deadLetters.add({ topic: 'b', clientId: null, reason: 'r', payload: new Uint8Array(), at: cutoff });

      const r = await stores.prune(cutoff);
      expect(r).toEqual({ prompts: 1, promptChanges: 2, outbox: 1, deadLetters: 1, audit: 0 });
      expect(await stores.prompts.get(old.promptId)).toBeUndefined();
      expect((await stores.prompts.get(openOld.promptId))?.status).toBe('open');
      expect((await stores.prompts.get(recent.promptId))?.status).toBe('resolved');
      expect((await stores.prompts.changesSince(0, undefined, 100)).some((c) => c.promptId === old.promptId)).toBe(false);
      expect(await stores.outbox.get('d-old', 'u')).toBeUndefined();
      expect(await stores.outbox.get('d-new', 'u')).toBeDefined();
      expect(await stores.outbox.pending()).toBe(1);
      expect((await stores.deadLetters.list(10)).map((d) => d.topic)).toEqual(['b']);
    });
  });
}
