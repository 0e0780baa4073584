// toLines serialises without a Point per reading; its lines must be exactly the client's Point output.
import { Point } from '@influxdata/influxdb-client';
import { describe, expect, it } from 'vitest';
import type { Reading, Signals } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';
import { checkedTags, MEASUREMENT, readingFields, toLines, TelemetryInputError } from '../../ingest/store/influx/schema.js';

/** The previous implementation, built with the client's Point. */
function viaPoint(readings: Reading[], tags: (vin: string) => Record<string, string>): string[] {
  const lines: string[] = [];
  for (const r of readings) {
    const fields = readingFields(r);
    if (Object.keys(fields).length === 0) continue;
    const p = new Point(MEASUREMENT).timestamp(String(r.ts));
    for (const [k, v] of Object.entries(checkedTags(r.vin, tags(r.vin)))) p.tag(k, v);
    for (const [k, v] of Object.entries(fields)) {
      if (typeof v === 'number') p.floatField(k, v);
      else if (typeof v === 'boolean') p.booleanField(k, v);
      else p.stringField(k, v);
    }
    const line = p.toLineProtocol();
    if (line) lines.push(line);
  }
  return lines;
}

const A = 'LSVAU2180N2183294';
const B = 'LBENCH00000000001';

describe('toLines', () => {
  it('writes what the client Point writes: sorted tags and fields, escaping, numbers, booleans, enums, DTCs', () => {
    const readings: Reading[] = [
      {
        vin: A,
        ts: 1_767_225_600_000,
        signals: { [VSS.soc]: 18, [VSS.odometer]: 4210.5, [VSS.lowVoltageSystemState]: 'OFF', [VSS.isCharging]: false },
        dtcs: ['P0A80', 'U0100'],
      },
      {
        vin: B,
        ts: 1_767_225_600_001,
        signals: { [VSS.speed]: 0, [VSS.latitude]: -33.123456789, [VSS.voltage12v]: 1e-7, [VSS.isCharging]: true },
      },
      { vin: A, ts: 0, signals: {}, dtcs: [] },
      { vin: B, ts: 5, signals: {} },
      { vin: A, ts: 6, signals: { [VSS.odometer]: 5_000_000, [VSS.chargePortType]: 'DC' } },
    ];
    const tags = (vin: string): Record<string, string> =>
      vin === A ? { model: 'Model "Y", long=range', powertrain: 'BEV', dealer: 'd 1\\x\ty' } : { model: '', zeta: 'z', alpha: 'a=b,c d' };
    const lines = toLines(readings, tags);
    expect(lines).toEqual(viaPoint(readings, tags));
    expect(lines).toHaveLength(4);
    expect(lines[0]).toContain(',vin=LSVAU2180N2183294 ');
  });

  it('readings repeating, reordering and mixing their signal sets serialise as the client does', () => {
    // toLines remembers recent signal sets (shapes): a reading that matches one in part, in another
    // order, with an undefined or a bad value, or with more than it remembers, must still come out right
    const sets: Signals[] = [
      { [VSS.soc]: 18, [VSS.odometer]: 4210.5, [VSS.lowVoltageSystemState]: 'OFF', [VSS.isCharging]: false },
      { [VSS.odometer]: 4210.75, [VSS.soc]: 17.5, [VSS.isCharging]: true, [VSS.lowVoltageSystemState]: 'ON' },
      { [VSS.soc]: 18, [VSS.odometer]: 4211 },
      { [VSS.soc]: 18, [VSS.odometer]: 4211, [VSS.speed]: 0 },
      { [VSS.soc]: 18, [VSS.odometer]: undefined, [VSS.speed]: 3 } as Signals,
      { [VSS.latitude]: -33.5, [VSS.longitude]: 151.25 },
      { [VSS.voltage12v]: 12.5 },
      { [VSS.chargePortType]: 'DC', [VSS.soc]: 80 },
      { [VSS.speed]: 1e21 },
      { [VSS.soh]: 97, [VSS.soc]: 0.1 },
      { [VSS.speed]: 12, [VSS.soh]: 96 },
      {},
    ];
    const readings: Reading[] = [];
    for (let i = 0; i < 200; i++) {
      // same keys, values changing (or not) from one reading to the next
      // a few signal sets first (each remembered and met again), then more than are remembered
      const signals: Signals = { ...sets[i < 120 ? i % 4 : (i * 7) % sets.length] };
      if (VSS.soc in signals) signals[VSS.soc] = (i % 4) * 0.5;
      if (VSS.isCharging in signals) signals[VSS.isCharging] = i % 3 === 0;
      readings.push({ vin: i % 3 ? A : B, ts: 1_767_225_600_000 + i, signals, ...(i % 11 === 0 ? { dtcs: ['P0A80'] } : {}) });
    }
    const tags = (vin: string): Record<string, string> => ({ model: vin === A ? 'Aion S' : 'ID.3' });
    expect(toLines(readings, tags)).toEqual(viaPoint(readings, tags));
    // a value that does not fit its remembered shape is refused with readingFields' wording
    const bad: Reading = {
      vin: A,
      ts: 9,
      signals: { [VSS.soc]: 18, [VSS.odometer]: 4210.5, [VSS.lowVoltageSystemState]: 'PARTY', [VSS.isCharging]: false },
    };
    expect(() => toLines([...readings, bad], tags)).toThrow(/bad enum value "PARTY"/);
  });

  it('a bad reading anywhere refuses the whole call', () => {
    const ok: Reading = { vin: A, ts: 1, signals: { [VSS.soc]: 5 } };
    expect(() => toLines([ok, { vin: A, ts: 2, signals: { [VSS.soc]: Number.NaN } }], () => ({}))).toThrow(TelemetryInputError);
    expect(() => toLines([ok], () => ({ vin: 'x' }))).toThrow(TelemetryInputError);
    // the same first fault and wording as readingFields
    const bad: Reading[] = [
      // not a known signal, and a string for a number: what a decoder bug could hand on
      { vin: A, ts: 3, signals: { [VSS.soc]: 5, 'Vehicle.Nope': 1, [VSS.speed]: 'fast' } as Signals },
      { vin: A, ts: 3, signals: { [VSS.lowVoltageSystemState]: 'PARTY' } },
      { vin: A, ts: 3, signals: {}, dtcs: ['P0A80', 'bad'] },
      { vin: 'LSVAU2180N218329I', ts: 3, signals: {} },
      { vin: A, ts: -1, signals: {} },
    ];
    for (const r of bad) {
      let expected = '';
      try {
        readingFields(r);
      } catch (err) {
        expected = (err as Error).message;
      }
      expect(expected).not.toBe('');
      expect(() => toLines([ok, r], () => ({}))).toThrow(expected);
    }
  });
});
