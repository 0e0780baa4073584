// The one codec: protobuf bytes <-> validated domain objects. Only this module imports protobufjs.
import protobuf from 'protobufjs';
import { join } from 'node:path';
import { z } from 'zod';
import { PACKAGE_ROOT } from './paths.js';
import { SIGNALS, SIGNAL_PATHS } from './signals.js';
import {
  AgentStatusSchema,
  HmiPromptSchema,
  PromptAckSchema,
  SamplingPolicySchema,
  TelemetryBatchSchema,
  formatZodError,
  MAX_SAMPLES_PER_BATCH,
  type AgentStatus,
  type HmiPrompt,
  type PromptAck,
  type SamplingPolicy,
  type TelemetryBatch,
  type Severity,
  type SignalValue,
} from './domain.js';

/** Size limit per payload kind, checked before decoding. */
export const SIZE_LIMITS = {
  telemetry: 256 * 1024,
  status: 4 * 1024,
  prompt: 16 * 1024,
  ack: 1024,
  config: 64 * 1024,
} as const;
export type PayloadKind = keyof typeof SIZE_LIMITS;

export type CodecFailure = 'oversized' | 'malformed' | 'invalid';

/** A payload that cannot be accepted; `reason` is what the dead-letter store records. */
export class CodecError extends Error {
  constructor(
    readonly kind: PayloadKind,
    readonly failure: CodecFailure,
    message: string,
  ) {
    super(`${kind}: ${failure}: ${message}`);
    this.name = 'CodecError';
  }
}

const PROTO_DIR = join(PACKAGE_ROOT, 'proto', 'odopulse', 'v1');
const root = protobuf.loadSync(['telemetry.proto', 'status.proto', 'prompt.proto', 'config.proto'].map((f) => join(PROTO_DIR, f)));
const T = {
  telemetry: root.lookupType('odopulse.v1.TelemetryBatch'),
  status: root.lookupType('odopulse.v1.AgentStatus'),
  prompt: root.lookupType('odopulse.v1.HmiPrompt'),
  ack: root.lookupType('odopulse.v1.PromptAck'),
  config: root.lookupType('odopulse.v1.AgentConfig'),
};
const TO_OBJECT: protobuf.IConversionOptions = { longs: Number, enums: String, defaults: true, arrays: true, objects: true, oneofs: true };

function decodeMessage(kind: PayloadKind, bytes: Uint8Array): protobuf.Message {
  if (bytes.length > SIZE_LIMITS[kind]) throw new CodecError(kind, 'oversized', `${bytes.length} bytes > limit ${SIZE_LIMITS[kind]}`);
  if (bytes.length === 0) throw new CodecError(kind, 'malformed', 'empty payload');
  try {
    return T[kind].decode(bytes);
  } catch (err) {
    throw new CodecError(kind, 'malformed', (err as Error).message);
  }
}

function decodeRaw(kind: PayloadKind, bytes: Uint8Array): Record<string, any> {
  const m = decodeMessage(kind, bytes);
  try {
    return T[kind].toObject(m, TO_OBJECT);
  } catch (err) {
    throw new CodecError(kind, 'malformed', (err as Error).message);
  }
}

function validate<S extends z.ZodType>(kind: PayloadKind, schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new CodecError(kind, 'invalid', formatZodError(r.error));
  return r.data;
}

function encodeChecked(kind: PayloadKind, obj: Record<string, unknown>): Uint8Array {
  const type = T[kind];
  const bytes = type.encode(type.fromObject(obj)).finish();
  if (bytes.length > SIZE_LIMITS[kind]) throw new CodecError(kind, 'oversized', `${bytes.length} bytes > limit ${SIZE_LIMITS[kind]}`);
  return bytes;
}

// ---- telemetry -------------------------------------------------------------------------

function toProtoValue(v: SignalValue) {
  if (typeof v === 'number') return { number: v };
  if (typeof v === 'boolean') return { flag: v };
  return { text: v };
}

export function encodeTelemetryBatch(batch: TelemetryBatch): Uint8Array {
  return encodeChecked('telemetry', {
    vin: batch.vin,
    bootId: batch.bootId,
    seq: batch.seq,
    dropped: batch.dropped ?? 0,
    samples: batch.samples.map((s) => ({
      tsMs: s.ts,
      signals: Object.fromEntries(Object.entries(s.signals).map(([k, v]) => [k, toProtoValue(v as SignalValue)])),
      ...(s.dtcs ? { dtcs: { codes: s.dtcs } } : {}),
    })),
  });
}

export function decodeTelemetryBatch(bytes: Uint8Array): TelemetryBatch {
  // The hot path: most batches are valid, and reading and checking them by hand (below) is several
  // times cheaper than protobufjs + toObject + zod. Whatever it is not sure of goes the zod way,
  // which decides and words the error, so both ways accept and refuse exactly the same batches.
  if (bytes.length > 0 && bytes.length <= SIZE_LIMITS.telemetry) {
    const fast = wireTelemetryBatch(bytes);
    if (fast) return fast;
  }
  return validateTelemetryObject(decodeRaw('telemetry', bytes));
}

