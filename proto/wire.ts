// The telemetry wire fast path of the codec (codec.ts): a TelemetryBatch read straight off the
// wire with the same checks as TelemetryBatchSchema. No protobufjs here; codec.ts stays its only
// importer and falls back to protobufjs + zod whenever this gives up.
import { MAX_SAMPLES_PER_BATCH, type SignalValue, type TelemetryBatch } from './domain.js';
import { SIGNALS, SIGNAL_PATHS } from './signals.js';

// ---- telemetry fast path: the same checks as TelemetryBatchSchema -----------------------------

const VIN_RE = /^[A-HJ-NPR-Z0-9]{17}$/;
const DTC_RE = /^[PCBU][0-3][0-9A-F]{3}$/;
const MIN_TS = 946_684_800_000;
const MAX_TS = 7_258_118_400_000;
type Check = (v: unknown) => boolean;
/** Each signal's check, by its rank in SIGNAL_PATHS. */
const SIGNAL_CHECKS: Check[] = SIGNAL_PATHS.map((p): Check => {
  const spec = SIGNALS[p];
  if (spec.kind === 'number') {
    const min = spec.min ?? -Infinity;
    const max = spec.max ?? Infinity;
    return (v) => typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max;
  }
  if (spec.kind === 'boolean') return (v) => typeof v === 'boolean';
  const values = new Set<unknown>(spec.values);
  return (v) => typeof v === 'string' && values.has(v);
});

// ---- telemetry wire fast path ------------------------------------------------------------
// Reads the common shape of a TelemetryBatch straight off the wire (ASCII strings, each singular
// field once, no unknown fields) and checks what TelemetryBatchSchema checks. It gives up (null)
// on anything else or anything invalid, and protobufjs + zod decide instead: it only saves time.

class Bail extends Error {}
const BAIL = new Bail();

class Wire {
  pos: number;
  /** Doubles read in place (little-endian, as protobuf's fixed64). */
  private readonly view: DataView;
  constructor(
    readonly b: Uint8Array,
    start: number,
    /** Where the message being read ends (a sample's end while one is read). */
    public end: number,
  ) {
    this.pos = start;
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  /** A varint of at most 7 bytes (< 2^49; larger values go the slow way). */
  varint(): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (this.pos >= this.end) throw BAIL;
      const c = this.b[this.pos++];
      v += (c & 0x7f) * mul;
      if (c < 0x80) return v;
      mul *= 128;
    }
    throw BAIL;
  }

  /** A length-delimited field's end offset. */
  sub(): number {
    const len = this.varint();
    const e = this.pos + len;
    if (e > this.end) throw BAIL;
    return e;
  }

  ascii(): string {
    const e = this.sub();
    const b = this.b;
    for (let i = this.pos; i < e; i++) if (b[i] >= 0x80) throw BAIL;
    const s = String.fromCharCode.apply(null, b.subarray(this.pos, e) as unknown as number[]);
    this.pos = e;
    return s;
  }

  /** A string that must be one of `table`'s (signal paths, enum values): found without building it. */
  known(table: KnownStrings): number {
    const e = this.sub();
    const b = this.b;
    const start = this.pos;
    const candidates = table.byLength[e - start];
    if (candidates === undefined) throw BAIL;
    // compared from the end: the paths share their beginnings ("Vehicle.Powertrain.")
    next: for (const i of candidates) {
      const want = table.bytes[i];
      for (let j = want.length - 1; j >= 0; j--) if (want[j] !== b[start + j]) continue next;
      this.pos = e;
      return i;
    }
    throw BAIL;
  }

  double(): number {
    if (this.pos + 8 > this.end) throw BAIL;
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }
}

/** Strings known in advance, looked up by their length and then compared byte by byte. */
interface KnownStrings {
  strings: readonly string[];
  bytes: Uint8Array[];
  /** Indexes of the strings of each byte length. */
  byLength: Array<number[] | undefined>;
}

function knownStrings(strings: readonly string[]): KnownStrings {
  const bytes = strings.map((x) => new TextEncoder().encode(x));
  const byLength: Array<number[] | undefined> = [];
  bytes.forEach((b, i) => (byLength[b.length] ??= []).push(i));
  return { strings, bytes, byLength };
}

