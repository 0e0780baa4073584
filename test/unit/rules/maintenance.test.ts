import { describe, expect, it } from 'vitest';
import { VSS } from '../../../proto/signals.js';
import { parseRulesConfig, resolveModelConfig } from '../../../rules/config.js';
import { maintenanceConfigSchema, type MaintenanceConfig } from '../../../rules/config/maintenance.js';
import { maintenanceDetector, type MaintenanceState } from '../../../rules/detectors/maintenance.js';
import { DAY_MS, addMonthsUtc, isoDate, parseIsoDate, utcDay } from '../../../rules/time.js';
import type { DetectorContext, PromptDraft, RuleEvent, Signals, Vehicle, VehicleView } from '../../../rules/types.js';

const VIN = 'LSVAU2180N2183294';
const DELIVERY = Date.parse('2026-01-15T00:00:00Z');
const FIRST_DUE_TS = addMonthsUtc(DELIVERY, 6); // 2026-07-15
const cfg = maintenanceConfigSchema.parse({});

function profile(powertrain: Vehicle['powertrain'] = 'ICE'): Vehicle {
  return { vin: VIN, model: 'M1', powertrain, deliveryDate: '2026-01-15', dealerId: 'D1', locale: 'en', vehicleType: 'passenger' };
}

function ctx(
  opts: { p?: Vehicle | null; view?: Partial<VehicleView>; latest?: Signals; config?: MaintenanceConfig } = {},
): DetectorContext<MaintenanceConfig> {
  return {
    vin: VIN,
    profile: opts.p === null ? undefined : (opts.p ?? profile()),
    config: opts.config ?? cfg,
    clock: { now: () => 0 },
    latest: opts.latest ?? {},
    activeDtcs: opts.view?.activeDtcs ?? [],
    view: { activeDtcs: [], ...opts.view },
  };
}

const opens = (events: RuleEvent[]): PromptDraft[] => events.flatMap((e) => (e.type === 'open' ? [e.prompt] : []));
const kinds = (events: RuleEvent[]) =>
  opens(events).map((p) => (p.kind === 'maintenance.lapsed' ? `lapsed${p.params.level}` : p.kind.slice(12)));

/** Feed readings (ts, odometer) and ticks; return all events and the final state. */
function run(
  steps: ({ ts: number; odo: number } | { tick: number })[],
  c = ctx(),
  state: MaintenanceState = maintenanceDetector.initial(),
) {
  const events: RuleEvent[] = [];
  for (const s of steps) {
    const r =
      'tick' in s
        ? maintenanceDetector.onTick!(state, s.tick, c)
        : maintenanceDetector.onReading(state, { vin: VIN, ts: s.ts, signals: { [VSS.odometer]: s.odo } }, c);
    state = r.state;
    events.push(...r.events);
  }
  return { state, events };
}

describe('maintenance config', () => {
  it('parses {} to the docs/domain.md defaults', () => {
    expect(cfg.firstService).toEqual({ km: 5000, months: 6 });
    expect(cfg.interval).toEqual({ ICE: { km: 10000, months: 12 }, BEV: { km: 20000, months: 24 }, PHEV: { km: 10000, months: 12 } });
    expect(cfg.upcoming).toEqual({ km: 1000, days: 30 });
    expect(cfg.overdue).toEqual({ km: 1000, days: 30 });
    expect(cfg.lapsedMonths).toEqual([3, 5, 7]);
    expect(cfg.followupDays).toBe(3);
  });
  it('takes a per-model schedule from the rules configuration', () => {
    const parsed = parseRulesConfig(
      JSON.stringify({ models: { M2: { maintenance: { firstService: { km: 3000 }, interval: { BEV: { months: 12 } } } } } }),
    );
    if (!parsed.ok) throw new Error(parsed.error);
    const m2 = resolveModelConfig(parsed.config, 'M2').maintenance;
    expect(m2.firstService).toEqual({ km: 3000, months: 6 });
    expect(m2.interval.BEV).toEqual({ km: 20000, months: 12 });
    expect(resolveModelConfig(parsed.config, 'M1').maintenance).toEqual(cfg);
    const c = ctx({ config: m2 });
    expect(kinds(run([{ ts: DELIVERY + DAY_MS, odo: 2000 }], c).events)).toEqual(['upcoming']);
    const bad = parseRulesConfig(JSON.stringify({ models: { M2: { maintenance: { lapsedMonths: [7, 5, 3] } } } }));
    expect(bad.ok).toBe(false);
  });

  it('fills the rest of a partial nested override and rejects bad values', () => {
    const c = maintenanceConfigSchema.parse({ interval: { BEV: { km: 30000 } } });
    expect(c.interval.BEV).toEqual({ km: 30000, months: 24 });
    expect(c.interval.ICE).toEqual({ km: 10000, months: 12 });
    expect(maintenanceConfigSchema.safeParse({ lapsedMonths: [5, 3, 7] }).success).toBe(false);
    expect(maintenanceConfigSchema.safeParse({ firstService: { km: -1 } }).success).toBe(false);
    expect(maintenanceConfigSchema.safeParse({ nonsense: 1 }).success).toBe(false);
  });
});

