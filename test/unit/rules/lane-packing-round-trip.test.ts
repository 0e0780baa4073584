// Lane packing (values by shape, generated signal builders) and the item-by-item LaneReader:
// what comes out is what went in, key order included, for any mix of signal sets.
import { describe, expect, it } from 'vitest';
import { SIGNAL_PATHS, VSS } from '../../../proto/signals.js';
import type { Reading, Signals } from '../../../rules/types.js';
import { LaneReader, packLane, unpackLane, type PackItem } from '../../../rules/worker.js';

const VALUES: Record<string, unknown[]> = {
  [VSS.lowVoltageSystemState]: ['OFF', 'ON', 'START', 'LOCK'],
  [VSS.isCharging]: [true, false],
  [VSS.chargePortType]: ['AC', 'DC', 'NONE'],
};

function items(): PackItem[] {
  let x = 7;
  const rnd = () => {
    x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
    return x / 2_147_483_648;
  };
  return Array.from({ length: 30 }, (_, v) => {
    const readings: Reading[] = [];
    for (let i = 0; i < 200; i++) {
      // Random subsets in random order, now and then an unknown signal or an off-table value.
      const paths = SIGNAL_PATHS.filter(() => rnd() < 0.5).sort(() => rnd() - 0.5);
      const signals: Record<string, unknown> = {};
      for (const p of paths) signals[p] = VALUES[p] ? VALUES[p][Math.floor(rnd() * VALUES[p].length)] : Math.round(rnd() * 1e4) / 10;
      if (rnd() < 0.05) signals['Vehicle.Custom.Thing'] = 'x';
      if (rnd() < 0.05) signals[VSS.lowVoltageSystemState] = 'BOGUS';
      const r: Reading = { vin: `VIN${v}`, ts: 1_700_000_000_000 + i * 1000, signals: signals as Signals };
      if (rnd() < 0.1) r.dtcs = rnd() < 0.5 ? [] : ['P0300'];
      readings.push(r);
    }
    return { vin: `VIN${v}`, readings };
  });
}

describe('lane packing (generated builders)', () => {
  it('round-trips every reading exactly; table signals keep their order, others follow', () => {
    const input = items();
    const out = unpackLane(packLane(input));
    expect(out).toEqual(JSON.parse(JSON.stringify(input)));
    // Key order: the encodable table signals as sent, then the rest (unknown names, odd values).
    const tableFirst = (sig: Signals) => {
      const keys = Object.keys(sig);
      const table = keys.filter((k) => SIGNAL_PATHS.includes(k as never) && !(k === VSS.lowVoltageSystemState && sig[k] === 'BOGUS'));
      return [...table, ...keys.filter((k) => !table.includes(k))];
    };
    input.forEach((it, i) => it.readings.forEach((r, j) => expect(Object.keys(out[i].readings[j].signals)).toEqual(tableFirst(r.signals))));
  });

  it('LaneReader yields the items one by one, then undefined', () => {
    const input = items().slice(0, 3);
    const reader = new LaneReader(packLane(input));
    expect(reader.count).toBe(3);
    for (const it of input) expect(reader.read()).toEqual(it);
    expect(reader.read()).toBeUndefined();
  });

  it('packs an empty lane and a lane of empty readings', () => {
    expect(unpackLane(packLane([]))).toEqual([]);
    const empty: PackItem[] = [{ vin: 'A', readings: [{ vin: 'A', ts: 1, signals: {} }] }];
    expect(unpackLane(packLane(empty))).toEqual(empty);
  });

  it('numbers travel exactly as float64s: NaN, ±Infinity, -0, tiny and huge values', () => {
    const odd = [Number.NaN, Infinity, -Infinity, -0, Number.MIN_VALUE, Number.MAX_VALUE, 2 ** 53 + 2, 0.1 + 0.2];
    const readings: Reading[] = odd.map((x, i) => ({ vin: 'A', ts: i, signals: { [VSS.speed]: x, [VSS.odometer]: -x } as Signals }));
    const [out] = unpackLane(packLane([{ vin: 'A', readings }]));
    out.readings.forEach((r, i) => {
      expect(Object.is(r.signals[VSS.speed], odd[i])).toBe(true);
      expect(Object.is(r.signals[VSS.odometer], -odd[i])).toBe(true);
    });
  });

  it('booleans and enums by index; values off the table travel by name, unchanged', () => {
    const signals = [
      { [VSS.isCharging]: true, [VSS.chargePortType]: 'DC', [VSS.lowVoltageSystemState]: 'UNDEFINED' },
      { [VSS.isCharging]: false, [VSS.chargePortType]: 'NONE', [VSS.lowVoltageSystemState]: 'START' },
      { [VSS.isCharging]: 1, [VSS.chargePortType]: 'CCS', [VSS.speed]: '12', [VSS.soc]: null, 'Vehicle.Other': { a: [1] } },
    ] as unknown as Signals[];
    const input: PackItem[] = [{ vin: 'A', readings: signals.map((s, i) => ({ vin: 'A', ts: i, signals: s })) }];
    expect(unpackLane(packLane(input))).toEqual(input);
  });

  it('shapes are numbered per lane: a later lane, other vehicles and other orders decode alike', () => {
    const a = items().slice(0, 5);
    const b = items().slice(5, 12).reverse();
    const [pa, pb] = [packLane(a), packLane(b)];
    expect(unpackLane(pb)).toEqual(JSON.parse(JSON.stringify(b)));
    expect(unpackLane(pa)).toEqual(JSON.parse(JSON.stringify(a)));
  });

  it('stays exact past the bound on remembered shapes (signals in thousands of orders)', () => {
    let x = 11;
    const readings: Reading[] = [];
    for (let i = 0; i < 3000; i++) {
      // a random order of every signal: ~3000 × 10 trie nodes, past the 4,096 kept
      const paths = [...SIGNAL_PATHS];
      for (let j = paths.length - 1; j > 0; j--) {
        x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
        const k = x % (j + 1);
        [paths[j], paths[k]] = [paths[k], paths[j]];
      }
      const signals: Record<string, unknown> = {};
      for (const p of paths) signals[p] = VALUES[p]?.[i % VALUES[p].length] ?? i / 7;
      readings.push({ vin: 'B', ts: i, signals: signals as Signals });
    }
    const input: PackItem[] = [{ vin: 'B', readings }];
    for (let round = 0; round < 3; round++) {
      const out = unpackLane(packLane(input));
      expect(out).toEqual(input);
      out[0].readings.forEach((r, i) => expect(Object.keys(r.signals)).toEqual(Object.keys(readings[i].signals)));
    }
  });

  it('packs an item with no readings and a tick between others', () => {
    const input: PackItem[] = [
      { vin: 'A', readings: [] },
      { vin: 'B', readings: [], tick: true },
      { vin: 'C', readings: [{ vin: 'C', ts: 5, signals: { [VSS.speed]: 3 } as Signals, dtcs: [] }] },
    ];
    expect(unpackLane(packLane(input))).toEqual(input);
  });
});