/** The schema-only decoding (toObject + zod), which the fast path must always agree with (tests). */
export function decodeTelemetryBatchViaSchema(bytes: Uint8Array): TelemetryBatch {
  return validateTelemetryObject(decodeRaw('telemetry', bytes));
}

function validateTelemetryObject(o: Record<string, any>): TelemetryBatch {
  const samples = (o.samples as any[]).map((s) => {
    const signals: Record<string, SignalValue | undefined> = {};
    for (const [k, v] of Object.entries<any>(s.signals ?? {})) signals[k] = v.value ? v[v.value] : undefined;
    return { ts: s.tsMs, signals, ...(s.dtcs ? { dtcs: s.dtcs.codes } : {}) };
  });
  return validate('telemetry', TelemetryBatchSchema, { vin: o.vin, bootId: o.bootId, seq: o.seq, samples, dropped: o.dropped });
}

// ---- telemetry fast path: the same checks as TelemetryBatchSchema -----------------------------

const VIN_RE = /^[A-HJ-NPR-Z0-9]{17}$/;
const DTC_RE = /^[PCBU][0-3][0-9A-F]{3}$/;
const MIN_TS = 946_684_800_000;
const MAX_TS = 7_258_118_400_000;
type Check = (v: unknown) => boolean;
const SIGNAL_CHECKS = new Map<string, Check>(
  SIGNAL_PATHS.map((p): [string, Check] => {
    const spec = SIGNALS[p];
    if (spec.kind === 'number') {
      const min = spec.min ?? -Infinity;
      const max = spec.max ?? Infinity;
      return [p, (v) => typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max];
    }
    if (spec.kind === 'boolean') return [p, (v) => typeof v === 'boolean'];
    const values = new Set<unknown>(spec.values);
    return [p, (v) => typeof v === 'string' && values.has(v)];
  }),
);

// ---- telemetry wire fast path ------------------------------------------------------------
// Reads the common shape of a TelemetryBatch straight off the wire (ASCII strings, each singular
// field once, no unknown fields) and checks what TelemetryBatchSchema checks. It gives up (null)
// on anything else or anything invalid, and protobufjs + zod decide instead: it only saves time.

const SCRATCH = new DataView(new ArrayBuffer(8));
const SCRATCH_BYTES = new Uint8Array(SCRATCH.buffer);
class Bail extends Error {}
const BAIL = new Bail();

class Wire {
  pos: number;
  constructor(
    readonly b: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
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
    let h = 0x811c9dc5;
    for (let i = this.pos; i < e; i++) h = Math.imul(h ^ b[i], 0x01000193);
    const i = table.byHash.get(h >>> 0);
    if (i === undefined) throw BAIL;
    const want = table.bytes[i];
    if (want.length !== e - this.pos) throw BAIL;
    for (let j = 0; j < want.length; j++) if (want[j] !== b[this.pos + j]) throw BAIL;
    this.pos = e;
    return i;
  }

  double(): number {
    if (this.pos + 8 > this.end) throw BAIL;
    for (let i = 0; i < 8; i++) SCRATCH_BYTES[i] = this.b[this.pos + i];
    this.pos += 8;
    return SCRATCH.getFloat64(0, true);
  }
}

/** Strings known in advance, looked up by an FNV-1a hash of their bytes and then compared. */
interface KnownStrings {
  strings: readonly string[];
  bytes: Uint8Array[];
  byHash: Map<number, number>;
}

function knownStrings(strings: readonly string[]): KnownStrings {
  const bytes = strings.map((x) => new TextEncoder().encode(x));
  const byHash = new Map<number, number>();
  bytes.forEach((b, i) => {
    let h = 0x811c9dc5;
    for (const c of b) h = Math.imul(h ^ c, 0x01000193);
    // a collision only makes the later string take the slow path
    if (!byHash.has(h >>> 0)) byHash.set(h >>> 0, i);
  });
  return { strings, bytes, byHash };
}

const PATHS = knownStrings(SIGNAL_PATHS);
const ENUMS: Array<KnownStrings | undefined> = SIGNAL_PATHS.map((p) =>
  SIGNALS[p].kind === 'enum' ? knownStrings(SIGNALS[p].values ?? []) : undefined,
);

