import { describe, expect, it } from 'vitest';
import { createVehicleModel, type Snapshot, type StepResult } from '../../../simulator/vehicle-model.js';
import { SignalsSchema, DtcSchema } from '../../../proto/domain.js';
import { VSS } from '../../../proto/signals.js';
import { DAY, MIN, START, persona, run } from './support.js';

const num = (r: Snapshot, path: string) => r.signals[path as keyof typeof r.signals] as number;

/** Start/end of charging sessions (IsCharging rising edges) with the port used. */
function sessions(rs: Snapshot[]): { port: string; startSoc: number }[] {
  const out: { port: string; startSoc: number }[] = [];
  let prev = false;
  for (const r of rs) {
    const c = r.signals[VSS.isCharging] === true;
    if (c && !prev) out.push({ port: String(r.signals[VSS.chargePortType]), startSoc: num(r, VSS.soc) });
    prev = c;
  }
  return out;
}

describe('vehicle model: determinism and signals', () => {
  it('same seed gives identical readings; another seed does not', () => {
    const a = run({ powertrain: 'BEV', seed: 5 }, 14, 5 * MIN);
    const b = run({ powertrain: 'BEV', seed: 5 }, 14, 5 * MIN);
    const c = run({ powertrain: 'BEV', seed: 6 }, 14, 5 * MIN);
    expect(b).toEqual(a);
    expect(JSON.stringify(c)).not.toBe(JSON.stringify(a));
  });

  it('does not depend on how finely it is sampled (the plan is per day)', () => {
    const fine = run({ powertrain: 'ICE', seed: 9 }, 10, 5 * MIN);
    const coarse = run({ powertrain: 'ICE', seed: 9 }, 10, 60 * MIN);
    const fineAt = new Map(fine.map((r) => [r.ts, r]));
    for (const r of coarse) expect(num(r, VSS.odometer)).toBeCloseTo(num(fineAt.get(r.ts)!, VSS.odometer), 0);
  });

  it('emits valid signals for its powertrain, LowVoltageSystemState ON only while moving', () => {
    for (const powertrain of ['BEV', 'PHEV', 'ICE'] as const) {
      const rs = run({ powertrain, seed: 3 }, 14, 10 * MIN);
      let driving = 0;
      const problems: string[] = [];
      for (const r of rs) {
        if (!SignalsSchema.safeParse(r.signals).success) problems.push(`invalid signals at ${r.ts}`);
        for (const d of r.dtcs) if (!DtcSchema.safeParse(d).success) problems.push(`bad DTC ${d}`);
        const state = r.signals[VSS.lowVoltageSystemState];
        if (state !== 'ON' && state !== 'OFF') problems.push(`state ${String(state)}`);
        if ((state === 'ON') !== num(r, VSS.speed) > 0) problems.push(`state ${String(state)} at speed ${num(r, VSS.speed)}`);
        if (state === 'ON') driving++;
        if (VSS.latitude in r.signals) problems.push('position without being asked'); // privacy
        if (VSS.soc in r.signals !== (powertrain !== 'ICE')) problems.push('SOC presence');
        if (VSS.fuelLevel in r.signals !== (powertrain !== 'BEV')) problems.push('fuel presence');
      }
      expect(problems.slice(0, 5)).toEqual([]);
      expect(driving).toBeGreaterThan(10);
      const odo = rs.map((r) => num(r, VSS.odometer));
      for (let i = 1; i < odo.length; i++) expect(odo[i]).toBeGreaterThanOrEqual(odo[i - 1]);
      expect(odo[odo.length - 1]).toBeGreaterThan(odo[0]);
    }
  });

  it('reports position only when asked', () => {
    const rs = run({ powertrain: 'BEV', seed: 3, location: true }, 2, 30 * MIN);
    expect(typeof rs[0].signals[VSS.latitude]).toBe('number');
    expect(typeof rs[0].signals[VSS.longitude]).toBe('number');
  });

  it('rejects a negative step', () => {
    const m = createVehicleModel({ vin: 'LPVAE2B5XT0000001', seed: 1, powertrain: 'BEV', startTs: START });
    expect(() => m.step(-1)).toThrow(/non-negative/);
    expect(m.step(0).ts).toBe(START);
  });
});

