import { describe, expect, it } from 'vitest';
import { VSS } from '../../../proto/signals.js';
import { usageConfigSchema, type UsageConfig } from '../../../rules/config/usage.js';
import { computeSegments, usageDetector, type UsageState } from '../../../rules/detectors/usage.js';
import { DAY_MS, addMonthsUtc } from '../../../rules/time.js';
import type { DetectorContext, PromptDraft, RuleEvent, Segments, Signals, Vehicle } from '../../../rules/types.js';

const VIN = 'LSVAU2180N2183294';
const DELIVERY = Date.parse('2026-01-15T00:00:00Z');
const HOUR = 3_600_000;
const cfg = usageConfigSchema.parse({});

function profile(vehicleType: Vehicle['vehicleType'] = 'passenger'): Vehicle {
  return { vin: VIN, model: 'M1', powertrain: 'BEV', deliveryDate: '2026-01-15', dealerId: 'D1', locale: 'en', vehicleType };
}

function ctx(latest: Signals = {}, p: Vehicle | null = profile(), view: { lastVoltage12v?: number } = {}): DetectorContext<UsageConfig> {
  return {
    vin: VIN,
    profile: p ?? undefined,
    config: cfg,
    clock: { now: () => 0 },
    latest,
    activeDtcs: [],
    view: { activeDtcs: [], ...view },
  };
}

const opens = (events: RuleEvent[]): PromptDraft[] => events.flatMap((e) => (e.type === 'open' ? [e.prompt] : []));
const segs = (events: RuleEvent[]): Segments[] => events.flatMap((e) => (e.type === 'segments' ? [e.segments] : []));

type Step = { ts: number; odo?: number; on?: boolean; speed?: number } | { tick: number };

/** A simple vehicle: latest signals carry over between readings, as the engine merges them. */
function run(steps: Step[], p: Vehicle | null = profile(), state: UsageState = usageDetector.initial(), view = {}) {
  const events: RuleEvent[] = [];
  let latest: Signals = {};
  for (const s of steps) {
    let r;
    if ('tick' in s) r = usageDetector.onTick!(state, s.tick, ctx(latest, p, view));
    else {
      const signals: Signals = {};
      if (s.odo !== undefined) signals[VSS.odometer] = s.odo;
      if (s.on !== undefined) signals[VSS.lowVoltageSystemState] = s.on ? 'ON' : 'OFF';
      if (s.speed !== undefined) signals[VSS.speed] = s.speed;
      latest = { ...latest, ...signals };
      r = usageDetector.onReading(state, { vin: VIN, ts: s.ts, signals }, ctx(latest, p, view));
    }
    state = r.state;
    events.push(...r.events);
  }
  return { state, events };
}

/** One trip: ignition on, drive `km` over `minutes` with a sample every 5 minutes, ignition off. */
function trip(start: number, odo: number, km: number, minutes = 30): Step[] {
  const steps: Step[] = [{ ts: start, odo, on: true, speed: 0 }];
  for (let m = 5; m < minutes; m += 5) steps.push({ ts: start + m * 60_000, odo: odo + (km * m) / minutes, speed: 50 });
  steps.push({ ts: start + minutes * 60_000, odo: odo + km, on: false, speed: 0 });
  return steps;
}

describe('usage config', () => {
  it('parses {} to the docs/domain.md defaults and keeps partial overrides whole', () => {
    expect(cfg.stage).toEqual({ newOwnerDays: 30, breakInKm: 1500, upgradeMonths: 36, upgradeKm: 100000 });
    expect(cfg.activity).toMatchObject({ activeDays: 7, declineWindowDays: 30, declineRatio: 0.5, dormantDays: 30, lostDays: 90 });
    expect(cfg.maturity).toEqual({ noviceMonths: 3, noviceKm: 3000, skilledMonths: 12, skilledKm: 20000 });
    expect(cfg.dormantVehicleDays).toBe(14);
    expect(usageConfigSchema.parse({ activity: { dormantDays: 21 } }).activity.lostDays).toBe(90);
    expect(usageConfigSchema.safeParse({ activity: { dormantDays: 120 } }).success).toBe(false);
    expect(usageConfigSchema.safeParse({ historyDays: 10 }).success).toBe(false);
  });
});