describe('maintenance ladder thresholds (first service at 5,000 km / 6 months)', () => {
  const early = DELIVERY + 10 * DAY_MS;
  it.each([
    [3999, []],
    [4000, ['upcoming']],
    [4001, ['upcoming']],
    [4999, ['upcoming']],
    [5000, ['due']],
    [5999, ['due']],
    [6000, ['overdue']],
  ])('odometer %i km from a fresh state -> %j', (odo, expected) => {
    expect(kinds(run([{ ts: early, odo }]).events)).toEqual(expected);
  });

  it.each([
    [31, []],
    [30, ['upcoming']],
    [29, ['upcoming']],
    [0, ['due']],
  ])('%i days before the due date -> %j', (days, expected) => {
    expect(kinds(run([{ tick: FIRST_DUE_TS - days * DAY_MS }]).events)).toEqual(expected);
  });

  it('fires a date-based step from a reading as well as from the tick', () => {
    expect(kinds(run([{ ts: FIRST_DUE_TS - 30 * DAY_MS - 1, odo: 100 }]).events)).toEqual([]);
    expect(kinds(run([{ ts: FIRST_DUE_TS - 30 * DAY_MS, odo: 100 }]).events)).toEqual(['upcoming']);
    expect(kinds(run([{ ts: FIRST_DUE_TS, odo: 100 }]).events)).toEqual(['due']);
  });

  it.each([
    [29, ['due']],
    [30, ['due', 'overdue']],
    [31, ['due', 'overdue']],
  ])('%i days after a date-reached due point -> %j', (days, expected) => {
    const { events } = run([{ tick: FIRST_DUE_TS }, { tick: FIRST_DUE_TS + days * DAY_MS }]);
    expect(kinds(events)).toEqual(expected);
  });

  it.each([
    [3, -1, 'overdue'],
    [3, 0, 'lapsed1'],
    [5, -1, 'lapsed1'],
    [5, 0, 'lapsed2'],
    [7, -1, 'lapsed2'],
    [7, 0, 'lapsed3'],
  ])('at %i months after the due point %+i ms the furthest step is %s', (months, delta, expected) => {
    const { state } = run([{ tick: FIRST_DUE_TS }, { tick: addMonthsUtc(FIRST_DUE_TS, months) + delta }]);
    expect(state.step).toBe(['upcoming', 'due', 'overdue', 'lapsed1', 'lapsed2', 'lapsed3'].indexOf(expected));
  });

  it('walks a parked car through the whole ladder on daily ticks, each step exactly once', () => {
    const ticks = [];
    for (let t = DELIVERY; t <= addMonthsUtc(FIRST_DUE_TS, 9); t += DAY_MS) ticks.push({ tick: t });
    const { events } = run(ticks);
    expect(kinds(events)).toEqual(['upcoming', 'due', 'overdue', 'lapsed1', 'lapsed2', 'lapsed3']);
    const prompts = opens(events);
    expect(prompts.map((p) => p.ts)).toEqual([
      FIRST_DUE_TS - 30 * DAY_MS,
      FIRST_DUE_TS,
      FIRST_DUE_TS + 30 * DAY_MS,
      addMonthsUtc(FIRST_DUE_TS, 3),
      addMonthsUtc(FIRST_DUE_TS, 5),
      addMonthsUtc(FIRST_DUE_TS, 7),
    ]);
    expect(prompts.map((p) => p.audience)).toEqual([
      ['hmi', 'advisor'],
      ['hmi', 'advisor'],
      ['hmi', 'advisor'],
      ['lifecycle'],
      ['lifecycle'],
      ['lifecycle', 'advisor'],
    ]);
    expect(new Set(prompts.map((p) => p.dedupKey)).size).toBe(6);
    expect(prompts.every((p) => p.dedupKey.includes(':c0'))).toBe(true);
    // Each later step supersedes (resolves) the one before.
    const resolves = events.filter((e) => e.type === 'resolve');
    expect(resolves.map((e) => (e.type === 'resolve' ? e.dedupKey : ''))).toEqual(prompts.slice(0, 5).map((p) => p.dedupKey));
  });

  it('fires km steps once per cycle however many readings arrive', () => {
    const readings = [];
    for (let odo = 3900; odo <= 6100; odo += 10) readings.push({ ts: DELIVERY + DAY_MS + odo * 1000, odo });
    expect(kinds(run(readings).events)).toEqual(['upcoming', 'due', 'overdue']);
  });

  it('counts overdue km from the odometer at a date-reached due point', () => {
    const { events } = run([
      { ts: FIRST_DUE_TS - 60 * DAY_MS, odo: 2000 },
      { tick: FIRST_DUE_TS },
      { ts: FIRST_DUE_TS + DAY_MS, odo: 2999 },
      { ts: FIRST_DUE_TS + 2 * DAY_MS, odo: 3000 },
    ]);
    expect(kinds(events)).toEqual(['due', 'overdue']);
    expect(opens(events)[1].params).toMatchObject({ kmPast: 1000, daysPast: 2 });
  });

  it('counts lapsed months from a km-reached due point', () => {
    const dueAt = DELIVERY + 40 * DAY_MS;
    const { events } = run([{ ts: dueAt, odo: 5000 }, { tick: addMonthsUtc(dueAt, 3) - 1 }, { tick: addMonthsUtc(dueAt, 3) }]);
    expect(kinds(events)).toEqual(['due', 'overdue', 'lapsed1']);
    expect(opens(events)[2].params).toMatchObject({ level: 1, months: 3, dueReached: '2026-02-24' });
  });

  it('never moves backwards on a late reading', () => {
    const { events, state } = run([{ tick: FIRST_DUE_TS }, { ts: DELIVERY + DAY_MS, odo: 100 }]);
    expect(kinds(events)).toEqual(['due']);
    expect(state.evalTs).toBe(FIRST_DUE_TS);
  });
});

