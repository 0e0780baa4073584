// The one codec: protobuf bytes <-> validated domain objects. Only this module imports protobufjs.
import protobuf from 'protobufjs';
import { join } from 'node:path';
import { z } from 'zod';
import { PACKAGE_ROOT } from './paths.js';
import { wireTelemetryBatch } from './wire.js';
import {
  AgentStatusSchema,
  HmiPromptSchema,
  PromptAckSchema,
  SamplingPolicySchema,
  TelemetryBatchSchema,
  formatZodError,
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
