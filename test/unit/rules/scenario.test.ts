// Months of accelerated fleet time through the real engine (all five detectors, default config):
// a BEV and an ICE vehicle from delivery through break-in, first service, a lapse and winback
// ladder, dormancy and a fault that comes, clears and comes back. Asserts the exact prompt sequence.
import { describe, expect, it } from 'vitest';
import { VSS } from '../../../proto/signals.js';
import { DEFAULT_RULES_CONFIG } from '../../../rules/config.js';
import { createEngine, type Engine } from '../../../rules/engine.js';
import { DAY_MS, addMonthsUtc, isoDate, parseIsoDate } from '../../../rules/time.js';
import { renderPrompt } from '../../../rules/i18n/index.js';
import type { EngineResult, PromptDraft, Reading, Segments, Signals, Vehicle, VehicleRuleState } from '../../../rules/types.js';

const HOUR = 3_600_000;
const MIN = 60_000;

interface Logged {
  day: number;
  kind: string;
  prompt: PromptDraft;
}

/** One simulated vehicle driven through the engine on a test clock. */
class Sim {
  state: VehicleRuleState | undefined;
  t: number;
  odo = 0;
  dtcs: string[] = [];
  lastBatch: Reading[] = [];
  readonly delivery: number;
  readonly opened: Logged[] = [];
  readonly resolved: { day: number; dedupKey: string; reason: string }[] = [];
  readonly segments: { day: number; segments: Segments }[] = [];
  readonly clock = { now: () => this.t };

  constructor(
    readonly engine: Engine,
    readonly profile: Vehicle,
  ) {
    this.delivery = parseIsoDate(profile.deliveryDate);
    this.t = this.delivery;
  }

  get day(): number {
    return Math.floor((this.t - this.delivery) / DAY_MS);
  }

  /** Apply an engine result; the state is persisted as JSON between calls, as the pool does. */
  private take({ state, events, failures }: EngineResult): void {
    expect(failures).toEqual([]);
    this.state = JSON.parse(JSON.stringify(state)) as VehicleRuleState;
    for (const e of events) {
      if (e.type === 'open') this.opened.push({ day: this.day, kind: e.prompt.kind, prompt: e.prompt });
      else if (e.type === 'resolve') this.resolved.push({ day: this.day, dedupKey: e.dedupKey, reason: e.reason });
      else if (e.type === 'segments') this.segments.push({ day: this.day, segments: e.segments });
    }
  }

  private signals(extra: Signals): Signals {
    const s: Signals = { [VSS.odometer]: Math.round(this.odo * 10) / 10, [VSS.voltage12v]: 12.6, ...extra };
    if (this.profile.powertrain !== 'ICE') {
      s[VSS.soc] = 80;
      s[VSS.soh] = 99;
      s[VSS.isCharging] = false;
    }
    if (this.profile.powertrain !== 'BEV') s[VSS.fuelLevel] = 60;
    return s;
  }

  /** A trip at 08:00 of the current day: a sample every 5 minutes, ignition on, then off. */
  drive(km: number, minutes = 30): void {
    const start = this.t + 8 * HOUR;
    const readings: Reading[] = [];
    const vin = this.profile.vin;
    const startOdo = this.odo;
    for (let m = 0; m <= minutes; m += 5) {
      this.odo = startOdo + (km * m) / minutes;
      const state = m === minutes ? 'OFF' : 'ON';
      readings.push({
        vin,
        ts: start + m * MIN,
        signals: this.signals({ [VSS.lowVoltageSystemState]: state, [VSS.speed]: m === 0 || m === minutes ? 0 : 45 }),
        dtcs: [...this.dtcs],
      });
    }
    this.t = start + minutes * MIN;
    this.lastBatch = readings;
    this.take(this.engine.onReadings(this.state, vin, this.profile, readings, this.clock));
  }

  /** Advance to the next midnight and run the fleet-clock sweep. */
  nextDay(): void {
    this.t = Math.floor(this.t / DAY_MS) * DAY_MS + DAY_MS;
    this.take(this.engine.onTick(this.state, this.profile.vin, this.profile, this.clock));
  }

