// The agent's hand-written encoders (proto/agent-wire.ts) against the protobufjs ones they replace on
// the car (proto/codec-core.ts, on the generated static module): the same bytes, or the same
// CodecError, for every TelemetryBatch and AgentStatus. The config decoder's counterpart is
// agent-config-wire-equivalence.test.ts. Seeded, so a failing case is the same on every run.
import { describe, expect, it } from 'vitest';
import { encodeAgentStatus, encodeTelemetryBatch } from '../../proto/agent-wire.js';
import * as ref from '../../proto/codec-core.js';
import type { AgentStatus, TelemetryBatch } from '../../proto/domain.js';
import { SIGNAL_PATHS } from '../../proto/signals.js';
import { rng } from '../support/equivalence.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Both encoders' outcome: the bytes, or the error (name and message). */
function outcome(encode: () => Uint8Array): string {
  try {
    return hex(encode());
  } catch (err) {
    return `${(err as Error).name}: ${(err as Error).message}`;
  }
}

function sameBytes<T>(mine: (v: T) => Uint8Array, theirs: (v: T) => Uint8Array, v: T): string {
  const want = outcome(() => theirs(v));
  expect(
    outcome(() => mine(v)),
    JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x)),
  ).toBe(want);
  return want;
}

type R = () => number;
const pick = <T>(r: R, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];

// Values at the edges of each wire type; whatever the domain types allow at run time.
const INT_EDGES = [
  0,
  -0,
  1,
  -1,
  127,
  128,
  2 ** 31 - 1,
  2 ** 31,
  -(2 ** 31),
  2 ** 32 - 1,
  2 ** 32,
  2 ** 32 + 1,
  Number.MAX_SAFE_INTEGER,
  Number.MIN_SAFE_INTEGER,
  2 ** 53,
  2 ** 63,
  -(2 ** 63),
  2 ** 64,
  1e300,
  -1e300,
  NaN,
  Infinity,
  -Infinity,
  0.5,
  1.5,
  -1.5,
  Date.parse('2026-03-01T08:00:00Z'),
];
const DOUBLE_EDGES = [...INT_EDGES, Number.MIN_VALUE, -Number.MIN_VALUE, Number.MAX_VALUE, 0.1, -273.15];
// ASCII, 2-, 3- and 4-byte UTF-8, lone surrogates, NUL, a byte-order mark
const CHARS = [
  'a',
  'Z',
  '0',
  '.',
  ' ',
  'é',
  'ß',
  '中',
  '文',
  '😀',
  '🚗',
  '\ud800',
  '\udfff',
  '\u0000',
  '\ufeff',
  '\u007f',
  '\u0080',
  '\u07ff',
];

function int(r: R): number {
  return r() < 0.5 ? pick(r, INT_EDGES) : Math.floor((r() - 0.3) * 10 ** Math.floor(r() * 16));
}
function double(r: R): number {
  return r() < 0.5 ? pick(r, DOUBLE_EDGES) : (r() - 0.5) * 10 ** Math.floor(r() * 12 - 4);
}
/** Lengths around protobufjs's thresholds: 40 UTF-16 units (its own UTF-8 writer below), 128 bytes (2-byte length). */
function str(r: R): string {
  const n = pick(r, [0, 1, 5, 17, 39, 40, 41, 64, 127, 128, 129, 300, Math.floor(r() * 60)]);
  let s = '';
  const ascii = r() < 0.4;
  while (s.length < n) s += ascii ? String.fromCharCode(32 + Math.floor(r() * 95)) : pick(r, CHARS);
  return s;
}

function signalValue(r: R): unknown {
  const k = r();
  if (k < 0.5) return double(r);
  if (k < 0.7) return r() < 0.5;
  if (k < 0.95) return r() < 0.5 ? pick(r, ['OFF', 'ON', 'START', 'ACC', 'CCS', '']) : str(r);
  // not a SignalValue, but a spool record is JSON: what protobufjs makes of it (an empty value)
  return r() < 0.5 ? undefined : null;
}