describe('maintenance schedule per powertrain and service records', () => {
  const visit = Date.parse('2026-06-01T00:00:00Z');
  const record = { date: '2026-06-01', odometer: 5100, items: ['engine_oil'] };

  it.each([
    ['ICE', 15100, addMonthsUtc(visit, 12)],
    ['PHEV', 15100, addMonthsUtc(visit, 12)],
    ['BEV', 25100, addMonthsUtc(visit, 24)],
  ] as const)('%s: after a visit at 5,100 km the next due point is %i km', (pt, dueKm, dueTs) => {
    const c = ctx({ p: profile(pt) });
    let { state, events } = run([{ ts: visit - DAY_MS, odo: 5050 }], c);
    expect(kinds(events)).toEqual(['due']);
    const r = maintenanceDetector.onServiceRecord!(state, record, c);
    expect(r.events).toEqual([{ type: 'resolve', dedupKey: `${VIN}:maintenance.due:c0`, ts: visit, reason: 'serviced' }]);
    state = r.state;
    expect(state.cycle).toBe(1);
    ({ events } = run(
      [
        { ts: visit + 10 * DAY_MS, odo: dueKm - 1001 },
        { ts: visit + 11 * DAY_MS, odo: dueKm - 1000 },
      ],
      c,
      state,
    ));
    expect(opens(events).map((p) => [p.kind, p.dedupKey, p.params.dueKm, p.params.dueDate, p.params.service])).toEqual([
      ['maintenance.upcoming', `${VIN}:maintenance.upcoming:c1`, dueKm, new Date(dueTs).toISOString().slice(0, 10), 'regular'],
    ]);
  });

  it('schedules the follow-up a few days after the visit, once, from the fleet clock', () => {
    const c = ctx();
    let state = run([{ ts: visit - DAY_MS, odo: 4900 }], c).state;
    state = maintenanceDetector.onServiceRecord!(state, record, c).state;
    const { events } = run([{ tick: visit + 2 * DAY_MS }, { tick: visit + 3 * DAY_MS }, { tick: visit + 4 * DAY_MS }], c, state);
    const f = opens(events);
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({
      kind: 'maintenance.followup',
      dedupKey: `${VIN}:maintenance.followup:c1`,
      audience: ['lifecycle'],
      ts: visit + 3 * DAY_MS,
      params: { serviceDate: '2026-06-01', odometer: 5100, items: ['engine_oil'] },
    });
  });

  it('skips a follow-up that would be weeks late (visit recorded long afterwards)', () => {
    const c = ctx();
    const state = maintenanceDetector.onServiceRecord!(maintenanceDetector.initial(), record, c).state;
    const { events, state: after } = run([{ tick: visit + 40 * DAY_MS }], c, state);
    expect(opens(events).filter((p) => p.kind === 'maintenance.followup')).toEqual([]);
    expect(after.followup).toBeUndefined();
  });

  it('ignores a visit older than the current cycle or repeated, and rejects a bad one', () => {
    const c = ctx();
    const s1 = maintenanceDetector.onServiceRecord!(maintenanceDetector.initial(), record, c).state;
    expect(maintenanceDetector.onServiceRecord!(s1, record, c)).toEqual({ state: s1, events: [] });
    expect(maintenanceDetector.onServiceRecord!(s1, { ...record, date: '2026-05-01' }, c)).toEqual({ state: s1, events: [] });
    expect(() => maintenanceDetector.onServiceRecord!(s1, { ...record, date: 'yesterday' }, c)).toThrow(/ISO date/);
    expect(() => maintenanceDetector.onServiceRecord!(s1, { ...record, date: '2026-07-01', odometer: -5 }, c)).toThrow(/odometer/);
  });
});

