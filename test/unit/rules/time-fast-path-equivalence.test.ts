// The fast calendar arithmetic in rules/time.ts must agree with the Date-based reference.
import { describe, expect, it } from 'vitest';
import { addMonthsDate, addMonthsUtc, parseIsoDate } from '../../../rules/time.js';

function lcg(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1_103_515_245 + 12_345) % 2_147_483_648;
    return x / 2_147_483_648;
  };
}

describe('addMonthsUtc fast path', () => {
  it('matches the Date-based version on random timestamps and month offsets', () => {
    const rnd = lcg(12_345);
    const mismatches: [number, number][] = [];
    for (let i = 0; i < 200_000; i++) {
      // Mostly 1970..2128, some before 1970 (the fallback) and some fractional ms.
      let ts = Math.floor(rnd() * 5e12) - (i % 10 === 0 ? 1e12 : 0);
      if (i % 97 === 0) ts += 0.5;
      const months = Math.floor(rnd() * 400) - 200;
      const a = addMonthsUtc(ts, months);
      const b = addMonthsDate(ts, months);
      if (!Object.is(a, b)) mismatches.push([ts, months]);
    }
    expect(mismatches.slice(0, 5)).toEqual([]);
  });

  it('matches on month ends, leap days and century years', () => {
    const starts = [
      Date.UTC(2024, 0, 31),
      Date.UTC(2023, 0, 31, 23, 59, 59, 999),
      Date.UTC(2000, 1, 29),
      Date.UTC(2100, 0, 31),
      Date.UTC(1970, 0, 1),
      Date.UTC(9999, 11, 31, 12),
      Date.UTC(2026, 7, 31, 6, 30),
    ];
    for (const ts of starts) {
      for (let m = -30; m <= 30; m++) expect([ts, m, addMonthsUtc(ts, m)]).toEqual([ts, m, addMonthsDate(ts, m)]);
    }
    expect(addMonthsUtc(Date.UTC(2024, 0, 31), 1)).toBe(Date.UTC(2024, 1, 29));
    expect(addMonthsUtc(Date.UTC(2025, 0, 31), 1)).toBe(Date.UTC(2025, 1, 28));
    expect(Number.isNaN(addMonthsUtc(Number.NaN, 1))).toBe(true);
    expect(addMonthsUtc(Date.UTC(2026, 0, 15), 1.5)).toBe(addMonthsDate(Date.UTC(2026, 0, 15), 1.5));
  });
});

describe('parseIsoDate memo', () => {
  it('returns the same value on repeated calls and keeps rejecting bad input every time', () => {
    expect(parseIsoDate('2026-02-03')).toBe(Date.UTC(2026, 1, 3));
    expect(parseIsoDate('2026-02-03')).toBe(Date.UTC(2026, 1, 3));
    for (let i = 0; i < 2; i++) expect(() => parseIsoDate('2026-13-45')).toThrow(/not an ISO date/);
    for (let i = 0; i < 5000; i++) parseIsoDate(new Date(Date.UTC(2000, 0, 1) + i * 86_400_000).toISOString().slice(0, 10));
    expect(parseIsoDate('2026-02-03T12:00:00Z')).toBe(Date.UTC(2026, 1, 3, 12));
  });
});