function sample(r: R) {
  const signals: Record<string, unknown> = {};
  for (let n = Math.floor(r() * 14); n > 0; n--) signals[r() < 0.8 ? pick(r, SIGNAL_PATHS) : str(r)] = signalValue(r);
  const s: Record<string, unknown> = { ts: int(r), signals };
  if (r() < 0.4) s.dtcs = Array.from({ length: Math.floor(r() * 4) }, () => (r() < 0.7 ? pick(r, ['P0A80', 'U0100', 'B1234']) : str(r)));
  return s;
}

function batch(r: R): TelemetryBatch {
  const b: Record<string, unknown> = {
    vin: r() < 0.7 ? 'LSVAU2180N2183294' : str(r),
    bootId: r() < 0.5 ? '3f1c2a9e-8b7d-4c6e-9f01-23456789abcd' : str(r),
    seq: int(r),
    samples: Array.from({ length: pick(r, [0, 1, 2, 10, Math.floor(r() * 40)]) }, () => sample(r)),
  };
  if (r() < 0.8) b.dropped = int(r);
  return b as unknown as TelemetryBatch;
}

function status(r: R): AgentStatus {
  return {
    vin: r() < 0.7 ? 'LSVAU2180N2183294' : str(r),
    online: r() < 0.5,
    agentVersion: r() < 0.5 ? '0.1.0' : str(r),
    configVersion: int(r),
    bootId: str(r),
    ts: int(r),
    spoolDropped: int(r),
    spoolPending: int(r),
  };
}

describe('encodeTelemetryBatch: the bytes protobufjs writes', () => {
  it('a typical batch', () => {
    const b: TelemetryBatch = {
      vin: 'LSVAU2180N2183294',
      bootId: 'boot-1',
      seq: 42,
      dropped: 3,
      samples: [
        { ts: Date.parse('2026-03-01T08:00:00Z'), signals: { [SIGNAL_PATHS[0]]: 18.5, [SIGNAL_PATHS[2]]: 'OFF' }, dtcs: ['P0A80'] },
        { ts: Date.parse('2026-03-01T08:00:01Z'), signals: {}, dtcs: [] },
      ],
    };
    expect(hex(encodeTelemetryBatch(b))).toBe(hex(ref.encodeTelemetryBatch(b)));
  });

  it('5,000 seeded random batches, edge values included', () => {
    const r = rng(14);
    for (let i = 0; i < 5000; i++) sameBytes(encodeTelemetryBatch, ref.encodeTelemetryBatch, batch(r));
  });

  it('large batches (multi-byte lengths) and the size limit, refused with the same CodecError', () => {
    const r = rng(15);
    const big = (n: number) => ({ ...batch(r), samples: Array.from({ length: n }, () => sample(r)) }) as unknown as TelemetryBatch;
    let oversized = 0;
    for (const n of [100, 500, 1000, 2000, 3000, 4000]) {
      const b = big(n);
      if (sameBytes(encodeTelemetryBatch, ref.encodeTelemetryBatch, b).startsWith('CodecError: telemetry: oversized')) oversized++;
    }
    expect(oversized).toBeGreaterThan(0);
  });
});

describe('encodeAgentStatus: the bytes protobufjs writes', () => {
  it('birth and death', () => {
    const s = status(rng(1));
    for (const online of [true, false]) {
      const v = { ...s, online, configVersion: 3, ts: Date.now(), spoolDropped: 0, spoolPending: 12 };
      expect(hex(encodeAgentStatus(v))).toBe(hex(ref.encodeAgentStatus(v)));
    }
  });

  it('5,000 seeded random statuses, edge values and the size limit included', () => {
    const r = rng(16);
    let oversized = 0;
    for (let i = 0; i < 5000; i++) {
      const s = status(r);
      if (i % 500 === 0) s.agentVersion = 'x'.repeat(5000);
      if (sameBytes(encodeAgentStatus, ref.encodeAgentStatus, s).startsWith('CodecError: status: oversized')) oversized++;
    }
    expect(oversized).toBe(10);
  });
});