function wireTelemetryBatch(bytes: Uint8Array): TelemetryBatch | null {
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
      const end = w.sub();
      const s = wireSample(new Wire(w.b, w.pos, end));
      if (!s) return null;
      samples.push(s);
      w.pos = end;
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

function wireSample(w: Wire): TelemetryBatch['samples'][number] | null {
  let ts: number | undefined;
  let dtcs: string[] | undefined;
  const values: unknown[] = new Array(SIGNAL_PATHS.length);
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
      if (!SIGNAL_CHECKS.get(SIGNAL_PATHS[rank])!(v)) return null;
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

export function encodeAgentStatus(s: AgentStatus): Uint8Array {
  return encodeChecked('status', {
    vin: s.vin,
    state: s.online ? 'AGENT_STATE_ONLINE' : 'AGENT_STATE_OFFLINE',
    agentVersion: s.agentVersion,
    configVersion: s.configVersion,
    bootId: s.bootId,
    tsMs: s.ts,
    spoolDropped: s.spoolDropped,
    spoolPending: s.spoolPending,
  });
}

export function decodeAgentStatus(bytes: Uint8Array): AgentStatus {
  const o = decodeRaw('status', bytes);
  if (o.state === 'AGENT_STATE_UNSPECIFIED') throw new CodecError('status', 'invalid', 'state: unspecified');
  return validate('status', AgentStatusSchema, {
    vin: o.vin,
    online: o.state === 'AGENT_STATE_ONLINE',
    agentVersion: o.agentVersion,
    configVersion: o.configVersion,
    bootId: o.bootId,
    ts: o.tsMs,
    spoolDropped: o.spoolDropped,
    spoolPending: o.spoolPending,
  });
}

// ---- HMI prompt ------------------------------------------------------------------------

const SEVERITY_TO_PROTO: Record<Severity, string> = { info: 'SEVERITY_INFO', warning: 'SEVERITY_WARNING', critical: 'SEVERITY_CRITICAL' };
const SEVERITY_FROM_PROTO: Record<string, Severity> = { SEVERITY_INFO: 'info', SEVERITY_WARNING: 'warning', SEVERITY_CRITICAL: 'critical' };

export function encodeHmiPrompt(p: HmiPrompt): Uint8Array {
  return encodeChecked('prompt', {
    promptId: p.promptId,
    kind: p.kind,
    severity: SEVERITY_TO_PROTO[p.severity],
    title: p.title,
    body: p.body,
    locale: p.locale,
    actions: p.actions,
    createdAtMs: p.createdAt,
    expiresAtMs: p.expiresAt,
    withdrawn: p.withdrawn,
  });
}

export function decodeHmiPrompt(bytes: Uint8Array): HmiPrompt {
  const o = decodeRaw('prompt', bytes);
  return validate('prompt', HmiPromptSchema, {
    promptId: o.promptId,
    kind: o.kind,
    severity: SEVERITY_FROM_PROTO[o.severity],
    title: o.title,
    body: o.body,
    locale: o.locale,
    actions: o.actions,
    createdAt: o.createdAtMs,
    expiresAt: o.expiresAtMs,
    withdrawn: o.withdrawn,
  });
}

// ---- prompt ack ------------------------------------------------------------------------

export function encodePromptAck(a: PromptAck): Uint8Array {
  return encodeChecked('ack', { promptId: a.promptId, outcome: `ACK_OUTCOME_${a.outcome}`, tsMs: a.ts, actionId: a.actionId ?? '' });
}

export function decodePromptAck(bytes: Uint8Array): PromptAck {
  const o = decodeRaw('ack', bytes);
  const outcome = typeof o.outcome === 'string' ? o.outcome.replace(/^ACK_OUTCOME_/, '') : o.outcome;
  return validate('ack', PromptAckSchema, { promptId: o.promptId, outcome, ts: o.tsMs, ...(o.actionId ? { actionId: o.actionId } : {}) });
}

// ---- agent config (sampling policy) ------------------------------------------------------

const TRIGGER_TO_PROTO = {
  new_dtc: 'TRIGGER_KIND_NEW_DTC',
  ignition_off: 'TRIGGER_KIND_IGNITION_OFF',
  soc_below: 'TRIGGER_KIND_SOC_BELOW',
} as const;
const TRIGGER_FROM_PROTO = Object.fromEntries(Object.entries(TRIGGER_TO_PROTO).map(([k, v]) => [v, k]));

export function encodeAgentConfig(c: SamplingPolicy): Uint8Array {
  return encodeChecked('config', {
    version: c.version,
    signals: c.signals.map((s) => ({ path: s.path, periodMs: s.periodMs, deadband: s.deadband })),
    triggers: c.triggers.map((t) => ({ kind: TRIGGER_TO_PROTO[t.kind], threshold: t.threshold })),
    batchMaxSamples: c.batchMaxSamples,
    batchMaxDelayMs: c.batchMaxDelayMs,
    locationEnabled: c.locationEnabled,
    locationPrecisionDeg: c.locationPrecisionDeg,
  });
}

export function decodeAgentConfig(bytes: Uint8Array): SamplingPolicy {
  const o = decodeRaw('config', bytes);
  return validate('config', SamplingPolicySchema, {
    version: o.version,
    signals: (o.signals as any[]).map((s) => ({ path: s.path, periodMs: s.periodMs, deadband: s.deadband })),
    triggers: (o.triggers as any[]).map((t) => ({ kind: TRIGGER_FROM_PROTO[t.kind] ?? t.kind, threshold: t.threshold })),
    batchMaxSamples: o.batchMaxSamples,
    batchMaxDelayMs: o.batchMaxDelayMs,
    locationEnabled: o.locationEnabled,
    locationPrecisionDeg: o.locationPrecisionDeg,
  });
}
