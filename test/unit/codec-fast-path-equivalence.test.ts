// The telemetry fast path (hand checks on the decoded message) must accept and refuse exactly what
// the schema path (toObject + zod) does, and return the same object, key order included.
import { describe, expect, it } from 'vitest';
import { decodeTelemetryBatch, decodeTelemetryBatchViaSchema, encodeTelemetryBatch } from '../../proto/codec.js';
import type { TelemetryBatch } from '../../proto/domain.js';
import { SIGNALS, SIGNAL_PATHS, VSS } from '../../proto/signals.js';

const VIN = 'LSVAU2180N2183294';
const T0 = Date.parse('2026-03-01T08:00:00Z');

function outcome(fn: () => TelemetryBatch): { ok: true; json: string; batch: TelemetryBatch } | { ok: false; error: string } {
  try {
    const batch = fn();
    // JSON keeps key order; undefined-valued keys are checked through the objects themselves
    return { ok: true, json: JSON.stringify(batch), batch };
  } catch (err) {
    return { ok: false, error: `${(err as Error).name}: ${(err as Error).message}` };
  }
}

function expectSame(bytes: Uint8Array) {
  const fast = outcome(() => decodeTelemetryBatch(bytes));
  const slow = outcome(() => decodeTelemetryBatchViaSchema(bytes));
  expect(fast.ok).toBe(slow.ok);
  if (fast.ok && slow.ok) {
    expect(fast.json).toBe(slow.json);
    expect(fast.batch).toStrictEqual(slow.batch);
    fast.batch.samples.forEach((s, i) => expect(Object.keys(s.signals)).toEqual(Object.keys(slow.batch.samples[i].signals)));
  } else if (!fast.ok && !slow.ok) {
    expect(fast.error).toBe(slow.error);
  }
  return fast.ok;
}

/** A batch as plain data, so a mutation can put any value anywhere: the encoder writes what it is given. */
interface LooseBatch {
  vin: string;
  bootId: string;
  seq: number;
  samples: Array<{ ts: number; signals: Record<string, unknown>; dtcs?: string[] }>;
}

const good = (): TelemetryBatch => ({
  vin: VIN,
  bootId: 'boot-1',
  seq: 42,
  dropped: 3,
  samples: [
    {
      ts: T0,
      signals: { [VSS.soc]: 18, [VSS.odometer]: 4210.5, [VSS.lowVoltageSystemState]: 'OFF', [VSS.isCharging]: false },
      dtcs: ['P0A80'],
    },
    { ts: T0 + 1000, signals: { [VSS.speed]: 0, [VSS.latitude]: -90, [VSS.longitude]: 180 }, dtcs: [] },
    { ts: T0 + 2000, signals: {} },
  ],
});

