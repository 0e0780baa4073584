// The agent's AgentConfig decoder, by hand (no protobufjs; agent-wire.ts has the encoders). It
// accepts and refuses exactly the bytes protobufjs's generated decoder does (codec-core.ts, the
// cloud side's) and gives the same policy through the same checks (checkSamplingPolicy):
// test/unit/agent-wire-equivalence.test.ts. Protobuf's rules as protobufjs applies them: the last
// value of a field wins, repeated messages append, unknown fields and known fields of another
// wire type are skipped, groups are skipped to their matching end, field number 0 and wire types
// 4, 6 and 7 are refused. Field numbers and types: odopulse/v1/config.proto.
import { checkSamplingPolicy } from './checks.js';
import { CodecError, SIZE_LIMITS } from './codec-limits.js';
import type { SamplingPolicy } from './domain.js';

/** Malformed input; turned into a CodecError by decodeAgentConfig. */
class Malformed extends Error {}

/** protobufjs's nesting limit (and protoc's), for groups inside groups. */
const RECURSION_LIMIT = 100;

let strictUtf8: TextDecoder | undefined;

class Reader {
  pos = 0;
  /** The end of the message being read (a nested message's end while it is read). */
  len: number;
  private view: DataView | undefined;

  constructor(readonly buf: Uint8Array) {
    this.len = buf.length;
  }

  private byte(): number {
    if (this.pos >= this.len) throw new Malformed(`truncated at byte ${this.pos} of ${this.len}`);
    return this.buf[this.pos++];
  }

  /** A varint of at most `max` bytes; its low 32 bits (unsigned). */
  private varint32(max: number, what: string): number {
    let v = 0;
    for (let i = 0; i < max; i++) {
      const b = this.byte();
      if (i < 5) v = (v | ((b & 127) << (i * 7))) >>> 0;
      if (b < 128) return v;
    }
    throw new Malformed(`invalid ${what} encoding at byte ${this.pos}`);
  }

  /** A tag fits in 32 bits: at most 5 bytes, the 5th no higher than 15. */
  tag(): number {
    const start = this.pos;
    const v = this.varint32(5, 'tag');
    if (this.pos - start === 5 && this.buf[this.pos - 1] > 15) throw new Malformed(`invalid tag encoding at byte ${this.pos}`);
    return v;
  }

  uint32(): number {
    return this.varint32(10, 'varint');
  }

  bool(): boolean {
    let v = false;
    for (let i = 0; i < 10; i++) {
      const b = this.byte();
      if (b & 127) v = true;
      if (b < 128) return v;
    }
    throw new Malformed(`invalid varint encoding at byte ${this.pos}`);
  }

  double(): number {
    if (this.pos + 8 > this.len) throw new Malformed(`truncated double at byte ${this.pos} of ${this.len}`);
    this.view ??= new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A length prefix (< 2^31) and where the part it prefixes ends, within the current message. */
  sub(): number {
    const start = this.pos;
    const n = this.varint32(5, 'length');
    if (this.pos - start === 5 && this.buf[this.pos - 1] > 7) throw new Malformed(`invalid length encoding at byte ${this.pos}`);
    const end = this.pos + n;
    if (end > this.len) throw new Malformed(`length ${n} at byte ${this.pos} runs past the end (${this.len})`);
    return end;
  }

  /** A string that must be valid UTF-8 (a byte-order mark is kept, as protobufjs keeps it). */
  string(): string {
    const end = this.sub();
    const bytes = this.buf.subarray(this.pos, end);
    this.pos = end;
    strictUtf8 ??= new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    try {
      return strictUtf8.decode(bytes);
    } catch {
      throw new Malformed(`invalid UTF-8 in a string ending at byte ${end}`);
    }
  }

  /** Reads one nested message with `read`, bounded by its length prefix. */
  nested<T>(read: (r: Reader) => T): T {
    const end = this.sub();
    const outer = this.len;
    this.len = end;
    const v = read(this);
    this.len = outer;
    return v;
  }

  /** Skips a field this decoder does not read. */
  skip(wireType: number, field: number, depth: number): void {
    if (depth > RECURSION_LIMIT) throw new Malformed('groups nested too deep');
    if (field === 0) throw new Malformed('illegal tag: field number 0');
    if (wireType === 0) while (this.byte() & 128);
    else if (wireType === 1) this.skipBytes(8);
    else if (wireType === 2) this.pos = this.sub();
    else if (wireType === 5) this.skipBytes(4);
    else if (wireType === 3) {
      for (;;) {
        const tag = this.tag();
        const inner = tag >>> 3;
        if (inner === 0) throw new Malformed('illegal tag: field number 0');
        if ((tag & 7) === 4) {
          if (inner !== field) throw new Malformed('invalid end group tag');
          return;
        }
        this.skip(tag & 7, inner, depth + 1);
      }
    } else throw new Malformed(`invalid wire type ${wireType} at byte ${this.pos}`);
  }

  private skipBytes(n: number): void {
    if (this.pos + n > this.len) throw new Malformed(`truncated at byte ${this.pos} of ${this.len}`);
    this.pos += n;
  }
}

interface RawSignal {
  path: string;
  periodMs: number;
  deadband: number;
}
interface RawTrigger {
  kind: unknown;
  threshold: number;
}

function readSignal(r: Reader): RawSignal {
  const s: RawSignal = { path: '', periodMs: 0, deadband: 0 };
  while (r.pos < r.len) {
    const tag = r.tag();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === 2) s.path = r.string();
    else if (field === 2 && wt === 0) s.periodMs = r.uint32();
    else if (field === 3 && wt === 1) s.deadband = r.double();
    else r.skip(wt, field, 1);
  }
  return s;
}

