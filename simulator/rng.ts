// Seeded pseudo-random numbers for the simulator. Everything random in a simulated fleet
// flows from here, so the same seed gives the same readings bit for bit on any machine.

/** 32-bit integer mix (murmur3 finaliser): spreads nearby inputs over the whole range. */
export function mix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Hash a list of numbers (seeds, indices, timestamps up to 2^53) into one 32-bit seed. */
export function hashSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    // Split into low/high 32 bits so millisecond timestamps hash without losing bits.
    const lo = p >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    h = mix32(h ^ lo);
    h = mix32((h + 0x6d2b79f5) ^ hi);
  }
  return h;
}

export type Rng = () => number;

/** mulberry32: tiny, fast, good enough for behaviour simulation; returns floats in [0, 1). */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fresh generator for a derived key, e.g. rngFor(vehicleSeed, dayIndex). */
export function rngFor(...parts: number[]): Rng {
  return mulberry32(hashSeed(...parts));
}

/** A single uniform float in [0, 1) for a key, without keeping generator state. */
export function unitFor(...parts: number[]): number {
  return mix32(hashSeed(...parts)) / 4294967296;
}

export function between(rng: Rng, min: number, max: number): number {
  return min + (max - min) * rng();
}

export function intBetween(rng: Rng, min: number, maxInclusive: number): number {
  return min + Math.floor(rng() * (maxInclusive - min + 1));
}

export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)];
}

/** Pick by weight; weights need not sum to 1. */
export function pickWeighted<T>(rng: Rng, items: readonly (readonly [T, number])[]): T {
  const total = items.reduce((s, [, w]) => s + w, 0);
  let r = rng() * total;
  for (const [item, w] of items) {
    r -= w;
    if (r < 0) return item;
  }
  return items[items.length - 1][0];
}