  /** Run `days` days: `perDay(dayNumber)` then the midnight tick. */
  days(n: number, perDay?: (day: number) => void): void {
    for (let i = 0; i < n; i++) {
      perDay?.(this.day);
      this.nextDay();
    }
  }

  /** Run days until the given day number (since delivery) is reached. */
  until(day: number, perDay?: (day: number) => void): void {
    this.days(day - this.day, perDay);
  }

  service(items: string[]): void {
    this.t += 10 * HOUR;
    const record = { date: isoDate(this.t), odometer: Math.round(this.odo), items };
    this.take(this.engine.onServiceRecord(this.state, this.profile.vin, this.profile, record, this.clock));
  }

  /** Prompt kinds in order, lapsed with its level, segment changes with their new segments. */
  sequence(): string[] {
    return this.opened.map(({ day, kind, prompt: p }) => {
      if (kind === 'maintenance.lapsed') return `${day} ${kind}${p.params.level}`;
      if (kind === 'usage.segment_changed') return `${day} ${kind} ${p.params.stage}/${p.params.activity}/${p.params.maturity}`;
      if (kind === 'fault.dtc') return `${day} ${kind} ${p.params.code}`;
      return `${day} ${kind}`;
    });
  }

  find(kind: string, nth = 0): PromptDraft {
    const p = this.opened.filter((o) => o.kind === kind)[nth];
    if (!p) throw new Error(`no ${kind} #${nth}`);
    return p.prompt;
  }
}

function vehicle(
  vin: string,
  powertrain: Vehicle['powertrain'],
  deliveryDate: string,
  vehicleType: Vehicle['vehicleType'] = 'passenger',
): Vehicle {
  return { vin, model: 'M1', powertrain, deliveryDate, dealerId: 'D001', locale: 'zh-CN', vehicleType };
}