/** TriggerKind (config.proto) -> the policy's kind; TRIGGER_KIND_UNSPECIFIED and unknown numbers stay as protobufjs names them. */
const TRIGGER_KIND: Record<number, string> = {
  0: 'TRIGGER_KIND_UNSPECIFIED',
  1: 'new_dtc',
  2: 'ignition_off',
  3: 'soc_below',
};

function readTrigger(r: Reader): RawTrigger {
  let kind = 0;
  let threshold = 0;
  while (r.pos < r.len) {
    const tag = r.tag();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === 0) kind = r.uint32() | 0;
    else if (field === 2 && wt === 1) threshold = r.double();
    else r.skip(wt, field, 1);
  }
  return { kind: TRIGGER_KIND[kind] ?? kind, threshold };
}

function readConfig(r: Reader) {
  const c = {
    version: 0,
    signals: [] as RawSignal[],
    triggers: [] as RawTrigger[],
    batchMaxSamples: 0,
    batchMaxDelayMs: 0,
    locationEnabled: false,
    locationPrecisionDeg: 0,
  };
  while (r.pos < r.len) {
    const tag = r.tag();
    const field = tag >>> 3;
    const wt = tag & 7;
    if (field === 1 && wt === 0) c.version = r.uint32();
    else if (field === 2 && wt === 2) c.signals.push(r.nested(readSignal));
    else if (field === 3 && wt === 2) c.triggers.push(r.nested(readTrigger));
    else if (field === 4 && wt === 0) c.batchMaxSamples = r.uint32();
    else if (field === 5 && wt === 0) c.batchMaxDelayMs = r.uint32();
    else if (field === 6 && wt === 0) c.locationEnabled = r.bool();
    else if (field === 7 && wt === 1) c.locationPrecisionDeg = r.double();
    else r.skip(wt, field, 0);
  }
  return c;
}

/** The sampling policy in an AgentConfig payload: size checked, decoded, then checked as the policy. */
export function decodeAgentConfig(bytes: Uint8Array): SamplingPolicy {
  const limit = SIZE_LIMITS.config;
  if (bytes.length > limit) throw new CodecError('config', 'oversized', `${bytes.length} bytes > limit ${limit}`);
  if (bytes.length === 0) throw new CodecError('config', 'malformed', 'empty payload');
  let raw: ReturnType<typeof readConfig>;
  try {
    raw = readConfig(new Reader(bytes));
  } catch (err) {
    if (err instanceof Malformed) throw new CodecError('config', 'malformed', err.message);
    throw err;
  }
  const r = checkSamplingPolicy(raw);
  if (!r.success) throw new CodecError('config', 'invalid', r.error.message);
  return r.data;
}
