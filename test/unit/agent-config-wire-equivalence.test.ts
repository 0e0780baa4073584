// The agent's hand-written AgentConfig decoder (proto/agent-config-wire.ts) against the protobufjs one
// it replaces on the car (decodeAgentConfig in proto/codec-core.ts): for any payload, the same policy
// (-0, NaN and key order included), or a CodecError of the same failure (the same message when it is
// the policy check's). Well-formed configs, protobuf's merging and skipping rules, malformed bytes,
// and seeded random mutations of real payloads.
import { describe, expect, it } from 'vitest';
import { decodeAgentConfig } from '../../proto/agent-config-wire.js';
import * as ref from '../../proto/codec-core.js';
import { CodecError } from '../../proto/codec-limits.js';
import { odopulse } from '../../proto/gen/odopulse.js';
import { SIGNAL_PATHS } from '../../proto/signals.js';
import { rng } from '../support/equivalence.js';

type R = () => number;
const pick = <T>(r: R, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

type Outcome = { ok: true; policy: unknown } | { ok: false; error: CodecError };
function outcome(decode: () => unknown): Outcome {
  try {
    return { ok: true, policy: decode() };
  } catch (err) {
    // anything but a CodecError (a TypeError, a RangeError) fails here: a crash, not a refusal
    expect(err).toBeInstanceOf(CodecError);
    return { ok: false, error: err as CodecError };
  }
}

/** Decodes with both; returns 'ok' or the failure. */
function same(bytes: Uint8Array): string {
  const label = Buffer.from(bytes).toString('hex').slice(0, 400);
  const want = outcome(() => ref.decodeAgentConfig(bytes));
  const got = outcome(() => decodeAgentConfig(bytes));
  expect(got.ok, `${label}: protobufjs ${want.ok ? 'ok' : want.error.message}, ours ${got.ok ? 'ok' : got.error.message}`).toBe(want.ok);
  if (want.ok && got.ok) {
    expect(got.policy, label).toStrictEqual(want.policy);
    expect(JSON.stringify(got.policy)).toBe(JSON.stringify(want.policy));
    return 'ok';
  }
  if (!want.ok && !got.ok) {
    expect(got.error.failure, `${label}: ${want.error.message} / ${got.error.message}`).toBe(want.error.failure);
    // the policy check's wording is the same function's on the same object; protobufjs words decoding errors its own way
    if (want.error.failure !== 'malformed') expect(got.error.message).toBe(want.error.message);
    return want.error.failure;
  }
  return 'differs';
}

// ---- raw protobuf, for what the encoders would never write -------------------------------

function varint(v: number): number[] {
  const out: number[] = [];
  let n = BigInt.asUintN(64, BigInt(v));
  while (n > 127n) {
    out.push(Number(n & 127n) | 128);
    n >>= 7n;
  }
  out.push(Number(n));
  return out;
}
const tag = (field: number, wt: number) => varint(field * 8 + wt);
const ld = (field: number, body: number[]) => [...tag(field, 2), ...varint(body.length), ...body];
const f64 = (v: number) => [...Buffer.from(new Float64Array([v]).buffer)];
const utf8 = (s: string) => [...Buffer.from(s, 'utf8')];
const bytes = (...parts: number[][]) => new Uint8Array(parts.flat());

const KINDS = ['new_dtc', 'ignition_off', 'soc_below'] as const;
const KIND_NUM = { new_dtc: 1, ignition_off: 2, soc_below: 3 };
const VALID = {
  version: 7,
  signals: [
    { path: SIGNAL_PATHS[0], periodMs: 1000, deadband: 0.5 },
    { path: SIGNAL_PATHS[3], periodMs: 0, deadband: 0 },
  ],
  triggers: [{ kind: 'soc_below' as const, threshold: 15 }],
  batchMaxSamples: 10,
  batchMaxDelayMs: 10_000,
  locationEnabled: true,
  locationPrecisionDeg: 0.01,
};
const VALID_BYTES = [...ref.encodeAgentConfig(VALID)];

const UINT_EDGES = [0, 1, 127, 128, 1000, 60_000, 2 ** 31, 2 ** 32 - 1];
const DOUBLE_EDGES = [0, -0, 0.5, 1, -1, 15, 1e-9, 1e308, NaN, Infinity, -Infinity, Number.MIN_VALUE];

/** A policy message: mostly valid, or (edgy) with any uint32, any double, unknown paths and trigger kinds. */
function randomConfig(r: R): Uint8Array {
  const edge = r() < 0.4 ? 0.3 : 0.01;
  const kind = () => (r() >= edge ? `TRIGGER_KIND_${pick(r, KINDS).toUpperCase()}` : pick(r, [0, 4, 7, -1, 2 ** 31 - 1]));
  const uint = (max: number) => (r() < edge ? pick(r, UINT_EDGES) : Math.floor(r() * max));
  const double = (max: number) => (r() < edge ? pick(r, DOUBLE_EDGES) : r() * max);
  const message = odopulse.v1.AgentConfig.fromObject({
    version: uint(1000),
    signals: Array.from({ length: Math.floor(r() * 14) }, () => ({
      path: r() >= edge ? pick(r, SIGNAL_PATHS) : pick(r, ['', 'Vehicle.Nope', '\ufeffVehicle.Speed', 'Véhicule.Vitesse', '😀']),
      periodMs: uint(100_000),
      deadband: double(5),
    })),
    triggers: Array.from({ length: Math.floor(r() * 4) }, () => ({ kind: kind(), threshold: double(100) - 10 })),
    batchMaxSamples: 1 + uint(999),
    batchMaxDelayMs: uint(60_000),
    locationEnabled: r() < 0.5,
    locationPrecisionDeg: double(1),
  });
  return odopulse.v1.AgentConfig.encode(message).finish();
}

/** A random change to a payload: a byte changed, cut short, bytes inserted or removed, an unknown field added. */
function mutate(r: R, b: Uint8Array): Uint8Array {
  const a = [...b];
  const at = Math.floor(r() * (a.length + 1));
  const k = r();
  if (k < 0.25) a[Math.min(at, a.length - 1)] = Math.floor(r() * 256);
  else if (k < 0.4) a.length = at;
  else if (k < 0.55) a.splice(at, 0, ...Array.from({ length: 1 + Math.floor(r() * 4) }, () => Math.floor(r() * 256)));
  else if (k < 0.65) a.splice(at, 1 + Math.floor(r() * 3));
  else if (k < 0.8)
    a.push(...tag(8 + Math.floor(r() * 20), pick(r, [0, 1, 2, 5])), ...Array.from({ length: 9 }, () => Math.floor(r() * 256)));
  else if (k < 0.9) a[Math.min(at, a.length - 1)] ^= 1 << Math.floor(r() * 8);
  else a.push(...a.slice(0, at)); // a message followed by part of itself: merged
  return new Uint8Array(a);
}

describe('decodeAgentConfig (hand-written) = decodeAgentConfig (protobufjs)', () => {
  it('a real policy, from a Buffer, a Uint8Array and a view at an offset', () => {
    expect(decodeAgentConfig(new Uint8Array(VALID_BYTES))).toStrictEqual(VALID);
    const inside = new Uint8Array([9, 9, 9, ...VALID_BYTES, 9]).subarray(3, 3 + VALID_BYTES.length);
    for (const b of [Buffer.from(VALID_BYTES), new Uint8Array(VALID_BYTES), inside]) expect(same(b)).toBe('ok');
  });

  it.each([
    ['empty payload', bytes(), 'malformed'],
    ['over the size limit', new Uint8Array(64 * 1024 + 1), 'oversized'],
    [
      'at the size limit, 65,536 bytes (an unknown field fills it)',
      bytes(VALID_BYTES, ld(15, new Array(65536 - VALID_BYTES.length - 4).fill(0))),
      'ok',
    ],
    ['truncated varint', bytes([0x08, 0x80]), 'malformed'],
    ['truncated varint of an unknown field', bytes(VALID_BYTES, [0x78, 0xff]), 'malformed'],
    ['a 10-byte varint', bytes(tag(1, 0), [0xff, 0xff, 0xff, 0xff, 0x8f, 0x80, 0x80, 0x80, 0x80, 0x01]), 'invalid'],
    ['an 11-byte varint', bytes(tag(1, 0), [0xff, 0xff, 0xff, 0xff, 0x8f, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), 'malformed'],
    ['a tag over 32 bits', bytes([0x80, 0x80, 0x80, 0x80, 0x10, 0x00]), 'malformed'],
    ['a length over 2^31', bytes(tag(2, 2), [0xff, 0xff, 0xff, 0xff, 0x08]), 'malformed'],
    ['a length whose 5th byte runs past 32 bits', bytes(tag(2, 2), [0x80, 0x80, 0x80, 0x80, 0x10], VALID_BYTES), 'malformed'],
    ['a length past the end', bytes(VALID_BYTES, tag(2, 2), [0x05, 0x0a]), 'malformed'],
    ['a truncated double', bytes(tag(7, 1), [0, 0, 0]), 'malformed'],
    ['field number 0', bytes(VALID_BYTES, [0x00, 0x01]), 'malformed'],
    ['wire type 4 (end group) alone', bytes(VALID_BYTES, tag(9, 4)), 'malformed'],
    ['wire type 6', bytes(VALID_BYTES, tag(9, 6)), 'malformed'],
    ['wire type 7', bytes(VALID_BYTES, tag(9, 7)), 'malformed'],
    ['invalid UTF-8 in a path', bytes(ld(2, [...tag(1, 2), 2, 0xc3, 0x28])), 'malformed'],
    ['a byte-order mark kept in a path (then an unknown path)', bytes(ld(2, ld(1, utf8('\ufeff' + SIGNAL_PATHS[0])))), 'invalid'],
    ['known fields of another wire type are skipped', bytes(VALID_BYTES, tag(1, 2), [1, 0], tag(7, 5), [1, 2, 3, 4], tag(2, 0), [5]), 'ok'],
    [
      'unknown fields of every wire type are skipped',
      bytes(tag(20, 0), [0x96, 1], tag(21, 1), f64(1), ld(22, [1, 2]), tag(23, 5), [1, 2, 3, 4], VALID_BYTES),
      'ok',
    ],
    ['a group is skipped to its end', bytes(tag(9, 3), tag(1, 0), [5], tag(2, 3), tag(2, 4), tag(9, 4), VALID_BYTES), 'ok'],
    ['a group closed by another field', bytes(tag(9, 3), tag(10, 4), VALID_BYTES), 'malformed'],
    ['a group never closed', bytes(VALID_BYTES, tag(9, 3), tag(1, 0), [5]), 'malformed'],
    [
      'groups nested 100 deep',
      bytes(...Array.from({ length: 100 }, () => tag(9, 3)), ...Array.from({ length: 100 }, () => tag(9, 4))),
      'invalid',
    ],
    [
      'groups nested 102 deep',
      bytes(...Array.from({ length: 102 }, () => tag(9, 3)), ...Array.from({ length: 102 }, () => tag(9, 4))),
      'malformed',
    ],
    ['a group inside a signal policy', bytes(ld(2, [...ld(1, utf8(SIGNAL_PATHS[1])), ...tag(5, 3), ...tag(5, 4)])), 'invalid'],
    ['the last value of a field wins, repeated ones append', bytes(VALID_BYTES, tag(1, 0), [9], ld(2, ld(1, utf8(SIGNAL_PATHS[5])))), 'ok'],
    ['a negative trigger kind', bytes(ld(3, [...tag(1, 0), ...varint(-1)])), 'invalid'],
    ['trigger kind unspecified', bytes(ld(3, [...tag(1, 0), 0])), 'invalid'],
    ['an unknown trigger kind', bytes(ld(3, [...tag(1, 0), 9])), 'invalid'],
    [
      'a bool of 10 bytes with its bit in the last',
      bytes(tag(6, 0), [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]),
      'invalid',
    ],
    ['-0 and NaN', bytes(tag(7, 1), f64(-0), ld(2, [...ld(1, utf8(SIGNAL_PATHS[0])), ...tag(3, 1), ...f64(NaN)])), 'invalid'],
    ['-0 precision', bytes(VALID_BYTES, tag(7, 1), f64(-0)), 'ok'],
  ])('%s', (_name, payload, want) => expect(same(payload)).toBe(want));

  it('2,000 seeded random configs, valid and invalid', () => {
    const r = rng(20);
    const seen = new Map<string, number>();
    for (let i = 0; i < 2000; i++) {
      const v = same(randomConfig(r));
      seen.set(v, (seen.get(v) ?? 0) + 1);
    }
    expect(seen.get('differs')).toBeUndefined();
    expect(seen.get('ok')).toBeGreaterThan(100);
    expect(seen.get('invalid')).toBeGreaterThan(100);
  });

  it('20,000 seeded random mutations of real payloads: the same policy or the same refusal, never a crash', () => {
    const r = rng(21);
    const seeds = [new Uint8Array(VALID_BYTES), ...Array.from({ length: 30 }, () => randomConfig(r))];
    const seen = new Map<string, number>();
    for (let i = 0; i < 20_000; i++) {
      let b = pick(r, seeds);
      for (let n = 1 + Math.floor(r() * 3); n > 0; n--) b = mutate(r, b);
      const v = same(b);
      seen.set(v, (seen.get(v) ?? 0) + 1);
    }
    expect(seen.get('differs')).toBeUndefined();
    for (const v of ['ok', 'invalid', 'malformed']) expect(seen.get(v), v).toBeGreaterThan(200);
  });

  it('round trip: every valid policy protobufjs encodes comes back as it was', () => {
    const r = rng(22);
    for (let i = 0; i < 500; i++) {
      const p = {
        ...VALID,
        version: Math.floor(r() * 1000),
        signals: SIGNAL_PATHS.filter(() => r() < 0.5).map((path) => ({
          path,
          periodMs: Math.floor(r() * 60_000),
          deadband: Math.floor(r() * 10) / 4,
        })),
        triggers: KINDS.filter(() => r() < 0.5).map((kind) => ({ kind, threshold: KIND_NUM[kind] * 5 })),
      };
      expect(decodeAgentConfig(ref.encodeAgentConfig(p))).toStrictEqual(ref.decodeAgentConfig(ref.encodeAgentConfig(p)));
    }
  });
});
