// The one codec: protobuf bytes <-> validated domain objects. codec-core.ts holds its zod-free part
// (the generated static protobuf module, size limits, every encoder, the config decoder); this module
// re-exports it and adds the decoders of what the cloud receives (telemetry, status, prompts, acks),
// validated with zod. The vehicle side imports codec-core.ts alone and so never loads zod.
import { z } from 'zod';
import { CodecError, SEVERITY_FROM_PROTO, SIZE_LIMITS, decodeRaw as decodeRawObject, type PayloadKind } from './codec-core.js';
import { wireTelemetryBatch } from './wire.js';
import {
  AgentStatusSchema,
  HmiPromptSchema,
  PromptAckSchema,
  TelemetryBatchSchema,
  formatZodError,
  type AgentStatus,
  type HmiPrompt,
  type PromptAck,
  type TelemetryBatch,
  type SignalValue,
} from './domain.js';

export {
  CodecError,
  SIZE_LIMITS,
  decodeAgentConfig,
  encodeAgentConfig,
  encodeAgentStatus,
  encodeHmiPrompt,
  encodePromptAck,
  encodeTelemetryBatch,
  type CodecFailure,
  type PayloadKind,
} from './codec-core.js';

/** The decoded plain object, as protobufjs's toObject gives it (validated by zod right after). */
const decodeRaw = (kind: PayloadKind, bytes: Uint8Array): Record<string, any> => decodeRawObject(kind, bytes);

function validate<S extends z.ZodType>(kind: PayloadKind, schema: S, value: unknown): z.infer<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new CodecError(kind, 'invalid', formatZodError(r.error));
  return r.data;
}

// ---- telemetry -------------------------------------------------------------------------

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

export function decodePromptAck(bytes: Uint8Array): PromptAck {
  const o = decodeRaw('ack', bytes);
  const outcome = typeof o.outcome === 'string' ? o.outcome.replace(/^ACK_OUTCOME_/, '') : o.outcome;
  return validate('ack', PromptAckSchema, { promptId: o.promptId, outcome, ts: o.tsMs, ...(o.actionId ? { actionId: o.actionId } : {}) });
}
