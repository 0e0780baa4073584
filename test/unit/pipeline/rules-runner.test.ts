// RulesRunner: journal positions per vehicle, order, serialisation of service records with
// readings, the sweep's coverage, and one transaction per step.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMetrics } from '../../../ingest/metrics.js';
import { RulesRunner } from '../../../ingest/pipeline/rules-runner.js';
import { createMemoryStores } from '../../../ingest/stores.js';
import type { Stores } from '../../../ingest/store/ports.js';
import { VSS } from '../../../proto/signals.js';
import type { PoolItem } from '../../../rules/pool.js';
import { parseState } from '../../../rules/state-json.js';
import { waitFor } from '../../support/wait.js';
import { DAY, MIN, T0, VIN_A, VIN_B, bev, charging, entry, memoryLog, parked, rulesPoolFixture } from './harness.js';

const fixture = rulesPoolFixture();
afterEach(() => {
  vi.restoreAllMocks();
});

function runner(stores: Stores, o: { now?: () => number; webhookUrls?: string[] } = {}): Promise<RulesRunner> {
  const now = o.now ?? (() => T0 + DAY);
  const clock = { mode: 'event' as const, observe: () => {}, horizon: () => Infinity, now };
  return RulesRunner.open({
    pool: fixture.pool,
    stores,
    clock,
    metrics: createMetrics(),
    webhookUrls: o.webhookUrls ?? [],
    log: memoryLog(),
  });
}

/** Every pool run from now on: its items, as given. */
function poolRuns(): PoolItem[][] {
  const runs: PoolItem[][] = [];
  const real = fixture.pool.run.bind(fixture.pool);
  vi.spyOn(fixture.pool, 'run').mockImplementation((items, now) => {
    runs.push(structuredClone(items));
    return real(items, now);
  });
  return runs;
}

const tsOf = (items: PoolItem[], vin: string) => items.filter((it) => it.vin === vin).flatMap((it) => it.readings.map((r) => r.ts));

