import { describe, expect, it } from 'vitest';
import { hashSeed, mulberry32, pickWeighted, rngFor, unitFor } from '../../../simulator/rng.js';
import { isValidVin, makeVin, vinCheckDigit } from '../../../simulator/vin.js';
import { VinSchema } from '../../../proto/domain.js';

describe('rng', () => {
  it('repeats the same stream for the same seed and differs for another', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const xa = Array.from({ length: 100 }, a);
    expect(Array.from({ length: 100 }, b)).toEqual(xa);
    expect(Array.from({ length: 100 }, c)).not.toEqual(xa);
    for (const x of xa) expect(x >= 0 && x < 1).toBe(true);
  });

  it('hashes large timestamps without losing the high bits', () => {
    const t = Date.UTC(2026, 0, 1);
    expect(hashSeed(1, t)).not.toBe(hashSeed(1, t + 2 ** 32));
    expect(unitFor(3, t)).toBe(unitFor(3, t));
    expect(rngFor(1, 2)()).toBe(rngFor(1, 2)());
  });

  it('picks by weight and never picks a zero weight', () => {
    const r = mulberry32(5);
    const counts = { a: 0, b: 0, z: 0 };
    for (let i = 0; i < 2000; i++)
      counts[
        pickWeighted(r, [
          ['a', 3],
          ['b', 1],
          ['z', 0],
        ] as const)
      ]++;
    expect(counts.z).toBe(0);
    expect(counts.a).toBeGreaterThan(counts.b * 2);
  });
});

describe('VIN', () => {
  it('computes the ISO 3779 check digit of known VINs', () => {
    expect(vinCheckDigit('1M8GDM9AXKP042788')).toBe('X');
    expect(vinCheckDigit('11111111111111111')).toBe('1');
    expect(isValidVin('1M8GDM9AXKP042788')).toBe(true);
    expect(isValidVin('1M8GDM9A1KP042788')).toBe(false);
    expect(isValidVin('1M8GDM9AXKP04278O')).toBe(false);
  });

  it('builds valid VINs and rejects bad parts', () => {
    const vin = makeVin('LPV', 'AE2B5', 2025, 'S', 123);
    expect(VinSchema.safeParse(vin).success).toBe(true);
    expect(isValidVin(vin)).toBe(true);
    expect(vin.slice(9, 11)).toBe('SS');
    expect(vin.slice(11)).toBe('000123');
    expect(() => makeVin('LP', 'AE2B5', 2025, 'S', 1)).toThrow(/WMI 3/);
    expect(() => makeVin('LPO', 'AE2B5', 2025, 'S', 1)).toThrow(/cannot appear/);
  });
});