describe('vehicle model: a plausible life over six months', () => {
  it('a commuter BEV charges at home (AC) regularly and drives on weekdays', () => {
    const rs = run(
      { powertrain: 'BEV', persona: persona('commuter', 'BEV', { chargeHabit: 'nightly', commutes: true, dormancyChancePerDay: 0 }) },
      180,
    );
    const s = sessions(rs);
    expect(s.length).toBeGreaterThan(20);
    expect(s.filter((x) => x.port === 'AC').length).toBeGreaterThan(s.length / 2);
    const weekdayDriving = rs.filter(
      (r) => r.signals[VSS.lowVoltageSystemState] === 'ON' && [1, 2, 3, 4, 5].includes(new Date(r.ts + 8 * 3600_000).getUTCDay()),
    );
    expect(weekdayDriving.length).toBeGreaterThan(100);
  });

  it('a low-runner lets the charge drop below 20 % and occasionally below 7 %, and DC charges on trips', () => {
    const rs = run(
      { powertrain: 'BEV', persona: persona('low_runner', 'BEV', { commutes: true, commuteKm: 45, dormancyChancePerDay: 0 }) },
      180,
    );
    const socs = rs.map((r) => num(r, VSS.soc));
    expect(socs.filter((x) => x < 20).length).toBeGreaterThan(10);
    expect(Math.min(...socs)).toBeLessThan(7);
    expect(Math.min(...socs)).toBeGreaterThanOrEqual(0);
    expect(sessions(rs).some((x) => x.port === 'DC')).toBe(true);
  });

  it('a full-and-leave owner charges to 100 % and leaves it there', () => {
    const rs = run(
      { powertrain: 'BEV', persona: persona('commuter', 'BEV', { chargeHabit: 'full_and_leave', dormancyChancePerDay: 0 }) },
      60,
    );
    const parkedFull = rs.filter((r) => num(r, VSS.soc) >= 99.9 && r.signals[VSS.isCharging] === false && num(r, VSS.speed) === 0);
    expect(parkedFull.length).toBeGreaterThan(100);
  });

  it('the 12 V battery sags below 11.8 V after ~10+ days parked and recovers when driven', () => {
    const rs = run(
      {
        powertrain: 'ICE',
        persona: persona('dormant_prone', 'ICE', { initialParkedDays: 0, dormancyChancePerDay: 0.03, v12SagPerDay: 0.085 }),
      },
      180,
    );
    let parkedSince = START;
    let sagged: StepResult | undefined;
    let recovered = false;
    for (const r of rs) {
      if (r.signals[VSS.lowVoltageSystemState] === 'ON') {
        parkedSince = r.ts;
        if (sagged) recovered = true;
        continue;
      }
      const v = num(r, VSS.voltage12v);
      if (v < 11.8 && !sagged) {
        sagged = r;
        expect(r.ts - parkedSince).toBeGreaterThan(9 * DAY);
      }
      if (recovered && sagged && v > 12.3) break;
    }
    expect(sagged).toBeDefined();
    expect(recovered).toBe(true);
    const after = rs.filter((r) => r.ts > sagged!.ts && r.signals[VSS.lowVoltageSystemState] === 'ON');
    expect(after.length).toBeGreaterThan(0);
    expect(num(after[0], VSS.voltage12v)).toBeGreaterThan(13.5); // charging while driven
  });

  it('a dormant-prone car stays parked for 14 days or more', () => {
    const rs = run({ powertrain: 'BEV', persona: persona('dormant_prone', 'BEV', { dormancyChancePerDay: 0.03 }) }, 180, 60 * MIN);
    let longest = 0;
    let since = START;
    let lastDrive = 0;
    for (const r of rs) {
      if (r.signals[VSS.lowVoltageSystemState] === 'ON') since = lastDrive = r.ts;
      else longest = Math.max(longest, r.ts - since);
    }
    expect(longest).toBeGreaterThanOrEqual(14 * DAY);
    // Spells end: the owner drives again (two spells may follow each other, so allow some slack).
    expect(longest).toBeLessThanOrEqual(90 * DAY);
    expect(lastDrive).toBeGreaterThan(START + 60 * DAY);
  });

  it('raises fault codes that appear and clear again', () => {
    const rs = run(
      { powertrain: 'PHEV', persona: persona('commuter', 'PHEV', { dtcProneness: 6, serviceDiscipline: 'skips' }) },
      180,
      30 * MIN,
    );
    const seen = new Map<string, { first: number; clearedAt?: number }>();
    let prev: string[] = [];
    for (const r of rs) {
      for (const d of r.dtcs) if (!seen.has(d)) seen.set(d, { first: r.ts });
      for (const d of prev) if (!r.dtcs.includes(d)) seen.get(d)!.clearedAt ??= r.ts;
      prev = r.dtcs;
    }
    expect(seen.size).toBeGreaterThan(0);
    expect([...seen.values()].some((x) => x.clearedAt !== undefined && x.clearedAt > x.first)).toBe(true);
  });

  it('ages the traction battery, faster for a fast-ageing persona', () => {
    const slow = run({ powertrain: 'BEV', persona: persona('commuter', 'BEV', { sohLossPerYear: 1.5 }) }, 180, 60 * MIN);
    const fast = run({ powertrain: 'BEV', persona: persona('commuter', 'BEV', { sohLossPerYear: 8 }) }, 180, 60 * MIN);
    const drop = (rs: StepResult[]) => num(rs[0], VSS.soh) - num(rs[rs.length - 1], VSS.soh);
    expect(drop(slow)).toBeGreaterThan(0.4);
    expect(drop(fast)).toBeGreaterThan(drop(slow) * 2.5);
  });

  it('an on-time owner visits the dealer; a skipper never does', () => {
    const visits = (d: 'on_time' | 'skips') =>
      run(
        {
          powertrain: 'ICE',
          deliveryTs: START - 20 * DAY,
          persona: persona('commuter', 'ICE', { serviceDiscipline: d, commuteKm: 40, dormancyChancePerDay: 0 }),
        },
        365,
        60 * MIN,
      ).filter((r) => r.service);
    const onTime = visits('on_time');
    expect(onTime.length).toBeGreaterThanOrEqual(2);
    expect(onTime[0].service!.items).toContain('engine_oil');
    expect(onTime[1].service!.odometer).toBeGreaterThan(onTime[0].service!.odometer);
    expect(Date.parse(onTime[0].service!.date)).toBeLessThanOrEqual(START + 200 * DAY); // first service by ~6 months
    expect(visits('skips')).toEqual([]);
  });

  it('a commercial van drives long daily distances', () => {
    const rs = run(
      { powertrain: 'ICE', vehicleType: 'commercial', persona: persona('fleet_van', 'ICE', { dormancyChancePerDay: 0 }) },
      28,
      30 * MIN,
    );
    const km = num(rs[rs.length - 1], VSS.odometer) - num(rs[0], VSS.odometer);
    expect(km / 28).toBeGreaterThan(80);
  });

  it('a drifting owner drives less and less', () => {
    const rs = run(
      { powertrain: 'ICE', persona: persona('drifting', 'ICE', { fadeOverDays: 40, commutes: true, dormancyChancePerDay: 0 }) },
      90,
      60 * MIN,
    );
    const odoAt = (day: number) => num(rs[Math.min(rs.length - 1, day * 24 - 1)], VSS.odometer);
    const first = odoAt(30) - num(rs[0], VSS.odometer);
    const last = odoAt(90) - odoAt(60);
    expect(first).toBeGreaterThan(100);
    expect(last).toBeLessThan(first / 2);
  });

  it('a lost vehicle stops reporting', () => {
    const rs = run({ powertrain: 'BEV', persona: persona('lost', 'BEV', { lostAfterDays: 3 }) }, 10, 60 * MIN);
    expect(rs[0].reporting).toBe(true);
    expect(rs.filter((r) => !r.reporting).every((r) => r.ts >= START + 3 * DAY)).toBe(true);
    expect(rs[rs.length - 1].reporting).toBe(false);
  });
});