describe('segments at and around each threshold', () => {
  /** Segments of a vehicle with a reading at `ts` (driving) and the given odometer. */
  const at = (ts: number, odo: number, evalTs = ts): Segments | undefined => {
    const { state } = run([{ ts, odo, on: true }]);
    return computeSegments(state, evalTs, ctx({}, profile()));
  };
  it.each([
    [29, 100, 'new_owner'],
    [30, 100, 'break_in'],
    [30, 1499, 'break_in'],
    [30, 1500, 'active_owner'],
    [10, 1500, 'new_owner'],
    [400, 99_999, 'active_owner'],
    [400, 100_000, 'upgrade_window'],
  ])('day %i after delivery at %i km: stage %s', (day, odo, stage) => {
    expect(at(DELIVERY + day * DAY_MS, odo)?.stage).toBe(stage);
  });
  it('enters the upgrade window at exactly 36 months of ownership', () => {
    expect(at(addMonthsUtc(DELIVERY, 36) - 1, 50_000)?.stage).toBe('active_owner');
    expect(at(addMonthsUtc(DELIVERY, 36), 50_000)?.stage).toBe('upgrade_window');
  });
  it.each([
    [2, 10_000, 'novice'],
    [3, 2_999, 'novice'],
    [3, 3_000, 'skilled'],
    [11, 30_000, 'skilled'],
    [12, 19_999, 'skilled'],
    [12, 20_000, 'veteran'],
  ])('%i months and %i km: maturity %s', (months, odo, maturity) => {
    expect(at(addMonthsUtc(DELIVERY, months), odo)?.maturity).toBe(maturity);
  });
  it.each([
    [7 * DAY_MS - 1, 'active'],
    [7 * DAY_MS, 'declining'],
    [30 * DAY_MS - 1, 'declining'],
    [30 * DAY_MS, 'dormant'],
    [90 * DAY_MS - 1, 'dormant'],
    [90 * DAY_MS, 'lost'],
  ])('%i ms after the last drive (and last telemetry): activity %s', (gap, activity) => {
    const t = DELIVERY + 40 * DAY_MS;
    expect(at(t, 2000, t + gap)?.activity).toBe(activity);
  });
  it('has no segments without a profile or before any telemetry', () => {
    expect(run([{ ts: DELIVERY, odo: 1, on: true }], null).events).toEqual([]);
    expect(run([{ tick: DELIVERY + DAY_MS }]).events).toEqual([]);
  });
});

describe('activity from distance history', () => {
  it('declines when the last 30 days fall under half the own average, and recovers', () => {
    const steps: Step[] = [];
    let odo = 0;
    // 70 days at 60 km/day, then 30 days at 10 km/day, then back to 60 km/day.
    for (let d = 0; d < 130; d++) {
      const km = d >= 70 && d < 100 ? 10 : 60;
      steps.push(...trip(DELIVERY + d * DAY_MS + 8 * HOUR, odo, km), { tick: DELIVERY + (d + 1) * DAY_MS });
      odo += km;
    }
    const { events, state } = run(steps);
    const activities = segs(events).map((s) => s.activity);
    expect(activities[0]).toBe('active');
    expect(activities).toContain('declining');
    expect(activities[activities.length - 1]).toBe('active');
    const declinedAt = opens(events).find((p) => p.kind === 'usage.segment_changed' && p.params.activity === 'declining')!;
    const day = Math.floor((declinedAt.ts - DELIVERY) / DAY_MS);
    expect(day).toBeGreaterThan(70);
    expect(day).toBeLessThan(100);
    // State stays compact: a bounded ring of days, JSON-serialisable.
    expect(state.days.length).toBeLessThanOrEqual(cfg.historyDays);
    expect(JSON.stringify(state).length).toBeLessThan(4000);
    expect(state.totalKm).toBe(odo);
  });

  it('counts distance and driving time per day, ignoring odometer rebases', () => {
    const { state } = run([
      ...trip(DELIVERY + 8 * HOUR, 100, 20, 40),
      { ts: DELIVERY + 9 * HOUR, odo: 90_000 },
      { ts: DELIVERY + 10 * HOUR, odo: 90_005, speed: 30 },
    ]);
    expect(state.days).toEqual([[Math.floor(DELIVERY / DAY_MS), 25, 40]]);
  });
});

