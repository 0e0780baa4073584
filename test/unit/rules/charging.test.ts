import { describe, expect, it } from 'vitest';
import { VSS } from '../../../proto/signals.js';
import { DEFAULT_RULES_CONFIG, resolveModelConfig } from '../../../rules/config.js';
import { chargingDetector, type ChargingState } from '../../../rules/detectors/charging.js';
import type { Reading, RuleEvent } from '../../../rules/types.js';
import { DAY, HOUR, MIN, T0, VIN, drive, opened, profile, reading, resolved, soc } from './helpers.js';

const run = (readings: Reading[], state?: ChargingState) =>
  drive(chargingDetector, readings, { family: 'charging', profile: profile(), state });
const sessions = (events: RuleEvent[]) => events.flatMap((e) => (e.type === 'charging_session' ? [e.session] : []));

describe('charging.low_soc / charging.critical_soc thresholds', () => {
  it.each([
    [20.1, []],
    [20, []],
    [19.9, ['charging.low_soc']],
    [7.1, ['charging.low_soc']],
    [7, ['charging.low_soc']],
    [6.9, ['charging.critical_soc']],
    [0, ['charging.critical_soc']],
  ])('SOC %s from a full battery opens %j', (value, kinds) => {
    const { events } = run([reading(T0, soc(80)), reading(T0 + MIN, soc(value))]);
    expect(opened(events).map((p) => p.kind)).toEqual(kinds);
  });

  it.each([
    [20.1, []],
    [20, []],
    [19.9, ['charging.low_soc']],
    [7, ['charging.low_soc']],
    [6.9, ['charging.critical_soc']],
  ])('the same holds when the reading at SOC %s also ends a charging session', (value, kinds) => {
    const { events } = run([reading(T0, soc(80, true)), reading(T0 + MIN, soc(value, false))]);
    expect(opened(events).map((p) => p.kind)).toEqual(kinds);
  });

  it('never prompts while charging', () => {
    const { events } = run([reading(T0, soc(10, true)), reading(T0 + MIN, soc(5, true))]);
    expect(opened(events)).toEqual([]);
  });

  it('low carries the estimated range and is HMI-only, critical is urgent for HMI and advisor', () => {
    const { events } = run([reading(T0, soc(19)), reading(T0 + MIN, soc(6))]);
    const [low, critical] = opened(events);
    // 19 % of 60 kWh at 16 kWh/100 km = 71 km
    expect(low).toMatchObject({ kind: 'charging.low_soc', urgent: false, audience: ['hmi'], params: { soc: 19, rangeKm: 71 } });
    expect(low.dedupKey).toBe(`${VIN}:charging.low_soc:0`);
    expect(critical).toMatchObject({ kind: 'charging.critical_soc', urgent: true, severity: 'critical', audience: ['hmi', 'advisor'] });
    expect(resolved(events)).toEqual([low.dedupKey]); // escalated
  });

  it('range uses the model capacity from config', () => {
    const r = { ...DEFAULT_RULES_CONFIG, models: { Big: { charging: { usableCapacityKwh: 100 } } } };
    const { events } = drive(chargingDetector, [reading(T0, soc(16))], {
      family: 'charging',
      profile: profile({ model: 'Big' }),
      configs: resolveModelConfig(r, 'Big'),
    });
    expect(opened(events)[0].params.rangeKm).toBe(100);
  });

  it('fires once per situation: further low readings do not repeat it', () => {
    const { events } = run([18, 17, 15, 12, 10, 8].map((v, i) => reading(T0 + i * MIN, soc(v))));
    expect(opened(events).map((p) => p.kind)).toEqual(['charging.low_soc']);
  });

  it.each([
    [30, false],
    [30.1, true],
  ])('re-arms only above 30 (charged to %s -> prompts again: %s)', (top, again) => {
    const { events } = run([
      reading(T0, soc(15)),
      reading(T0 + HOUR, soc(15, true)),
      reading(T0 + 2 * HOUR, soc(top, true)),
      reading(T0 + 3 * HOUR, soc(top, false)),
      reading(T0 + 9 * HOUR, soc(18, false)),
    ]);
    const lows = opened(events, 'charging.low_soc');
    expect(lows.length).toBe(again ? 2 : 1);
    if (again) expect(lows[1].dedupKey).toBe(`${VIN}:charging.low_soc:1`);
  });

  it('plugging in resolves the open low-charge prompt', () => {
    const { events } = run([reading(T0, soc(15)), reading(T0 + MIN, soc(15, true))]);
    expect(resolved(events)).toEqual([`${VIN}:charging.low_soc:0`]);
  });

  it('ignores ICE vehicles', () => {
    const { events } = drive(chargingDetector, [reading(T0, soc(5))], { family: 'charging', profile: profile({ powertrain: 'ICE' }) });
    expect(events).toEqual([]);
  });
});

