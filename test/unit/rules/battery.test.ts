import { describe, expect, it } from 'vitest';
import { VSS } from '../../../proto/signals.js';
import { batteryDetector, type BatteryState } from '../../../rules/detectors/battery.js';
import type { Reading, Signals, Vehicle } from '../../../rules/types.js';
import { DAY, MIN, T0, VIN, drive, opened, profile, reading, resolved } from './helpers.js';

const run = (readings: Reading[], p: Vehicle = profile(), state?: BatteryState) =>
  drive(batteryDetector, readings, { family: 'battery', profile: p, state });
const parked = (v: number, extra: Signals = {}): Signals => ({
  [VSS.voltage12v]: v,
  [VSS.lowVoltageSystemState]: 'OFF',
  [VSS.speed]: 0,
  ...extra,
});
const series = (vs: number[], step = MIN, extra: Signals = {}) => vs.map((v, i) => reading(T0 + i * step, parked(v, extra)));

describe('battery.low_voltage_12v', () => {
  it.each([
    [[11.9, 11.9, 11.9], 0],
    [[11.8, 11.8, 11.8], 0],
    [[11.79, 11.79], 0],
    [[11.79, 11.79, 11.79], 1],
    [[11.5, 11.5, 11.9, 11.5, 11.5], 0], // streak broken
    [[11.5, 11.5, 11.5, 11.5, 11.5, 11.5], 1], // once per situation
  ])('parked readings %j open %i prompt(s)', (vs, n) => {
    const { events } = run(series(vs));
    expect(opened(events, 'battery.low_voltage_12v').length).toBe(n);
  });

  it('debounces by time too: two readings 10 minutes apart', () => {
    const { events } = run(series([11.5, 11.5], 10 * MIN));
    expect(opened(events)).toHaveLength(1);
    expect(opened(events)[0]).toMatchObject({ audience: ['hmi', 'advisor'], params: { voltage: 11.5 } });
  });

  it.each<[string, Signals]>([
    ['ignition ON', { [VSS.lowVoltageSystemState]: 'ON' }],
    ['START', { [VSS.lowVoltageSystemState]: 'START' }],
    ['moving', { [VSS.speed]: 30 }],
  ])('does not fire while %s', (_name, extra) => {
    const { events } = run(series([11.0, 11.0, 11.0, 11.0], MIN, extra));
    expect(events).toEqual([]);
  });

  it('counts a parked car with no speed signal as parked', () => {
    const rs = [11, 11, 11].map((v, i) => reading(T0 + i * MIN, { [VSS.voltage12v]: v, [VSS.lowVoltageSystemState]: 'LOCK' }));
    expect(opened(run(rs).events)).toHaveLength(1);
  });

  it('resolves only above the hysteresis level, then a new situation gets a new key', () => {
    const { events } = run(series([11.5, 11.5, 11.5, 12.0, 12.2, 11.5, 11.5, 11.5, 12.21, 11.5, 11.5, 11.5]));
    const keys = opened(events).map((p) => p.dedupKey);
    expect(keys).toEqual([`${VIN}:battery.low_voltage_12v:1`, `${VIN}:battery.low_voltage_12v:2`]);
    expect(resolved(events)).toEqual([keys[0]]);
  });

  it('driving resets the streak without resolving', () => {
    const rs = [
      ...series([11.5, 11.5, 11.5]),
      reading(T0 + 5 * MIN, { [VSS.voltage12v]: 14.2, [VSS.lowVoltageSystemState]: 'ON', [VSS.speed]: 50 }),
    ];
    const { events } = run(rs);
    expect(opened(events)).toHaveLength(1);
    expect(resolved(events)).toEqual([]);
  });
});

describe('battery.soh_degraded', () => {
  const soh = (v: number, t = T0) => reading(t, { [VSS.soh]: v });

  it.each([
    [80.1, 0],
    [80, 0],
    [79.9, 1],
  ])('SOH %s opens %i prompt(s) (threshold 80)', (v, n) => {
    // no profile yet: only the threshold applies (the curve needs a delivery date)
    const { events } = drive(batteryDetector, [soh(v)], { family: 'battery', profile: undefined });
    const ps = opened(events, 'battery.soh_degraded');
    expect(ps.length).toBe(n);
    if (n) expect(ps[0]).toMatchObject({ audience: ['advisor', 'lifecycle'], params: { reason: 'below_threshold' } });
  });

  it('flags a decline faster than the expected curve (2.5 %/year, 5 points margin)', () => {
    const p = profile({ deliveryDate: '2024-03-01' }); // two years: expected 95 %, floor 90 %
    expect(opened(run([soh(90.2)], p).events)).toEqual([]);
    const ps = opened(run([soh(89.5)], p).events);
    expect(ps).toHaveLength(1);
    expect(ps[0].params).toMatchObject({ reason: 'faster_than_expected', expectedPct: 95 });
  });

  it('applies no curve for a delivery date that is not an ISO date, however often it is seen', () => {
    const p = profile({ deliveryDate: 'March 2024' }); // Date.parse reads it; the profile schema would not
    for (let i = 0; i < 3; i++) expect(opened(run([soh(85, T0 + i * DAY)], p).events)).toEqual([]);
    expect(opened(run([soh(85)], profile({ deliveryDate: '2024-03-01' })).events)).toHaveLength(1);
  });

  it('fires once per situation, and crossing 80 % after a curve prompt is a new one', () => {
    const p = profile({ deliveryDate: '2024-03-01' });
    const { events } = run([soh(89), soh(88.5, T0 + DAY), soh(88, T0 + 2 * DAY), soh(79.5, T0 + 30 * DAY), soh(79, T0 + 31 * DAY)], p);
    expect(opened(events).map((x) => x.params.reason)).toEqual(['faster_than_expected', 'below_threshold']);
  });

  it('resolves after a recovery past the hysteresis', () => {
    const p = profile({ deliveryDate: '2026-02-01' });
    const { events } = run([soh(79), soh(81, T0 + DAY), soh(82, T0 + 2 * DAY), soh(79, T0 + 3 * DAY)], p);
    expect(resolved(events)).toEqual([`${VIN}:battery.soh_degraded:below_threshold:1`]);
    expect(opened(events).map((x) => x.dedupKey)).toEqual([
      `${VIN}:battery.soh_degraded:below_threshold:1`,
      `${VIN}:battery.soh_degraded:below_threshold:2`,
    ]);
  });
});
