// The agent's encoders, by hand: TelemetryBatch and AgentStatus without protobufjs (it and `long`
// cost the agent 2–3 MB of RSS for three messages; agent-config-wire.ts decodes the third). The
// bytes are exactly those codec-core.ts (protobufjs, kept for the cloud side) writes for the same
// objects: test/unit/agent-wire-equivalence.test.ts. Field numbers and types: odopulse/v1/*.proto.
import { CodecError, SIZE_LIMITS, type PayloadKind } from './codec-limits.js';
import type { AgentStatus, SignalValue, TelemetryBatch } from './domain.js';

// ---- writer ------------------------------------------------------------------------------

const TWO_32 = 4294967296;
const TWO_63 = 9223372036854775808;
const TWO_64 = 18446744073709551616;

/** Appends protobuf wire data to a growing buffer; a nested message's length is patched in at its end. */
class Writer {
  buf = Buffer.allocUnsafe(512);
  pos = 0;

  reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** A varint of `v >>> 0`, as protobufjs's uint32 (tags, lengths, uint32 and bool fields). */
  uint32(v: number): void {
    v >>>= 0;
    this.reserve(5);
    while (v > 127) {
      this.buf[this.pos++] = (v & 127) | 128;
      v >>>= 7;
    }
    this.buf[this.pos++] = v;
  }