const PATHS = knownStrings(SIGNAL_PATHS);
const ENUMS: Array<KnownStrings | undefined> = SIGNAL_PATHS.map((p) =>
  SIGNALS[p].kind === 'enum' ? knownStrings(SIGNALS[p].values ?? []) : undefined,
);

export function wireTelemetryBatch(bytes: Uint8Array): TelemetryBatch | null {
  try {
    return wireBatch(new Wire(bytes, 0, bytes.length));
  } catch (err) {
    if (err === BAIL) return null;
    throw err;
  }
}

function wireBatch(w: Wire): TelemetryBatch | null {
  let vin: string | undefined;
  let bootId: string | undefined;
  let seq: number | undefined;
  let dropped: number | undefined;
  const samples: TelemetryBatch['samples'] = [];
  while (w.pos < w.end) {
    const tag = w.varint();
    if (tag === 0x0a && vin === undefined) vin = w.ascii();
    else if (tag === 0x12 && bootId === undefined) bootId = w.ascii();
    else if (tag === 0x18 && seq === undefined) seq = w.varint();
    else if (tag === 0x22) {
      // the sample is read by the same reader, bounded by the sample's end meanwhile
      const end = w.sub();
      const outer = w.end;
      w.end = end;
      const s = wireSample(w);
      w.end = outer;
      if (!s || w.pos !== end) return null;
      samples.push(s);
    } else if (tag === 0x28 && dropped === undefined) {
      dropped = w.varint();
      if (dropped > 0xffffffff) return null;
    } else return null;
  }
  vin ??= '';
  bootId ??= '';
  seq ??= 0;
  dropped ??= 0;
  if (!VIN_RE.test(vin) || bootId.length < 1 || bootId.length > 64) return null;
  if (!Number.isSafeInteger(seq) || samples.length < 1 || samples.length > MAX_SAMPLES_PER_BATCH) return null;
  return { vin, bootId, seq, samples, dropped };
}

/** A sample's values by signal rank while it is read (cleared after each sample). */
const VALUES: unknown[] = new Array<unknown>(SIGNAL_PATHS.length).fill(undefined);

function wireSample(w: Wire): TelemetryBatch['samples'][number] | null {
  try {
    return readSample(w, VALUES);
  } finally {
    VALUES.fill(undefined);
  }
}

function readSample(w: Wire, values: unknown[]): TelemetryBatch['samples'][number] | null {
  let ts: number | undefined;
  let dtcs: string[] | undefined;
  let count = 0;
  while (w.pos < w.end) {
    const tag = w.varint();
    if (tag === 0x08 && ts === undefined) ts = w.varint();
    else if (tag === 0x12) {
      // map entry: key = 1, value = 2 (a SignalValue with exactly one member)
      const end = w.sub();
      if (w.varint() !== 0x0a) return null;
      const rank = w.known(PATHS);
      if (values[rank] !== undefined) return null;
      if (w.varint() !== 0x12) return null;
      const vend = w.sub();
      const vt = w.varint();
      let v: unknown;
      if (vt === 0x09) v = w.double();
      else if (vt === 0x10) {
        const f = w.varint();
        if (f > 1) return null;
        v = f === 1;
      } else if (vt === 0x1a) {
        const table = ENUMS[rank];
        if (!table) return null;
        v = table.strings[w.known(table)];
      } else return null;
      if (w.pos !== vend || vend !== end) return null;
      if (!SIGNAL_CHECKS[rank](v)) return null;
      values[rank] = v;
      count++;
    } else if (tag === 0x1a && dtcs === undefined) {
      const end = w.sub();
      dtcs = [];
      while (w.pos < end) {
        if (w.varint() !== 0x0a) return null;
        const c = w.ascii();
        if (!DTC_RE.test(c)) return null;
        dtcs.push(c);
      }
      if (w.pos !== end || dtcs.length > 64) return null;
    } else return null;
  }
  if (ts === undefined || ts < MIN_TS || ts > MAX_TS) return null;
  const signals: Record<string, SignalValue> = {};
  if (count) for (let i = 0; i < values.length; i++) if (values[i] !== undefined) signals[SIGNAL_PATHS[i]] = values[i] as SignalValue;
  return dtcs ? { ts, signals, dtcs } : { ts, signals };
}

// ---- status ----------------------------------------------------------------------------