/** Every prompt a scenario produced has a title and a complete body in both languages. */
function expectAllRender(sim: Sim): void {
  for (const o of sim.opened) {
    for (const locale of ['zh-CN', 'en'] as const) {
      const text = renderPrompt(o.prompt, locale);
      expect(text.title.length, o.kind).toBeGreaterThan(0);
      expect(text.body, o.kind).not.toMatch(/undefined|NaN|\[object/);
    }
  }
}

describe('scenario: a BEV from delivery to its second year', () => {
  it('produces the exact lifecycle sequence', () => {
    const sim = new Sim(createEngine(DEFAULT_RULES_CONFIG), vehicle('LRWYGCEK1PC000001', 'BEV', '2026-01-05'));
    // 60 km a day: break-in done by day 25, upcoming at 4,000 km (day 66), due at 5,000 km (day 83).
    sim.until(85, () => sim.drive(60));
    sim.service(['cabin_filter', 'tyre_rotation']); // first service on day 85 at 5,160 km
    sim.until(100, () => sim.drive(60));
    // A fault comes and clears within a week, then the car is parked for 40 days.
    sim.dtcs = ['P0A80'];
    sim.days(3, () => sim.drive(60));
    sim.dtcs = [];
    sim.days(2, () => sim.drive(60));
    sim.days(40);
    // Back on the road; the fault comes back.
    sim.days(5, () => sim.drive(60));
    sim.dtcs = ['P0A80'];
    sim.days(2, () => sim.drive(60));
    sim.days(30, () => sim.drive(60));

    expect(sim.sequence()).toEqual([
      '0 usage.segment_changed new_owner/active/novice',
      '30 usage.segment_changed active_owner/active/novice', // break-in (1,500 km) was done by day 25
      '66 maintenance.upcoming', // 4,000 km, mid-trip
      '83 maintenance.due', // 5,000 km
      '88 maintenance.followup', // 3 days after the visit on day 85
      '90 usage.segment_changed active_owner/active/skilled', // 3 months and over 3,000 km
      '100 fault.dtc P0A80',
      '112 usage.segment_changed active_owner/declining/skilled', // last drive day 104
      '119 usage.dormant_vehicle', // 14 days parked
      '135 usage.segment_changed active_owner/dormant/skilled', // 30 days
      '145 usage.segment_changed active_owner/declining/skilled', // driving again, but far less than usual
      '150 fault.dtc P0A80', // the same code again: a new occurrence
      '156 usage.segment_changed active_owner/active/skilled', // the 30-day distance has recovered
    ]);
    const vin = sim.profile.vin;
    expect(sim.resolved).toEqual([
      { day: 83, dedupKey: `${vin}:maintenance.upcoming:c0`, reason: 'superseded by due' },
      { day: 85, dedupKey: `${vin}:maintenance.due:c0`, reason: 'serviced' },
      { day: 103, dedupKey: `${vin}:fault.dtc:P0A80:1`, reason: 'code_cleared' },
      { day: 145, dedupKey: sim.find('usage.dormant_vehicle').dedupKey, reason: 'driven' },
    ]);
    expect(sim.find('maintenance.upcoming')).toMatchObject({
      audience: ['hmi', 'advisor'],
      params: {
        dueKm: 5000,
        dueDate: '2026-07-05',
        odometer: 4000,
        kmRemaining: 1000,
        service: 'first',
        items: ['cabin_filter', 'brake_fluid_check', 'tyre_rotation', 'coolant_check', 'hv_battery_inspection'],
      },
    });
    expect(sim.find('maintenance.followup')).toMatchObject({
      audience: ['lifecycle'],
      params: { serviceDate: '2026-03-31', odometer: 5100 },
    });
    expect(sim.find('usage.dormant_vehicle')).toMatchObject({
      audience: ['hmi', 'lifecycle'],
      params: { parkedDays: 14, lastDriven: '2026-04-19', voltage12v: 12.6 },
    });
    expect(sim.find('fault.dtc', 1).dedupKey).toBe(`${vin}:fault.dtc:P0A80:2`);
    expect(sim.segments.map((s) => s.day)).toEqual([0, 30, 90, 112, 135, 145, 156]);
    expectAllRender(sim);
  });
});

describe('scenario: an ICE car whose owner drifts away and is won back', () => {
  it('produces the exact lifecycle sequence', () => {
    const sim = new Sim(createEngine(DEFAULT_RULES_CONFIG), vehicle('LFV2A21K0P4000002', 'ICE', '2026-02-10'));
    const dayOf = (ts: number) => Math.floor((ts - sim.delivery) / DAY_MS);
    const dueTs = addMonthsUtc(sim.delivery, 6);
    // 20 km a day: the first service falls due by date (6 months) at about 3,600 km.
    sim.until(140, () => sim.drive(20));
    sim.dtcs = ['P0300'];
    sim.until(220, () => sim.drive(20));
    // The owner stops using the car (no telemetry at all) through the whole winback ladder.
    sim.until(dayOf(addMonthsUtc(dueTs, 7)) + 10);
    // Back: the fault is gone, the car is serviced the next day.
    sim.dtcs = [];
    sim.days(1, () => sim.drive(20));
    sim.service(['engine_oil', 'oil_filter', 'spark_plugs']);
    sim.days(10, () => sim.drive(20));
    const [l1, l2, l3] = [3, 5, 7].map((m) => dayOf(addMonthsUtc(dueTs, m)));
    expect([dayOf(dueTs), l1, l2, l3]).toEqual([181, 273, 334, 393]); // 2026-08-10, -11-10, 2027-01-10, -03-10

    expect(sim.sequence()).toEqual([
      '0 usage.segment_changed new_owner/active/novice',
      '30 usage.segment_changed break_in/active/novice', // only 600 km after a month
      '74 usage.segment_changed active_owner/active/novice', // 1,500 km
      '140 fault.dtc P0300',
      '149 usage.segment_changed active_owner/active/skilled', // 3,000 km (3 months passed long ago)
      '151 maintenance.upcoming', // 30 days before the 6-month due date
      '181 maintenance.due',
      '211 maintenance.overdue', // 30 days past due
      '227 usage.segment_changed active_owner/declining/skilled', // last drive day 219
      '234 usage.dormant_vehicle',
      '250 usage.segment_changed active_owner/dormant/skilled',
      '273 maintenance.lapsed1',
      '310 usage.segment_changed active_owner/lost/skilled', // 90 days without telemetry
      '334 maintenance.lapsed2',
      '393 maintenance.lapsed3',
      '403 usage.segment_changed active_owner/declining/skilled', // back on the road
      '407 maintenance.followup', // visit on day 404
      '411 usage.segment_changed active_owner/active/skilled',
    ]);
    const vin = sim.profile.vin;
    expect(sim.resolved.map((r) => `${r.day} ${r.dedupKey.slice(vin.length + 1)} ${r.reason}`)).toEqual([
      '181 maintenance.upcoming:c0 superseded by due',
      '211 maintenance.due:c0 superseded by overdue',
      '273 maintenance.overdue:c0 superseded by lapsed1',
      '334 maintenance.lapsed:c0:l1 superseded by lapsed2',
      '393 maintenance.lapsed:c0:l2 superseded by lapsed3',
      '403 fault.dtc:P0300:1 code_cleared',
      '403 usage.dormant_vehicle:2026-09-17T08:25:00.000Z driven',
      '404 maintenance.lapsed:c0:l3 serviced',
    ]);
    // The invitation lists the schedule plus the active fault; the ladder escalates by audience.
    expect(sim.find('maintenance.upcoming').params).toMatchObject({
      dueDate: '2026-08-10',
      daysRemaining: 30,
      items: ['engine_oil', 'oil_filter', 'air_filter', 'brake_inspection', 'tyre_inspection', 'dtc:P0300'],
    });
    expect(sim.find('maintenance.overdue').params).toMatchObject({ daysPast: 30 });
    expect(sim.opened.filter((o) => o.kind === 'maintenance.lapsed').map((o) => [o.prompt.params.level, o.prompt.audience])).toEqual([
      [1, ['lifecycle']],
      [2, ['lifecycle']],
      [3, ['lifecycle', 'advisor']],
    ]);
    expect(sim.find('maintenance.followup').params).toMatchObject({
      serviceDate: '2027-03-21',
      items: ['engine_oil', 'oil_filter', 'spark_plugs'],
    });
    // The new cycle runs from the visit: 10,000 km / 12 months for an ICE car.
    const m = sim.state!.families.maintenance as { cycle: number; base: { odometer: number } };
    expect(m.cycle).toBe(1);
    expect(m.base.odometer).toBe(4420);
    expectAllRender(sim);
  });
});

describe('scenario: a commercial van, restarts and redelivery', () => {
  it('reports utilisation daily, never repeats on a replayed batch, and renders every prompt in both languages', () => {
    const sim = new Sim(createEngine(DEFAULT_RULES_CONFIG), vehicle('LGXCE4CB0P0000003', 'BEV', '2026-03-01', 'commercial'));
    sim.until(5, (d) => sim.drive(d % 2 ? 150 : 90, d % 2 ? 180 : 120));
    sim.days(2); // a weekend parked
    const before = sim.opened.length;
    // At-least-once delivery hands the engine the last batch again: nothing new may come of it.
    const vin = sim.profile.vin;
    const r = sim.engine.onReadings(sim.state, vin, sim.profile, sim.lastBatch, sim.clock);
    expect(r.events).toEqual([]);
    expect(sim.sequence()).toEqual([
      '0 usage.segment_changed new_owner/active/novice',
      // Each day is reported an hour after midnight at the earliest (late samples still count):
      // by the next morning's first reading on working days, by the next midnight tick otherwise.
      '1 usage.utilisation',
      '2 usage.utilisation',
      '3 usage.utilisation',
      '4 usage.utilisation',
      '6 usage.utilisation',
      '7 usage.utilisation',
    ]);
    expect(sim.opened.length).toBe(before);
    expect(
      sim.opened
        .filter((o) => o.kind === 'usage.utilisation')
        .map((o) => [o.prompt.params.date, o.prompt.params.km, o.prompt.params.hours]),
    ).toEqual([
      ['2026-03-01', 90, 2],
      ['2026-03-02', 150, 3],
      ['2026-03-03', 90, 2],
      ['2026-03-04', 150, 3],
      ['2026-03-05', 90, 2],
      ['2026-03-06', 0, 0],
    ]);
    expectAllRender(sim);
  });
});
