// The fault suite's raw material for hostile input (support/fuzz.ts): a seeded random number
// generator, and a protobuf writer that also writes what proto/codec.ts never would (negative and
// over-long varints, wrong wire types, groups, duplicate fields).
import type { Sample } from '../../../proto/domain.js';

export type Rand = ReturnType<typeof seeded>;

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function seeded(seed: number) {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number): number => Math.floor(next() * n);
  return { next, int, pick: <T>(xs: readonly T[]): T => xs[int(xs.length)], chance: (p: number) => next() < p };
}

// ---- a protobuf writer that can also write what the codec never would --------------------------

export const uvarint = (v: bigint): number[] => {
  const out: number[] = [];
  let x = BigInt.asUintN(64, v);
  do {
    const b = Number(x & 0x7fn);
    x >>= 7n;
    out.push(x ? b | 0x80 : b);
  } while (x);
  return out;
};
const key = (no: number, wt: number): Buffer => Buffer.from(uvarint(BigInt(no) * 8n + BigInt(wt)));
export const pb = {
  varint: (no: number, v: number | bigint) => Buffer.concat([key(no, 0), Buffer.from(uvarint(BigInt(v)))]),
  double: (no: number, x: number) => {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(x);
    return Buffer.concat([key(no, 1), b]);
  },
  fixed32: (no: number, v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    return Buffer.concat([key(no, 5), b]);
  },
  bytes: (no: number, p: Uint8Array | string) => {
    const b = typeof p === 'string' ? Buffer.from(p) : Buffer.from(p);
    return Buffer.concat([key(no, 2), Buffer.from(uvarint(BigInt(b.length))), b]);
  },
  groups: (no: number, depth: number) => Buffer.concat([Buffer.alloc(depth, key(no, 3)), Buffer.alloc(depth, key(no, 4))]),
  /** `depth` length-delimited fields `no`, each inside the one before (written outside in, in one pass). */
  nested: (no: number, depth: number) => {
    const heads: Buffer[] = [];
    for (let i = 0, len = 0; i < depth; i++) {
      const h = Buffer.concat([key(no, 2), Buffer.from(uvarint(BigInt(len)))]);
      heads.push(h);
      len += h.length;
    }
    return Buffer.concat(heads.reverse());
  },
};

export type Value = number | boolean | string;
export const value = (v: Value): Buffer =>
  typeof v === 'number' ? pb.double(1, v) : typeof v === 'boolean' ? pb.varint(2, v ? 1 : 0) : pb.bytes(3, v);
const entry = (path: string, v: Buffer): Buffer => pb.bytes(2, Buffer.concat([pb.bytes(1, path), pb.bytes(2, v)]));
/** A Sample's bytes: ts (int64, so negative is ten bytes), map entries, DTC list, anything extra. */
export function rawSample(ts: number | bigint, signals: Array<[string, Buffer]>, dtcs?: string[], extra: Buffer[] = []): Buffer {
  const d = dtcs ? [pb.bytes(3, Buffer.concat(dtcs.map((c) => pb.bytes(1, c))))] : [];
  return Buffer.concat([pb.varint(1, BigInt(ts)), ...signals.map(([k, v]) => entry(k, v)), ...d, ...extra]);
}
export const rawOf = (s: Sample, extra: Buffer[] = []): Buffer =>
  rawSample(
    s.ts,
    Object.entries(s.signals).map(([k, v]) => [k, value(v as Value)]),
    s.dtcs,
    extra,
  );
