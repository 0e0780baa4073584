// Vehicle state pinned to its lane's worker (rules/pool.ts): after the first run only readings
// cross, and every case where the worker may hold another state than the committed one (a commit
// rolled back, a state reloaded from the store, a worker restarted, a profile or config change)
// still gives the in-thread engine's results. The pool runs the compiled worker (dist/).
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeFleet, type SimVehicle } from '../../../bench/rules.js';
import { DEFAULT_RULES_CONFIG, type RulesConfig } from '../../../rules/config.js';
import { createEngine, type Engine } from '../../../rules/engine.js';
import { RulesPool, type PoolResult } from '../../../rules/pool.js';
import type { RuleStateJson, VehicleRuleState } from '../../../rules/types.js';
import { runItem, type LaneItem } from '../../../rules/worker.js';
import { mulberry32 } from '../../../simulator/rng.js';
import { ensureWorkerBuilt } from '../pipeline/harness.js';
import { clockAt, expectSameAsEngine } from './helpers.js';

const json = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

beforeAll(() => ensureWorkerBuilt(), 180_000);

let pool: RulesPool | undefined;
afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

/** The pool and the in-thread engine side by side, each with its own committed states. */
class Twin {
  readonly pool: RulesPool;
  engine: Engine;
  readonly poolStates = new Map<string, RuleStateJson>();
  readonly localStates = new Map<string, VehicleRuleState>();

  constructor(threads: number, config: RulesConfig = DEFAULT_RULES_CONFIG) {
    this.pool = pool = new RulesPool({ threads, config });
    this.engine = createEngine(config);
  }

  setConfig(c: RulesConfig): void {
    this.pool.setConfig(c);
    this.engine = createEngine(c);
  }

  /** Run both on their committed states; the results must agree. Commits unless told not to. */
  async run(items: LaneItem[], now: number, commit = true): Promise<PoolResult[]> {
    const got = await this.pool.run(
      items.map((it) => ({ ...it, state: this.poolStates.get(it.vin) })),
      now,
    );
    const want = items.map((it) => runItem(this.engine, { ...it, state: this.localStates.get(it.vin) }, clockAt(now)));
    expectSameAsEngine(got, want);
    if (commit) {
      got.forEach((r, i) => this.poolStates.set(items[i].vin, r.state));
      want.forEach((r, i) => this.localStates.set(items[i].vin, r.state));
    }
    return got;
  }
}

function batch(fleet: SimVehicle[], n: number, o: { tick?: boolean } = {}): { items: LaneItem[]; now: number } {
  const items = fleet.map((v) => ({ vin: v.vin, profile: v.profile, readings: Array.from({ length: n }, () => v.next()), tick: o.tick }));
  return { items, now: Math.max(...fleet.map((v) => v.time)) };
}