describe('segment_changed and dormant_vehicle', () => {
  it('emits segments and one prompt per transition, with from/to evidence', () => {
    const { events } = run([...trip(DELIVERY + HOUR, 10, 40), ...trip(DELIVERY + 2 * HOUR, 50, 40), { tick: DELIVERY + 30 * DAY_MS }]);
    const prompts = opens(events).filter((p) => p.kind === 'usage.segment_changed');
    expect(segs(events)).toEqual([
      { stage: 'new_owner', activity: 'active', maturity: 'novice' },
      { stage: 'break_in', activity: 'declining', maturity: 'novice' },
    ]);
    expect(prompts.map((p) => p.params)).toEqual([
      {
        stage: 'new_owner',
        activity: 'active',
        maturity: 'novice',
        fromStage: 'none',
        fromActivity: 'none',
        fromMaturity: 'none',
        changed: ['stage', 'activity', 'maturity'],
      },
      {
        stage: 'break_in',
        activity: 'declining',
        maturity: 'novice',
        fromStage: 'new_owner',
        fromActivity: 'active',
        fromMaturity: 'novice',
        changed: ['stage', 'activity'],
      },
    ]);
    expect(prompts[1].evidence).toMatchObject({ from: { stage: 'new_owner' }, to: { stage: 'break_in', activity: 'declining' } });
    expect(prompts.map((p) => p.audience)).toEqual([['lifecycle'], ['lifecycle']]);
    expect(new Set(prompts.map((p) => p.dedupKey)).size).toBe(2);
  });

  it.each([
    [13, 0],
    [14, 1],
    [20, 1],
  ])('parked %i days -> %i dormant_vehicle prompt(s)', (days, count) => {
    const last = DELIVERY + HOUR;
    const ticks: Step[] = [];
    for (let d = 1; d <= days; d++) ticks.push({ tick: last + d * DAY_MS });
    const { events } = run([{ ts: last, odo: 10, on: true }, { ts: last + 60_000, odo: 11, on: false }, ...ticks], profile(), undefined, {
      lastVoltage12v: 12.31,
    });
    const dormant = opens(events).filter((p) => p.kind === 'usage.dormant_vehicle');
    expect(dormant).toHaveLength(count);
    if (count)
      expect(dormant[0]).toMatchObject({
        audience: ['hmi', 'lifecycle'],
        params: { parkedDays: 14, lastDriven: '2026-01-15', voltage12v: 12.3 },
      });
  });

  it('resolves dormant_vehicle when driven, and opens a new one for the next parked period', () => {
    const t0 = DELIVERY + HOUR;
    const { events } = run([
      { ts: t0, odo: 10, on: true },
      { tick: t0 + 14 * DAY_MS },
      { ts: t0 + 15 * DAY_MS, odo: 11, on: true },
      { ts: t0 + 15 * DAY_MS + 60_000, odo: 12, on: false },
      { tick: t0 + 29 * DAY_MS },
      { tick: t0 + 30 * DAY_MS },
    ]);
    const dormant = opens(events).filter((p) => p.kind === 'usage.dormant_vehicle');
    expect(dormant).toHaveLength(2);
    expect(events).toContainEqual({ type: 'resolve', dedupKey: dormant[0].dedupKey, ts: t0 + 15 * DAY_MS, reason: 'driven' });
    expect(dormant[0].dedupKey).not.toBe(dormant[1].dedupKey);
  });
});

describe('commercial utilisation', () => {
  it('reports each completed day once, with distance and driving hours', () => {
    const day0 = DELIVERY;
    const { events } = run(
      [
        ...trip(day0 + 8 * HOUR, 0, 120, 90),
        ...trip(day0 + 14 * HOUR, 120, 80, 60),
        { tick: day0 + 23 * HOUR },
        { tick: day0 + DAY_MS + 59 * 60_000 }, // late samples of the day may still be arriving
        { tick: day0 + DAY_MS + HOUR },
        { tick: day0 + DAY_MS + 2 * HOUR },
        ...trip(day0 + DAY_MS + 8 * HOUR, 200, 30, 30),
        { tick: day0 + 2 * DAY_MS + HOUR },
      ],
      profile('commercial'),
    );
    const util = opens(events).filter((p) => p.kind === 'usage.utilisation');
    expect(util.map((p) => [p.dedupKey, p.params])).toEqual([
      [`${VIN}:usage.utilisation:2026-01-15`, { date: '2026-01-15', km: 200, hours: 2.5 }],
      [`${VIN}:usage.utilisation:2026-01-16`, { date: '2026-01-16', km: 30, hours: 0.5 }],
    ]);
    expect(util.map((p) => p.ts)).toEqual([day0 + DAY_MS + HOUR, day0 + 2 * DAY_MS + HOUR]);
    expect(util[0].audience).toEqual(['lifecycle']);
  });

  it('reports nothing for passenger cars', () => {
    const { events } = run([...trip(DELIVERY, 0, 50), { tick: DELIVERY + 2 * DAY_MS }]);
    expect(opens(events).filter((p) => p.kind === 'usage.utilisation')).toEqual([]);
  });
});