describe('vehicle model: readings at changes of state', () => {
  it('coarse sampling with transitions still shows every trip and charging session, in time order', () => {
    const p = persona('commuter', 'BEV', { chargeHabit: 'nightly', commutes: true, dormancyChancePerDay: 0, dtcProneness: 5 });
    const fine = run({ powertrain: 'BEV', persona: p }, 30, 1 * MIN);
    const coarse = run({ powertrain: 'BEV', persona: p, transitions: true }, 30, 6 * 60 * MIN);
    const flat = coarse.flatMap((r) => [...(r.transitions ?? []), r]);
    for (let i = 1; i < flat.length; i++) expect(flat[i].ts).toBeGreaterThan(flat[i - 1].ts);
    expect(flat.length).toBeLessThan(fine.length / 10);
    expect(sessions(flat).length).toBe(sessions(fine).length);
    // The car starts parked, so an ON first reading is a trip start too.
    const tripStarts = (rs: Snapshot[]) =>
      rs.filter(
        (r, i) => r.signals[VSS.lowVoltageSystemState] === 'ON' && (i === 0 || rs[i - 1].signals[VSS.lowVoltageSystemState] !== 'ON'),
      ).length;
    expect(tripStarts(flat)).toBe(tripStarts(fine));
    const codes = (rs: Snapshot[]) => new Set(rs.flatMap((r) => r.dtcs));
    expect(codes(flat)).toEqual(codes(fine));
    // Same instants give the same readings, whichever way they were sampled.
    const fineAt = new Map(fine.map((r) => [r.ts, r]));
    for (const r of flat) if (fineAt.has(r.ts)) expect(r.signals).toEqual(fineAt.get(r.ts)!.signals);
  });
});