describe('maintenance context', () => {
  it('waits without a profile, then starts once the profile is known', () => {
    const none = run([{ ts: DELIVERY + DAY_MS, odo: 4500 }, { tick: FIRST_DUE_TS }], ctx({ p: null }));
    expect(none.events).toEqual([]);
    expect(kinds(run([{ tick: FIRST_DUE_TS }], ctx(), none.state).events)).toEqual(['due']);
  });

  it('builds the item list from the schedule plus DTCs, a weak 12 V battery and low battery health', () => {
    const c = ctx({ p: profile('BEV'), view: { activeDtcs: ['P0A80'], lastVoltage12v: 11.9, lastSoh: 82 } });
    const [p] = opens(run([{ ts: DELIVERY + DAY_MS, odo: 4000 }], c).events);
    expect(p.params.items).toEqual([...cfg.items.BEV, 'dtc:P0A80', 'battery_12v_test', 'hv_battery_health_check']);
    expect(p.evidence).toMatchObject({ odometer: 4000, activeDtcs: ['P0A80'], voltage12v: 11.9, soh: 82 });
    expect(p.params).toMatchObject({ kmRemaining: 1000, dueKm: 5000, dueDate: '2026-07-15', service: 'first' });
    const healthy = ctx({ p: profile('ICE'), view: { activeDtcs: [], lastVoltage12v: 12.6, lastSoh: 82 } });
    expect(opens(run([{ ts: DELIVERY + DAY_MS, odo: 4000 }], healthy).events)[0].params.items).toEqual(cfg.items.ICE);
  });

  it('survives a JSON round trip of its state mid-cycle', () => {
    const c = ctx();
    const a = run([{ ts: DELIVERY + DAY_MS, odo: 4200 }], c);
    const restored = JSON.parse(JSON.stringify(a.state)) as MaintenanceState;
    expect(run([{ ts: DELIVERY + 2 * DAY_MS, odo: 4300 }], c, restored).events).toEqual([]);
    expect(kinds(run([{ ts: DELIVERY + 3 * DAY_MS, odo: 5000 }], c, restored).events)).toEqual(['due']);
  });
});

describe('rules/time', () => {
  it.each([
    ['2026-01-31T10:00:00.000Z', 1, '2026-02-28T10:00:00.000Z'],
    ['2028-01-31T00:00:00.000Z', 1, '2028-02-29T00:00:00.000Z'],
    ['2026-08-10T00:00:00.000Z', 7, '2027-03-10T00:00:00.000Z'],
    ['2026-03-31T00:00:00.000Z', -1, '2026-02-28T00:00:00.000Z'],
    ['2026-01-15T00:00:00.000Z', 36, '2029-01-15T00:00:00.000Z'],
  ])('%s + %i months = %s (UTC, clamped to the month end)', (from, months, to) => {
    expect(new Date(addMonthsUtc(Date.parse(from), months)).toISOString()).toBe(to);
  });
  it('parses ISO dates as UTC and rejects anything else', () => {
    expect(parseIsoDate('2026-01-15')).toBe(Date.UTC(2026, 0, 15));
    expect(isoDate(parseIsoDate('2026-01-15T23:59:59Z'))).toBe('2026-01-15');
    expect(utcDay(Date.UTC(1970, 0, 2, 23))).toBe(1);
    expect(() => parseIsoDate('15/01/2026')).toThrow(/not an ISO date/);
    expect(() => parseIsoDate('2026-13-45')).toThrow(/not an ISO date/);
  });
});
