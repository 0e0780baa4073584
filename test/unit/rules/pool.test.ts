// The pool runs the compiled worker (dist/rules/worker.js): build it first when it is stale.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeFleet } from '../../../bench/rules.js';
import { distModule, PACKAGE_ROOT } from '../../../proto/paths.js';
import { VSS } from '../../../proto/signals.js';
import { DEFAULT_RULES_CONFIG, type RulesConfig } from '../../../rules/config.js';
import { createEngine } from '../../../rules/engine.js';
import { RulesPool, vinHash } from '../../../rules/pool.js';
import { parseState, toStateJson } from '../../../rules/state-json.js';
import type { RuleStateJson, VehicleRuleState } from '../../../rules/types.js';
import { packLane, runItem, unpackLane, type LaneItem } from '../../../rules/worker.js';
import { T0, VIN, clockAt, expectSameAsEngine, opened, profile, reading, soc } from './helpers.js';

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

beforeAll(() => {
  const worker = distModule('rules/worker.js');
  const src = Math.max(newestMtime(join(PACKAGE_ROOT, 'rules')), newestMtime(join(PACKAGE_ROOT, 'proto')));
  if (!existsSync(worker) || statSync(worker).mtimeMs < src) {
    // Errors elsewhere in the tree do not stop tsc from emitting; the file check below decides.
    try {
      execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: PACKAGE_ROOT, stdio: 'ignore' });
    } catch {
      /* emitted anyway */
    }
  }
  expect(existsSync(worker)).toBe(true);
}, 180_000);

const json = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

describe('lane packing', () => {
  it('round-trips readings, states, profiles, DTC lists and odd signals', () => {
    const items: LaneItem[] = [
      {
        vin: VIN,
        profile: profile(),
        tick: true,
        serviceRecords: [{ date: '2026-01-01', odometer: 5000, items: ['oil'] }],
        state: { vin: VIN, lastTs: 5, latest: {}, latestTs: 5, activeDtcs: [], families: { fault: { active: {}, occurrences: {} } } },
        journalId: 41,
        readings: [
          reading(T0, { ...soc(55.5, true), [VSS.chargePortType]: 'DC', [VSS.lowVoltageSystemState]: 'START' }, ['P0A80']),
          reading(T0 + 1, {}),
          reading(
            T0 + 2,
            { [VSS.voltage12v]: 12.31, ['Vehicle.Unknown' as typeof VSS.soc]: 'x', [VSS.lowVoltageSystemState]: 'BOGUS' as 'ON' },
            [],
          ),
        ],
      },
      { vin: 'WVWZZZ1JZXW000001', readings: [] },
    ];
    // main sends a state as the JSON text it keeps; the worker reads it back as the object
    const lane = packLane(items.map((it) => ({ ...it, state: it.state && toStateJson(it.state) })));
    expect(unpackLane(lane)).toEqual(json(items));
  });
});

describe('RulesPool', () => {
  let pool: RulesPool;
  afterAll(async () => {
    await pool?.close();
  });

  it('gives the same results as the engine in this thread, in item order', async () => {
    pool = new RulesPool({ threads: 2, config: DEFAULT_RULES_CONFIG });
    const engine = createEngine(DEFAULT_RULES_CONFIG);
    const fleet = makeFleet(40, 7);
    const poolStates = new Map<string, RuleStateJson>();
    const localStates = new Map<string, VehicleRuleState>();
    let events = 0;
    for (let run = 0; run < 6; run++) {
      const items: LaneItem[] = fleet.map((v, i) => ({
        vin: v.vin,
        profile: i % 9 === 0 ? undefined : v.profile,
        readings: Array.from({ length: 60 }, () => v.next()),
        tick: run % 2 === 1,
        serviceRecords: run === 3 && i % 5 === 0 ? [{ date: '2026-01-01', odometer: 1000, items: ['oil'] }] : undefined,
      }));
      const now = Math.max(...fleet.map((v) => v.time));
      const got = await pool.run(
        items.map((it) => ({ ...it, state: poolStates.get(it.vin) })),
        now,
      );
      const want = items.map((it) => runItem(engine, { ...it, state: localStates.get(it.vin) }, clockAt(now)));
      expect(got.map((r) => r.state.vin)).toEqual(items.map((it) => it.vin));
      expectSameAsEngine(got, want);
      got.forEach((r, i) => poolStates.set(items[i].vin, r.state));
      want.forEach((r, i) => localStates.set(items[i].vin, r.state));
      events += got.reduce((n, r) => n + r.events.length, 0);
    }
    expect(events).toBeGreaterThan(0); // the fleet did trigger detectors
    expect(pool.failures).toBe(0);
    expect(await pool.run([], T0)).toEqual([]);
  });

  it('returns each new state as JSON text with the item’s journal id written in, the pinned one too', async () => {
    const item = (journalId?: number, state?: RuleStateJson) => ({
      vin: VIN,
      state,
      journalId,
      profile: profile(),
      readings: [reading(T0, soc(45))],
    });
    const [first] = await pool.run([item(7)], T0);
    expect(first.state).toMatchObject({ vin: VIN, journalId: 7 });
    expect(parseState(first.state)).toMatchObject({ vin: VIN, journalId: 7, latest: { [VSS.soc]: 45 } });
    // pinned: the worker ran on the state it held, and wrote the new id into the new state
    const pinned = pool.pins.statesPinned;
    const [second] = await pool.run([item(9, first.state)], T0);
    expect(pool.pins.statesPinned).toBe(pinned + 1);
    expect(parseState(second.state).journalId).toBe(9);
    // no id given (a vehicle never journalled): none in the state
    const [third] = await pool.run([{ vin: 'WVWZZZ1JZXW000009', readings: [], tick: true }], T0);
    expect(third.state.journalId).toBeUndefined();
    expect(parseState(third.state)).not.toHaveProperty('journalId');
  });

  it('applies a new configuration to later runs', async () => {
    const run = (p: RulesPool) => p.run([{ vin: VIN, profile: profile(), readings: [reading(T0, soc(45))] }], T0);
    expect(opened((await run(pool))[0].events, 'charging.low_soc')).toEqual([]);
    const cfg: RulesConfig = json(DEFAULT_RULES_CONFIG);
    cfg.defaults.charging = { ...cfg.defaults.charging, lowSocPct: 50, rearmSocPct: 60 };
    pool.setConfig(cfg);
    expect(opened((await run(pool))[0].events, 'charging.low_soc')).toHaveLength(1);
  });

  it('shards by a stable VIN hash', () => {
    expect(vinHash(VIN)).toBe(vinHash(VIN));
    expect(vinHash(VIN)).not.toBe(vinHash('WVWZZZ1JZXW000001'));
  });
});
