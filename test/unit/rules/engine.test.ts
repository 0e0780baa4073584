import { describe, expect, it } from 'vitest';
import { VSS } from '../../../proto/signals.js';
import { DEFAULT_RULES_CONFIG } from '../../../rules/config.js';
import { batteryDetector, chargingDetector, DEFAULT_DETECTORS, faultDetector } from '../../../rules/detectors/index.js';
import { createEngine } from '../../../rules/engine.js';
import type { Detector, Reading } from '../../../rules/types.js';
import { MIN, T0, VIN, clockAt, opened, profile, reading, soc } from './helpers.js';

const clock = clockAt(T0 + 60 * MIN);

describe('engine', () => {
  it('runs the detectors in the fixed order maintenance, charging, battery, fault, usage', () => {
    expect(DEFAULT_DETECTORS.map((d) => d.family)).toEqual(['maintenance', 'charging', 'battery', 'fault', 'usage']);
  });

  it('keeps latest, activeDtcs and lastTs, with readings sorted by event time', () => {
    const engine = createEngine(DEFAULT_RULES_CONFIG);
    const rs: Reading[] = [
      reading(T0 + 2 * MIN, { [VSS.odometer]: 1002 }),
      reading(T0, { [VSS.odometer]: 1000, [VSS.soc]: 50 }, ['P0300']),
      reading(T0 + MIN, { [VSS.odometer]: 1001 }),
    ];
    const r = engine.onReadings(undefined, VIN, profile(), rs, clock);
    expect(r.failures).toEqual([]);
    expect(r.state).toMatchObject({ vin: VIN, lastTs: T0 + 2 * MIN, latestTs: T0 + 2 * MIN, activeDtcs: ['P0300'] });
    expect(r.state.latest).toEqual({ [VSS.odometer]: 1002, [VSS.soc]: 50 });
    expect(opened(r.events, 'fault.dtc')).toHaveLength(1);
    expect(JSON.parse(JSON.stringify(r.state))).toEqual(JSON.parse(JSON.stringify(r.state)));
  });

  it('does not mutate the state it was given', () => {
    const engine = createEngine(DEFAULT_RULES_CONFIG);
    const first = engine.onReadings(undefined, VIN, profile(), [reading(T0, soc(50))], clock);
    const snapshot = JSON.stringify(first.state);
    engine.onReadings(first.state, VIN, profile(), [reading(T0 + MIN, soc(10), ['P0A80'])], clock);
    expect(JSON.stringify(first.state)).toBe(snapshot);
  });

  it('is idempotent for replayed readings: a duplicate batch opens nothing new', () => {
    const engine = createEngine(DEFAULT_RULES_CONFIG);
    const batch = [
      reading(T0, { ...soc(15), [VSS.voltage12v]: 11.2, [VSS.lowVoltageSystemState]: 'OFF', [VSS.speed]: 0 }, ['P0A80']),
      reading(T0 + MIN, { [VSS.voltage12v]: 11.2 }),
      reading(T0 + 2 * MIN, { [VSS.voltage12v]: 11.2 }),
    ];
    const a = engine.onReadings(undefined, VIN, profile(), batch, clock);
    const mine = opened(a.events)
      .map((p) => p.kind)
      .filter((k) => /^(charging|battery|fault)\./.test(k));
    expect(mine.sort()).toEqual(['battery.low_voltage_12v', 'charging.low_soc', 'fault.dtc']);
    const b = engine.onReadings(a.state, VIN, profile(), batch, clock);
    expect(b.events.filter((e) => e.type === 'open')).toEqual([]);
    // A duplicate inside one batch counts once too (the debounce needs 3 distinct readings).
    const c = engine.onReadings(undefined, VIN, profile(), [batch[0], batch[1], batch[1], batch[0]], clock);
    expect(opened(c.events, 'battery.low_voltage_12v')).toEqual([]);
    expect(JSON.stringify(b.state)).toBe(JSON.stringify(a.state));
  });

  it('a late reading only fills signals never seen and runs no detector', () => {
    const engine = createEngine(DEFAULT_RULES_CONFIG);
    const a = engine.onReadings(undefined, VIN, profile(), [reading(T0 + 10 * MIN, soc(50))], clock);
    const b = engine.onReadings(a.state, VIN, profile(), [reading(T0, { ...soc(5), [VSS.odometer]: 10 })], clock);
    expect(b.events).toEqual([]);
    expect(b.state.latest).toMatchObject({ [VSS.soc]: 50, [VSS.odometer]: 10 });
    expect(b.state.lastTs).toBe(T0 + 10 * MIN);
  });

  it('an exception in one detector is reported and never stops the others', () => {
    let calls = 0;
    const throwing: Detector<{ n: number }> = {
      family: 'maintenance',
      initial: () => ({ n: 0 }),
      onReading: () => {
        calls++;
        throw new Error('boom');
      },
      onTick: () => {
        throw new Error('tick boom');
      },
    };
    const engine = createEngine(DEFAULT_RULES_CONFIG, [
      throwing as Detector,
      chargingDetector as Detector,
      batteryDetector as Detector,
      faultDetector as Detector,
    ]);
    const prev = { vin: VIN, lastTs: 0, latest: {}, latestTs: 0, activeDtcs: [], families: { maintenance: { n: 41 } } };
    const r = engine.onReadings(prev, VIN, profile(), [reading(T0, soc(15), ['P0300']), reading(T0 + MIN, soc(14))], clock);
    expect(calls).toBe(2);
    expect(r.failures).toEqual([{ family: 'maintenance', vin: VIN, message: 'boom' }]);
    expect(r.state.families.maintenance).toEqual({ n: 41 });
    expect(
      opened(r.events)
        .map((p) => p.kind)
        .sort(),
    ).toEqual(['charging.low_soc', 'fault.dtc']);
    expect(r.state.families.charging).toBeDefined();
    const t = engine.onTick(r.state, VIN, profile(), clock);
    expect(t.failures).toEqual([{ family: 'maintenance', vin: VIN, message: 'tick boom' }]);
  });

  it('fills the VehicleView for detectors from latest values', () => {
    const seen: unknown[] = [];
    const spy: Detector<null> = {
      family: 'maintenance',
      initial: () => null,
      onReading: (s, _r, ctx) => {
        seen.push({ ...ctx.view, cfg: (ctx.config as object) !== undefined });
        return { state: s, events: [] };
      },
    };
    const engine = createEngine(DEFAULT_RULES_CONFIG, [spy as Detector]);
    engine.onReadings(
      undefined,
      VIN,
      profile(),
      [reading(T0, { [VSS.voltage12v]: 12.4, [VSS.soh]: 93, [VSS.odometer]: 1234 }, ['U0100'])],
      clock,
    );
    expect(seen).toEqual([{ activeDtcs: ['U0100'], lastVoltage12v: 12.4, lastSoh: 93, odometer: 1234, cfg: true }]);
  });

  it('survives bad input: empty batch, non-finite timestamps, no profile', () => {
    const engine = createEngine(DEFAULT_RULES_CONFIG);
    const r = engine.onReadings(undefined, VIN, undefined, [reading(Number.NaN, soc(5))], clock);
    expect(r.events).toEqual([]);
    expect(r.state.lastTs).toBe(0);
    expect(engine.onReadings(undefined, VIN, undefined, [], clock).failures).toEqual([]);
  });
});

describe('engine with a damaged stored state', () => {
  it('normalises missing fields instead of crashing', () => {
    const engine = createEngine(DEFAULT_RULES_CONFIG);
    const damaged = { vin: VIN, families: { fault: { active: {}, occurrences: {} } } } as unknown as Parameters<
      typeof engine.onReadings
    >[0];
    const r = engine.onReadings(damaged, VIN, profile(), [reading(T0, soc(50), ['P0300'])], clock);
    expect(r.state).toMatchObject({ lastTs: T0, activeDtcs: ['P0300'] });
    expect(r.failures).toEqual([]);
  });
});
