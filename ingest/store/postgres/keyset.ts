// Keyset bounds on bigint ms columns. A cursor's ms is any finite number (paging.ts), a bigint
// parameter only an integer in range: an integer ms in ±2^53 is used as it is (`exact`); any other
// is replaced by ceil(ms) clamped to ±2^53, with the string parts of the key set to '' (which sorts
// first under COLLATE "C"), which selects the same rows for an integer column:
//   (created_ms, id) <  (ceil(c), '')      is  created_ms < c   (newest first)
//   (created_ms, id, url) >= (ceil(c), '', '')  is  created_ms > c   (oldest first)
const BOUND = 2 ** 53;

export function keysetMs(c: number): { ms: number; exact: boolean } {
  if (Number.isInteger(c) && Math.abs(c) <= BOUND) return { ms: c, exact: true };
  return { ms: Math.max(-BOUND, Math.min(BOUND, Math.ceil(c))), exact: false };
}