  /** A 64-bit varint from its two 32-bit halves. */
  varint64(lo: number, hi: number): void {
    this.reserve(10);
    while (hi) {
      this.buf[this.pos++] = (lo & 127) | 128;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.uint32(lo);
  }

  double(v: number): void {
    this.reserve(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  string(s: string): void {
    const n = s.length;
    // protobufjs writes a string of fewer than 40 UTF-16 units with its own encoder, which writes a
    // lone surrogate as its 3 bytes; longer ones through Buffer, which writes U+FFFD. Same here.
    if (n < 40) {
      const start = this.pos;
      this.reserve(1 + n * 3);
      this.pos++;
      const b = this.buf;
      let p = this.pos;
      for (let i = 0; i < n; i++) {
        let c = s.charCodeAt(i);
        let c2: number;
        if (c < 128) b[p++] = c;
        else if (c < 2048) {
          b[p++] = (c >> 6) | 192;
          b[p++] = (c & 63) | 128;
        } else if ((c & 0xfc00) === 0xd800 && ((c2 = s.charCodeAt(i + 1)) & 0xfc00) === 0xdc00) {
          c = 0x10000 + ((c & 0x03ff) << 10) + (c2 & 0x03ff);
          i++;
          b[p++] = (c >> 18) | 240;
          b[p++] = ((c >> 12) & 63) | 128;
          b[p++] = ((c >> 6) & 63) | 128;
          b[p++] = (c & 63) | 128;
        } else {
          b[p++] = (c >> 12) | 224;
          b[p++] = ((c >> 6) & 63) | 128;
          b[p++] = (c & 63) | 128;
        }
      }
      this.pos = p;
      this.end(start);
      return;
    }
    const len = Buffer.byteLength(s, 'utf8');
    this.uint32(len);
    this.reserve(len);
    this.pos += this.buf.write(s, this.pos, len, 'utf8');
  }

  /** Starts a length-delimited part: one byte kept for its length (the usual case, < 128). */
  begin(): number {
    this.reserve(1);
    return this.pos++;
  }

  /** Ends the part begun at `start`: writes its length there, moving the part if it needs more bytes. */
  end(start: number): void {
    const len = this.pos - start - 1;
    if (len < 128) {
      this.buf[start] = len;
      return;
    }
    let size = 1;
    for (let v = len; v > 127; v >>>= 7) size++;
    this.reserve(size - 1);
    this.buf.copyWithin(start + size, start + 1, this.pos);
    this.pos = start;
    this.uint32(len);
    this.pos += len;
  }

  finish(kind: PayloadKind): Uint8Array {
    if (this.pos > SIZE_LIMITS[kind]) throw new CodecError(kind, 'oversized', `${this.pos} bytes > limit ${SIZE_LIMITS[kind]}`);
    return this.buf.subarray(0, this.pos);
  }
}

/**
 * The two 32-bit halves of the 64-bit integer protobufjs writes for `v` (long.js's fromNumber:
 * NaN is 0, out-of-range values are clamped, fractions truncated; unsigned: negatives are 0).
 */
function longBits(v: number, unsigned: boolean): [lo: number, hi: number] {
  if (Number.isNaN(v)) return [0, 0];
  if (unsigned) {
    if (v < 0) return [0, 0];
    if (v >= TWO_64) return [0xffffffff, 0xffffffff];
  } else {
    if (v <= -TWO_63) return [0, 0x80000000];
    if (v + 1 >= TWO_63) return [0xffffffff, 0x7fffffff];
  }
  const a = Math.abs(v);
  let lo = (a % TWO_32) >>> 0;
  let hi = (a / TWO_32) >>> 0;
  if (v < 0) {
    // two's complement
    lo = ~lo >>> 0;
    hi = ~hi >>> 0;
    if (++lo > 0xffffffff) {
      lo = 0;
      hi = (hi + 1) >>> 0;
    }
  }
  return [lo, hi];
}

/** An int64 / uint64 field; a zero value is left out, as proto3 leaves out defaults. */
function int64Field(w: Writer, tag: number, v: number, unsigned: boolean): void {
  const [lo, hi] = longBits(v, unsigned);
  if (lo === 0 && hi === 0) return;
  w.uint32(tag);
  w.varint64(lo, hi);
}

function uint32Field(w: Writer, tag: number, v: number): void {
  if (v >>> 0 === 0) return;
  w.uint32(tag);
  w.uint32(v);
}

function stringField(w: Writer, tag: number, v: string): void {
  if (v === '') return;
  w.uint32(tag);
  w.string(v);
}

// ---- telemetry, status -------------------------------------------------------------------

/** A SignalValue: the oneof member of the value's type (written even when it is 0, false or ''). */
function signalValue(w: Writer, v: SignalValue | undefined): void {
  if (v === undefined || v === null) return;
  if (typeof v === 'number') {
    w.uint32(9);
    w.double(v);
  } else if (typeof v === 'boolean') {
    w.uint32(16);
    w.uint32(v ? 1 : 0);
  } else {
    w.uint32(26);
    w.string(String(v));
  }
}

function sample(w: Writer, s: TelemetryBatch['samples'][number]): void {
  int64Field(w, 8, s.ts, false);
  const signals = s.signals as Record<string, SignalValue | undefined>;
  for (const key of Object.keys(signals)) {
    // map<string, SignalValue> entry: key = 1, value = 2, both always written
    w.uint32(18);
    const entry = w.begin();
    w.uint32(10);
    w.string(key);
    w.uint32(18);
    const value = w.begin();
    signalValue(w, signals[key]);
    w.end(value);
    w.end(entry);
  }
  if (s.dtcs) {
    w.uint32(26);
    const list = w.begin();
    for (const code of s.dtcs) {
      w.uint32(10);
      w.string(String(code));
    }
    w.end(list);
  }
}

export function encodeTelemetryBatch(batch: TelemetryBatch): Uint8Array {
  const w = new Writer();
  stringField(w, 10, batch.vin);
  stringField(w, 18, batch.bootId);
  int64Field(w, 24, batch.seq, true);
  for (const s of batch.samples) {
    w.uint32(34);
    const start = w.begin();
    sample(w, s);
    w.end(start);
  }
  uint32Field(w, 40, batch.dropped ?? 0);
  return w.finish('telemetry');
}

const AGENT_STATE_ONLINE = 1;
const AGENT_STATE_OFFLINE = 2;

export function encodeAgentStatus(s: AgentStatus): Uint8Array {
  const w = new Writer();
  stringField(w, 10, s.vin);
  w.uint32(16);
  w.uint32(s.online ? AGENT_STATE_ONLINE : AGENT_STATE_OFFLINE);
  stringField(w, 26, s.agentVersion);
  uint32Field(w, 32, s.configVersion);
  stringField(w, 42, s.bootId);
  int64Field(w, 48, s.ts, false);
  int64Field(w, 56, s.spoolDropped, true);
  int64Field(w, 64, s.spoolPending, true);
  return w.finish('status');
}
