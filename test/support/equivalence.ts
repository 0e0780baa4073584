// Helpers for tests that prove a hand-written check gives the verdicts of the zod schema it stands in for.
import { expect } from 'vitest';
import type { z } from 'zod';
import type { CheckResult } from '../../proto/checks.js';
import { formatZodError } from '../../proto/domain.js';

/** Every path a message names (`a.b: …; c: …`). */
const pathsOf = (message: string) => new Set(message.split('; ').map((m) => m.slice(0, m.indexOf(': '))));

export function expectSameVerdict(schema: z.ZodType, check: (v: unknown) => CheckResult<unknown>, input: unknown): void {
  const want = schema.safeParse(input);
  const got = check(input);
  const label = JSON.stringify(input) ?? String(input);
  expect(got.success, `${label}: zod says ${want.success ? 'valid' : formatZodError(want.error!)}, check says ${got.error?.message}`).toBe(
    want.success,
  );
  if (want.success) {
    expect(got.data, label).toEqual(want.data);
  } else {
    // the check names fields zod names too (it may stop at the first problem of an array where zod goes on)
    const zodPaths = pathsOf(formatZodError(want.error!));
    const ours = pathsOf(got.error!.message);
    expect(ours.size, label).toBeGreaterThan(0);
    for (const p of ours) expect(zodPaths, `${label}: check names ${p}, zod ${[...zodPaths].join(', ')}`).toContain(p);
  }
}

/** Seeded PRNG (mulberry32), so a failing case is the same on every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Values that are wrong for (almost) any field. */
export const ODD = [undefined, null, NaN, Infinity, -Infinity, '', '1', true, [], {}, -0, 1.5, 2 ** 53, -(2 ** 53), 1e300];