describe('charging sessions', () => {
  it('derives start, end, energy and AC/DC from IsCharging transitions', () => {
    const { events } = run([
      reading(T0, soc(40, false)),
      reading(T0 + MIN, soc(40, true, { [VSS.chargePortType]: 'DC' })),
      reading(T0 + 20 * MIN, soc(60, true)),
      reading(T0 + 40 * MIN, soc(80, true)),
      reading(T0 + 41 * MIN, soc(80, false)),
      reading(T0 + 2 * HOUR, soc(79, true, { [VSS.chargePortType]: 'AC' })),
      reading(T0 + 3 * HOUR, soc(90, false)),
    ]);
    expect(sessions(events)).toEqual([
      { vin: VIN, start: T0 + MIN, end: T0 + 41 * MIN, startSoc: 40, endSoc: 80, energyKwh: 24, type: 'DC' },
      { vin: VIN, start: T0 + 2 * HOUR, end: T0 + 3 * HOUR, startSoc: 79, endSoc: 90, energyKwh: 6.6, type: 'AC' },
    ]);
  });

  it('a session that starts before any SOC is known takes its first SOC as the start', () => {
    const { events } = run([reading(T0, { [VSS.isCharging]: true }), reading(T0 + MIN, soc(50, true)), reading(T0 + HOUR, soc(70, false))]);
    expect(sessions(events)).toMatchObject([{ startSoc: 50, endSoc: 70, energyKwh: 12 }]);
  });

  it('a replayed reading does not start or end a second session', () => {
    const rs = [reading(T0, soc(40, true)), reading(T0 + HOUR, soc(70, false))];
    const first = run(rs);
    const again = run([rs[1]], first.state);
    expect(sessions(first.events).length).toBe(1);
    expect(sessions(again.events)).toEqual([]);
  });
});

describe('charging.habit', () => {
  const session = (day: number, type: 'AC' | 'DC', endSoc = 80, leaveHours = 0): Reading[] => {
    const t = T0 + day * DAY;
    const out = [
      reading(t, soc(30, true, { [VSS.chargePortType]: type })),
      reading(t + HOUR, soc(endSoc, false, { [VSS.lowVoltageSystemState]: 'OFF', [VSS.speed]: 0 })),
    ];
    if (leaveHours) out.push(reading(t + HOUR + leaveHours * HOUR, { [VSS.lowVoltageSystemState]: 'ON', [VSS.speed]: 20 }));
    else out.push(reading(t + HOUR + 10 * MIN, { [VSS.lowVoltageSystemState]: 'ON', [VSS.speed]: 20, [VSS.soc]: endSoc }));
    return out;
  };

  it('mostly DC fast charging over 30 days prompts once per window', () => {
    const rs = [0, 2, 4, 6, 8, 10, 12, 14].flatMap((d, i) => session(d, i === 1 ? 'AC' : 'DC'));
    const { events } = run(rs);
    const habits = opened(events, 'charging.habit');
    expect(habits.length).toBe(1);
    expect(habits[0]).toMatchObject({ audience: ['hmi', 'lifecycle'], params: { situation: 'dc_fast' } });
    expect(habits[0].dedupKey).toMatch(new RegExp(`^${VIN}:charging.habit:dc_fast:\\d+$`));
  });

  it('prompts again in a later window, not before', () => {
    const rs = [0, 2, 4, 6, 8, 40, 42, 44, 46, 48].flatMap((d) => session(d, 'DC'));
    expect(opened(run(rs).events, 'charging.habit').length).toBe(2);
  });

  it('a DC share at or below 60 % does not prompt', () => {
    const rs = [0, 1, 2, 3, 4].flatMap((d, i) => session(d, i < 3 ? 'DC' : 'AC')); // 3/5 = 60 %
    expect(opened(run(rs).events, 'charging.habit')).toEqual([]);
  });

  it('charging to 100 % and leaving it for hours, routinely, prompts left_full', () => {
    const rs = [0, 1, 2, 3, 4].flatMap((d, i) => session(d, 'AC', 100, i < 3 ? 6 : 0));
    const habits = opened(run(rs).events, 'charging.habit');
    expect(habits.map((h) => h.params.situation)).toEqual(['left_full']);
  });

  it('the fleet clock completes a full-dwell when the parked car sends nothing more', () => {
    const cfg = resolveModelConfig(DEFAULT_RULES_CONFIG, 'Aurora');
    // Two of four sessions were left full; a fifth ends at 100 % and the car goes silent.
    const rs = [0, 1, 2, 3].flatMap((d) => session(d, 'AC', 100, d < 2 ? 6 : 0));
    rs.push(reading(T0 + 4 * DAY, soc(30, true)), reading(T0 + 4 * DAY + HOUR, soc(100, false)));
    const before = run(rs);
    expect(opened(before.events, 'charging.habit')).toEqual([]); // 2 of 5 left full so far
    const ctx = {
      vin: VIN,
      profile: profile(),
      config: cfg.charging,
      clock: { now: () => T0 + 4 * DAY + 6 * HOUR },
      latest: before.latest,
      activeDtcs: [],
      view: { activeDtcs: [] },
    };
    const early = chargingDetector.onTick!(before.state, T0 + 4 * DAY + 2 * HOUR, ctx);
    expect(early.events).toEqual([]);
    const tick = chargingDetector.onTick!(before.state, T0 + 4 * DAY + 6 * HOUR, ctx);
    expect(opened(tick.events).map((p) => p.params.situation)).toEqual(['left_full']);
    expect(chargingDetector.onTick!(tick.state, T0 + 4 * DAY + 7 * HOUR, ctx).events).toEqual([]);
  });

  it('charging to 100 % and driving off soon after does not', () => {
    const rs = [0, 1, 2, 3, 4, 5].flatMap((d) => session(d, 'AC', 100, 0));
    expect(opened(run(rs).events, 'charging.habit')).toEqual([]);
  });
});