describe('RulesPool pinned states', () => {
  it('sends a vehicle state once; later runs send only readings', async () => {
    const t = new Twin(2);
    const fleet = makeFleet(30, 3);
    const first = batch(fleet, 40);
    await t.run(first.items, first.now);
    expect(t.pool.pins).toMatchObject({ statesSent: 0, statesPinned: 0, profilesSent: 30, profilesPinned: 0 });
    for (let k = 0; k < 3; k++) {
      const b = batch(fleet, 40, { tick: k === 1 });
      await t.run(b.items, b.now);
    }
    expect(t.pool.pins).toMatchObject({ statesSent: 0, statesPinned: 90, profilesSent: 30, profilesPinned: 90, resent: 0 });
    expect(t.pool.failures).toBe(0);
  });

  it('after a rolled-back commit, the retry runs on the committed state, not the worker’s newer one', async () => {
    const t = new Twin(2);
    const fleet = makeFleet(20, 4);
    const a = batch(fleet, 50);
    await t.run(a.items, a.now);
    const b = batch(fleet, 50);
    const discarded = await t.run(b.items, b.now, false); // the commit failed: states stay at a
    const sent = t.pool.pins.statesSent;
    const retried = await t.run(b.items, b.now); // the same batch again
    expect(json(retried)).toEqual(json(discarded));
    expect(t.pool.pins.statesSent - sent).toBe(20); // each committed state sent in full again
    const c = batch(fleet, 50);
    await t.run(c.items, c.now);
    expect(t.pool.pins.statesSent - sent).toBe(20); // and pinned again after that
  });

  it('sends a state again that was reloaded from the store (cluster evict, restart)', async () => {
    const t = new Twin(1);
    const fleet = makeFleet(10, 5);
    const a = batch(fleet, 30);
    await t.run(a.items, a.now);
    for (const v of fleet.slice(0, 4)) t.poolStates.set(v.vin, json(t.poolStates.get(v.vin)!));
    const b = batch(fleet, 30);
    await t.run(b.items, b.now);
    expect(t.pool.pins).toMatchObject({ statesSent: 4, statesPinned: 6 });
  });

  it('recovers from a worker that was terminated: its replacement reports the states missing', async () => {
    const t = new Twin(2);
    const fleet = makeFleet(40, 6);
    const a = batch(fleet, 30);
    await t.run(a.items, a.now);
    await Promise.all(t.pool.threads.map((w) => w.terminate()));
    const b = batch(fleet, 30);
    await t.run(b.items, b.now);
    // Piscina handled the exit before terminate() resolved: the replacements got the tasks
    expect(t.pool.pins.resent).toBe(40);
    expect(t.pool.failures).toBe(0);
    const c = batch(fleet, 30);
    await t.run(c.items, c.now);
  });

  it('sees a profile changed in place (the same object) and a new configuration', async () => {
    const t = new Twin(2);
    const fleet = makeFleet(12, 8);
    const a = batch(fleet, 40);
    await t.run(a.items, a.now);
    for (const v of fleet.slice(0, 6)) {
      v.profile.model = v.profile.model === 'Classic' ? 'Aurora' : 'Classic';
      v.profile.quietHours = { start: '21:00', end: '06:00' };
    }
    const b = batch(fleet, 40);
    await t.run(b.items, b.now);
    expect(t.pool.pins.profilesSent).toBe(12 + 6);
    const cfg = json(DEFAULT_RULES_CONFIG);
    cfg.defaults.charging = { ...cfg.defaults.charging, lowSocPct: 70, rearmSocPct: 80 };
    t.setConfig(cfg);
    const c = batch(fleet, 40, { tick: true });
    await t.run(c.items, c.now);
  });

  it('agrees with the in-thread engine over a seeded random sequence of runs, rollbacks, reloads, restarts and config changes', async () => {
    const rnd = mulberry32(2024);
    const t = new Twin(3);
    const fleet = makeFleet(90, 9);
    const alt = json(DEFAULT_RULES_CONFIG);
    alt.defaults.charging = { ...alt.defaults.charging, lowSocPct: 60, rearmSocPct: 70 };
    let pending: { items: LaneItem[]; now: number } | undefined;
    let events = 0;
    for (let run = 0; run < 40; run++) {
      const x = rnd();
      if (x < 0.06) t.setConfig(rnd() < 0.5 ? alt : DEFAULT_RULES_CONFIG);
      else if (x < 0.1) await t.pool.threads[Math.floor(rnd() * 3)]?.terminate();
      else if (x < 0.16) for (const vin of t.poolStates.keys()) if (rnd() < 0.3) t.poolStates.set(vin, json(t.poolStates.get(vin)!));
      let b = pending;
      if (!b) {
        const some = fleet.filter(() => rnd() < 0.6);
        const items = some.map((v) => ({
          vin: v.vin,
          profile: rnd() < 0.1 ? undefined : v.profile,
          readings: Array.from({ length: 1 + Math.floor(rnd() * 40) }, () => v.next()),
          tick: rnd() < 0.2,
        }));
        b = { items, now: Math.max(...fleet.map((v) => v.time)) };
      }
      const rollBack = rnd() < 0.2;
      pending = rollBack ? b : undefined; // retried next round, as the pipeline does
      const got = await t.run(b.items, b.now, !rollBack);
      events += got.reduce((n, r) => n + r.events.length, 0);
    }
    expect(events).toBeGreaterThan(0);
    expect(t.pool.pins.statesPinned).toBeGreaterThan(0);
    expect(t.pool.pins.statesSent).toBeGreaterThan(0);
  });
});