describe('RulesRunner', () => {
  it('skips entries at or below the journal id each vehicle has applied, also after a restart', async () => {
    const stores = createMemoryStores();
    await stores.vehicles.upsert(VIN_A, bev(), T0);
    await stores.vehicles.upsert(VIN_B, bev(), T0);
    const first = await runner(stores);
    await first.applyEntries([
      entry(1, VIN_A, [parked(T0, 50)]),
      entry(2, VIN_B, [parked(T0, 50)]),
      entry(3, VIN_A, [parked(T0 + MIN, 15)]),
    ]);
    expect((await stores.ruleStates.load(VIN_A))?.journalId).toBe(3);
    expect((await stores.ruleStates.load(VIN_B))?.journalId).toBe(2);

    // a new runner loads the positions from the stores
    const runs = poolRuns();
    const second = await runner(stores);
    expect(await second.applyEntries([entry(1, VIN_A, [parked(T0, 50)]), entry(3, VIN_A, [parked(T0 + MIN, 15)])])).toEqual([]);
    expect(runs).toEqual([]);
    const changes = await second.applyEntries([
      entry(1, VIN_A, [parked(T0, 50)]),
      entry(2, VIN_B, [parked(T0, 50)]),
      entry(3, VIN_A, [parked(T0 + MIN, 15)]),
      entry(4, VIN_B, [parked(T0 + 2 * MIN, 10)]),
      entry(5, VIN_A, [parked(T0 + 3 * MIN, 14)]),
    ]);
    expect(runs).toHaveLength(1);
    expect(tsOf(runs[0], VIN_A)).toEqual([T0 + 3 * MIN]);
    expect(tsOf(runs[0], VIN_B)).toEqual([T0 + 2 * MIN]);
    // A's low charge was prompted by entry 3 and is not prompted again; B's is new
    expect(changes.filter((c) => c.prompt.kind === 'charging.low_soc').map((c) => [c.vin, c.step])).toEqual([[VIN_B, 'created']]);
    expect((await stores.ruleStates.load(VIN_A))?.journalId).toBe(5);
    expect((await stores.ruleStates.load(VIN_B))?.journalId).toBe(4);
  });

  it("applies a vehicle's readings in journal order across entries and calls, each vehicle up to its own last entry", async () => {
    const stores = createMemoryStores();
    await stores.vehicles.upsert(VIN_A, bev(), T0);
    const r = await runner(stores);
    const runs = poolRuns();
    // two calls without waiting in between, as two pipeline steps could be
    const one = r.applyEntries([
      entry(1, VIN_A, [parked(T0, 50), parked(T0 + MIN, 45)]),
      entry(2, VIN_B, [parked(T0, 70)]),
      entry(3, VIN_A, [parked(T0 + 2 * MIN, 40)]),
    ]);
    const two = r.applyEntries([entry(4, VIN_A, [parked(T0 + 3 * MIN, 35)]), entry(5, VIN_B, [parked(T0 + 3 * MIN, 65)])]);
    await Promise.all([one, two]);

    expect(runs).toHaveLength(2);
    expect(tsOf(runs[0], VIN_A)).toEqual([T0, T0 + MIN, T0 + 2 * MIN]);
    expect(tsOf(runs[0], VIN_B)).toEqual([T0]);
    // the second call starts from the state the first one produced
    const a2 = runs[1].find((it) => it.vin === VIN_A)!;
    expect(parseState(a2.state!)).toMatchObject({ lastTs: T0 + 2 * MIN, journalId: 3, latest: { [VSS.soc]: 40 } });
    expect(parseState(runs[1].find((it) => it.vin === VIN_B)!.state!)).toMatchObject({ lastTs: T0, journalId: 2 });
    // and applies this call's entries: each vehicle's last one goes into its new state
    expect([a2.journalId, runs[1].find((it) => it.vin === VIN_B)!.journalId]).toEqual([4, 5]);
    expect(await stores.ruleStates.load(VIN_A)).toMatchObject({ journalId: 4, lastTs: T0 + 3 * MIN, latest: { [VSS.soc]: 35 } });
    expect(await stores.ruleStates.load(VIN_B)).toMatchObject({ journalId: 5, latest: { [VSS.soc]: 65 } });
    expect(r.latest(VIN_A)?.[VSS.soc]).toBe(35);
    await r.applyEntries([entry(6, VIN_A, [parked(T0 + 4 * MIN, 30)])]);
    expect(r.latest(VIN_A)?.[VSS.soc]).toBe(30); // kept beside each new state
  });

  it('runs a service record posted while readings are in the pool after them, on the state they produced', async () => {
    const stores = createMemoryStores();
    await stores.vehicles.upsert(VIN_A, bev({ deliveryDate: '2025-12-01' }), T0);
    const r = await runner(stores);
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const real = fixture.pool.run.bind(fixture.pool);
    const inputs: PoolItem[] = [];
    vi.spyOn(fixture.pool, 'run').mockImplementation(async (items, now) => {
      const what = items[0].serviceRecords ? 'service' : 'readings';
      inputs.push(structuredClone(items[0]));
      order.push(`start ${what}`);
      if (what === 'readings') await gate;
      const res = await real(items, now);
      order.push(`end ${what}`);
      return res;
    });

    // 4,200 km: the first service (5,000 km) is upcoming
    const readings = r.applyEntries([entry(1, VIN_A, [parked(T0, 60, { [VSS.odometer]: 4200 })])]);
    await waitFor(() => order.includes('start readings'), { what: 'the readings to be in the pool' });
    const service = r.serviceRecord(VIN_A, { date: '2026-03-01', odometer: 4210, items: ['inspection'] });
    release();
    const [fromReadings, { changes: fromService, id }] = await Promise.all([readings, service]);
    // stored in the same transaction that applied it
    expect((await stores.vehicles.serviceRecords(VIN_A)).map((x) => x.id)).toEqual([id]);

    expect(order).toEqual(['start readings', 'end readings', 'start service', 'end service']);
    expect(parseState(inputs[1].state!)).toMatchObject({ journalId: 1, lastTs: T0, families: { maintenance: { cycle: 0, step: 0 } } });
    expect(inputs[1].journalId).toBe(1); // a visit applies no entry: the state keeps its last one
    const upcoming = fromReadings.find((c) => c.prompt.kind === 'maintenance.upcoming')!;
    expect(upcoming.step).toBe('created');
    // resolved by the visit (withdrawn from the HMI, which never got it)
    expect(fromService.map((c) => [c.promptId, c.step])).toEqual([[upcoming.promptId, 'withdrawn']]);
    expect((await stores.prompts.get(upcoming.promptId))?.status).toBe('resolved');
    expect(await stores.ruleStates.load(VIN_A)).toMatchObject({ journalId: 1, families: { maintenance: { cycle: 1 } } });
  });

  it('sweeps every registered vehicle, also those without rule state, and those known only to the rules', async () => {
    const stores = createMemoryStores();
    // more than one page of the vehicle list (1,000)
    const registered = Array.from({ length: 1003 }, (_, i) => `LSVAU2180N2${String(i).padStart(6, '0')}`);
    for (const vin of registered) await stores.vehicles.upsert(vin, bev({ deliveryDate: '2024-01-10' }), T0);
    const r = await runner(stores, { now: () => T0 });
    await r.applyEntries([entry(1, VIN_B, [parked(T0 - DAY, 70)])]); // not registered
    const runs = poolRuns();

    const changes = await r.sweep();

    const swept = runs.flat();
    expect(swept.every((it) => it.tick === true && it.readings.length === 0)).toBe(true);
    expect(swept.map((it) => it.vin).sort()).toEqual([...registered, VIN_B].sort());
    expect(swept.find((it) => it.vin === VIN_B)?.state?.journalId).toBe(1);
    // delivered two years ago and never seen: the first service has lapsed, from the sweep alone
    const last = registered[registered.length - 1];
    expect(changes.filter((c) => c.vin === last).map((c) => [c.prompt.kind, c.step])).toEqual([['maintenance.lapsed', 'created']]);
    expect(new Set(changes.filter((c) => c.prompt.kind === 'maintenance.lapsed').map((c) => c.vin)).size).toBe(registered.length);
    expect(await stores.ruleStates.load(last)).toMatchObject({ vin: last, families: { maintenance: { step: 5 } } });
    expect(r.knownVins()).toHaveLength(registered.length + 1);
  });

  describe('commits rule states, prompt changes, charging sessions and outbox rows in one transaction', () => {
    const HOOK = 'http://lifecycle.test/hook';
    // low charge (prompt), plugged in (resolved), unplugged at 40 % (a charging session)
    const step = () => entry(1, VIN_A, [parked(T0, 15), charging(T0 + MIN, 16), parked(T0 + 30 * MIN, 40)]);

    const failures: [string, (stores: Stores, armed: { on: boolean }) => Stores][] = [
      [
        'the outbox refuses the events',
        (stores, armed) => ({
          ...stores,
          outbox: {
            ...stores.outbox,
            enqueue: async (events, now) => {
              if (armed.on) throw new Error('outbox: disk full');
              await stores.outbox.enqueue(events, now);
            },
          },
        }),
      ],
      [
        'the transaction fails once all its work is done',
        (stores, armed) => ({
          ...stores,
          transaction: <T>(fn: () => Promise<T>): Promise<T> =>
            stores.transaction(async () => {
              const out = await fn();
              if (armed.on) throw new Error('commit failed');
              return out;
            }),
        }),
      ],
    ];

    it.each(failures)('%s: nothing of the step is stored, and a retry applies it', async (_, wrap) => {
      const stores = createMemoryStores();
      await stores.vehicles.upsert(VIN_A, bev(), T0);
      const armed = { on: true };
      const r = await runner(wrap(stores, armed), { webhookUrls: [HOOK] });

      await expect(r.applyEntries([step()])).rejects.toThrow(/disk full|commit failed/);
      expect((await stores.prompts.list({ vin: VIN_A, limit: 10 })).items).toEqual([]);
      expect(await stores.prompts.changesSince(0, undefined, 10)).toEqual([]);
      expect(await stores.ruleStates.load(VIN_A)).toBeUndefined();
      expect(await stores.outbox.pending()).toBe(0);
      expect(await stores.vehicles.chargingSessions(VIN_A, 0, T0 + DAY)).toEqual([]);
      expect(await stores.vehicles.segments(VIN_A)).toBeNull();
      expect(r.latest(VIN_A)).toBeUndefined();

      armed.on = false;
      const changes = await r.applyEntries([step()]);
      const low = changes.filter((c) => c.prompt.kind === 'charging.low_soc');
      expect(low.map((c) => c.step)).toEqual(['created', 'withdrawn']);
      expect((await stores.prompts.list({ vin: VIN_A, limit: 10 })).items.find((p) => p.kind === 'charging.low_soc')?.status).toBe(
        'resolved',
      );
      // one outbox row per prompt change and one for the vehicle's first segment assignment
      const rows = await stores.outbox.due(T0 + DAY, 100);
      expect(rows.map((e) => e.id).filter((id) => !id.startsWith('seg-'))).toHaveLength(changes.length);
      expect(rows.filter((e) => e.id === `seg-${VIN_A}-${T0 + DAY}`)).toHaveLength(1);
      expect(rows.every((e) => e.url === HOOK)).toBe(true);
      expect(await stores.vehicles.segments(VIN_A)).not.toBeNull();
      expect(await stores.vehicles.chargingSessions(VIN_A, 0, T0 + DAY)).toMatchObject([
        { start: T0 + MIN, end: T0 + 30 * MIN, endSoc: 40 },
      ]);
      expect(await stores.ruleStates.load(VIN_A)).toMatchObject({ journalId: 1, lastTs: T0 + 30 * MIN });
      expect(r.latest(VIN_A)?.[VSS.soc]).toBe(40);
    });

    it.each(failures)('%s after an earlier commit: the retry runs on the committed state, as a run that never failed', async (_, wrap) => {
      // the worker holds the state of the failed run (ahead of the commit); it must not be used
      const first = () => entry(1, VIN_A, [parked(T0, 60)]);
      const second = () => entry(2, VIN_A, [parked(T0 + MIN, 15), charging(T0 + 2 * MIN, 16)]);
      const outcome = async (fail: boolean) => {
        const stores = createMemoryStores();
        await stores.vehicles.upsert(VIN_A, bev(), T0);
        const armed = { on: false };
        const r = await runner(wrap(stores, armed), { webhookUrls: [HOOK] });
        await r.applyEntries([first()]);
        armed.on = fail;
        if (fail) await expect(r.applyEntries([second()])).rejects.toThrow(/disk full|commit failed/);
        armed.on = false;
        const changes = await r.applyEntries([second()]);
        return {
          changes: changes.map((c) => [c.prompt.kind, c.step]),
          state: await stores.ruleStates.load(VIN_A),
        };
      };
      const failed = await outcome(true);
      expect(failed.changes).toContainEqual(['charging.low_soc', 'created']);
      expect(failed).toEqual(await outcome(false));
    });

    it.each(failures)('%s: a service visit is neither stored nor applied, and a retry does both once', async (_, wrap) => {
      const stores = createMemoryStores();
      await stores.vehicles.upsert(VIN_A, bev(), T0);
      const armed = { on: true };
      const r = await runner(wrap(stores, armed), { webhookUrls: [HOOK] });
      await r.applyEntries([entry(1, VIN_A, [parked(T0, 60, { [VSS.odometer]: 4200 })])]).catch(() => undefined);
      armed.on = false;
      await r.applyEntries([entry(1, VIN_A, [parked(T0, 60, { [VSS.odometer]: 4200 })])]);
      armed.on = true;
      const visit = { date: '2026-03-01', odometer: 4210, items: ['inspection'] };
      await expect(r.serviceRecord(VIN_A, visit)).rejects.toThrow(/disk full|commit failed/);
      expect(await stores.vehicles.serviceRecords(VIN_A)).toEqual([]);
      expect(await stores.ruleStates.load(VIN_A)).toMatchObject({ families: { maintenance: { cycle: 0 } } });
      armed.on = false;
      const { id } = await r.serviceRecord(VIN_A, visit);
      expect(await stores.vehicles.serviceRecords(VIN_A)).toEqual([{ id, ...visit }]);
      expect(await stores.ruleStates.load(VIN_A)).toMatchObject({ families: { maintenance: { cycle: 1 } } });
    });
  });
});