describe('telemetry fast path agrees with the schema path', () => {
  it('valid batches decode to the same object, signals in schema order', () => {
    expect(expectSame(encodeTelemetryBatch(good()))).toBe(true);
    const back = decodeTelemetryBatch(encodeTelemetryBatch(good()));
    expect(back).toEqual(good());
    expect(Object.keys(back.samples[0].signals)).toEqual([VSS.odometer, VSS.lowVoltageSystemState, VSS.soc, VSS.isCharging]);
  });

  it('each kind of invalid batch is refused with the same message', () => {
    const variants: Array<(b: LooseBatch) => void> = [
      (b) => (b.vin = 'LSVAU2180N218329I'),
      (b) => (b.vin = ''),
      (b) => (b.bootId = ''),
      (b) => (b.bootId = 'x'.repeat(65)),
      (b) => (b.seq = 2 ** 53),
      (b) => (b.samples = []),
      (b) => (b.samples = Array.from({ length: 1001 }, (_, i) => ({ ts: T0 + i, signals: {} }))),
      (b) => (b.samples[0].ts = 946_684_799_999),
      (b) => (b.samples[0].ts = 7_258_118_400_001),
      (b) => (b.samples[0].ts = -5),
      (b) => (b.samples[0].signals[VSS.soc] = 100.5),
      (b) => (b.samples[0].signals[VSS.soc] = -0.1),
      (b) => (b.samples[0].signals[VSS.soc] = Number.NaN),
      (b) => (b.samples[0].signals[VSS.soc] = Infinity),
      (b) => (b.samples[0].signals[VSS.soc] = true),
      (b) => (b.samples[0].signals[VSS.soc] = 'high'),
      (b) => (b.samples[0].signals[VSS.isCharging] = 1),
      (b) => (b.samples[0].signals[VSS.lowVoltageSystemState] = 'PARTY'),
      (b) => (b.samples[0].signals[VSS.lowVoltageSystemState] = 4),
      (b) => (b.samples[0].signals['Vehicle.Unknown'] = 1),
      (b) => (b.samples[0].dtcs = ['P0A8']),
      (b) => (b.samples[0].dtcs = ['X0A80']),
      (b) => (b.samples[0].dtcs = Array.from({ length: 65 }, () => 'P0A80')),
    ];
    for (const mutate of variants) {
      const b = good();
      mutate(b as LooseBatch);
      expect(expectSame(encodeTelemetryBatch(b)), String(mutate)).toBe(false);
    }
  });

  it('a map key named __proto__ is treated alike (protobufjs does not keep it as a key)', () => {
    const b = good();
    Object.defineProperty(b.samples[0].signals, '__proto__', { value: 1, enumerable: true });
    expectSame(encodeTelemetryBatch(b));
  });

  it('boundary values are accepted by both', () => {
    const b = good();
    b.seq = Number.MAX_SAFE_INTEGER;
    b.samples[0].ts = 946_684_800_000;
    b.samples[1].ts = 7_258_118_400_000;
    b.samples[0].dtcs = Array.from({ length: 64 }, () => 'U3FFF');
    b.samples = [...b.samples, ...Array.from({ length: 997 }, (_, i) => ({ ts: T0 + 5000 + i, signals: { [VSS.soc]: 0 } }))];
    expect(expectSame(encodeTelemetryBatch(b))).toBe(true);
  });

  it('random batches (every signal kind, DTCs, edges of the ranges) and their corruptions agree', () => {
    let seed = 777;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    let accepted = 0;
    let refused = 0;
    for (let n = 0; n < 400; n++) {
      const samples = Array.from({ length: 1 + Math.floor(rnd() * 4) }, (_, i) => {
        const signals: Record<string, unknown> = {};
        for (const p of SIGNAL_PATHS) {
          if (rnd() < 0.5) continue;
          const spec = SIGNALS[p];
          if (spec.kind === 'number')
            signals[p] = pick([spec.min!, spec.max!, (spec.min! + spec.max!) / 3, spec.max! + 1e-9, -0, rnd() * spec.max!]);
          else if (spec.kind === 'boolean') signals[p] = rnd() < 0.5;
          else signals[p] = rnd() < 0.9 ? pick(spec.values!) : 'Ünknown';
        }
        const dtcs =
          rnd() < 0.3
            ? undefined
            : Array.from({ length: Math.floor(rnd() * 3) }, () => pick(['P0A80', 'U0100', 'B1234', 'C3FFF', 'P4000']));
        return { ts: pick([T0 + i * 1000, 946_684_800_000, 7_258_118_400_000, T0 * 10]), signals, ...(dtcs ? { dtcs } : {}) };
      });
      const b = {
        vin: rnd() < 0.95 ? VIN : 'LSVAU2180N21832',
        bootId: pick(['b', 'boot-ü', 'x'.repeat(64)]),
        seq: pick([0, 1, 2 ** 40, 2 ** 50, Number.MAX_SAFE_INTEGER]),
        dropped: pick([0, 7, 2 ** 31]),
        samples,
      } as TelemetryBatch;
      const bytes = encodeTelemetryBatch(b);
      if (expectSame(bytes)) accepted++;
      else refused++;
      const broken = Uint8Array.from(bytes);
      broken[Math.floor(rnd() * broken.length)] ^= 1 << Math.floor(rnd() * 8);
      expectSame(broken);
    }
    expect(accepted).toBeGreaterThan(20);
    expect(refused).toBeGreaterThan(20);
  });

  it('corrupted bytes: same decision and same error, whatever the damage', () => {
    const base = encodeTelemetryBatch(good());
    let seed = 12345;
    const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    let accepted = 0;
    for (let n = 0; n < 3000; n++) {
      const bytes = Uint8Array.from(base);
      const flips = 1 + Math.floor(rnd() * 3);
      for (let f = 0; f < flips; f++) bytes[Math.floor(rnd() * bytes.length)] = Math.floor(rnd() * 256);
      if (expectSame(bytes)) accepted++;
    }
    // the corpus must exercise both outcomes to mean anything
    expect(accepted).toBeGreaterThan(0);
    expect(accepted).toBeLessThan(3000);
  });
});
