// The codec's zod-free core: protobuf bytes <-> plain objects with the static module generated from
// the .proto files (proto/gen/, scripts/gen-proto.mjs; only protobufjs/minimal is loaded), every
// encoder, and the config decoder, whose policy is checked by hand (checks.ts). codec.ts is the
// codec: it re-exports all of this and adds the cloud side's decoders, validated with zod. The
// agent does not import it: agent-wire.ts and agent-config-wire.ts write and read the agent's three
// messages by hand, proved to give the same bytes and policies, so a car never loads protobufjs.
import type { IConversionOptions } from 'protobufjs';
import { checkSamplingPolicy } from './checks.js';
import type { AgentStatus, HmiPrompt, PromptAck, SamplingPolicy, Severity, SignalValue, TelemetryBatch } from './domain.js';
import { CodecError, SIZE_LIMITS, type PayloadKind } from './codec-limits.js';
import { odopulse } from './gen/odopulse.js';

export { CodecError, SIZE_LIMITS, type CodecFailure, type PayloadKind } from './codec-limits.js';

const pb = odopulse.v1;
interface StaticType<M> {
  decode(bytes: Uint8Array): M;
  encode(message: M): { finish(): Uint8Array };
  fromObject(object: Record<string, unknown>): M;
  toObject(message: M, options: IConversionOptions): Record<string, unknown>;
}
const T: Record<PayloadKind, StaticType<unknown>> = {
  telemetry: pb.TelemetryBatch as StaticType<unknown>,
  status: pb.AgentStatus as StaticType<unknown>,
  prompt: pb.HmiPrompt as StaticType<unknown>,
  ack: pb.PromptAck as StaticType<unknown>,
  config: pb.AgentConfig as StaticType<unknown>,
};
const TO_OBJECT: IConversionOptions = { longs: Number, enums: String, defaults: true, arrays: true, objects: true, oneofs: true };

/** Size checks, protobuf decoding and conversion to a plain object (int64 as numbers, enums as names, defaults filled in). */
export function decodeRaw(kind: PayloadKind, bytes: Uint8Array): Record<string, unknown> {
  if (bytes.length > SIZE_LIMITS[kind]) throw new CodecError(kind, 'oversized', `${bytes.length} bytes > limit ${SIZE_LIMITS[kind]}`);
  if (bytes.length === 0) throw new CodecError(kind, 'malformed', 'empty payload');
  let m: unknown;
  try {
    m = T[kind].decode(bytes);
  } catch (err) {
    throw new CodecError(kind, 'malformed', (err as Error).message);
  }
  try {
    return T[kind].toObject(m, TO_OBJECT);
  } catch (err) {
    throw new CodecError(kind, 'malformed', (err as Error).message);
  }
}

function encodeChecked(kind: PayloadKind, obj: Record<string, unknown>): Uint8Array {
  const type = T[kind];
  const bytes = type.encode(type.fromObject(obj)).finish();
  if (bytes.length > SIZE_LIMITS[kind]) throw new CodecError(kind, 'oversized', `${bytes.length} bytes > limit ${SIZE_LIMITS[kind]}`);
  return bytes;
}

// ---- telemetry, status ------------------------------------------------------------------

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

// ---- HMI prompt, prompt ack ---------------------------------------------------------------

const SEVERITY_TO_PROTO: Record<Severity, string> = { info: 'SEVERITY_INFO', warning: 'SEVERITY_WARNING', critical: 'SEVERITY_CRITICAL' };
export const SEVERITY_FROM_PROTO: Record<string, Severity> = {
  SEVERITY_INFO: 'info',
  SEVERITY_WARNING: 'warning',
  SEVERITY_CRITICAL: 'critical',
};

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

export function encodePromptAck(a: PromptAck): Uint8Array {
  return encodeChecked('ack', { promptId: a.promptId, outcome: `ACK_OUTCOME_${a.outcome}`, tsMs: a.ts, actionId: a.actionId ?? '' });
}

// ---- agent config (sampling policy) ------------------------------------------------------

const TRIGGER_TO_PROTO = {
  new_dtc: 'TRIGGER_KIND_NEW_DTC',
  ignition_off: 'TRIGGER_KIND_IGNITION_OFF',
  soc_below: 'TRIGGER_KIND_SOC_BELOW',
} as const;
const TRIGGER_FROM_PROTO: Record<string, string> = Object.fromEntries(Object.entries(TRIGGER_TO_PROTO).map(([k, v]) => [v, k]));

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

interface RawConfig {
  version: number;
  signals: { path: string; periodMs: number; deadband: number }[];
  triggers: { kind: string; threshold: number }[];
  batchMaxSamples: number;
  batchMaxDelayMs: number;
  locationEnabled: boolean;
  locationPrecisionDeg: number;
}

export function decodeAgentConfig(bytes: Uint8Array): SamplingPolicy {
  const o = decodeRaw('config', bytes) as unknown as RawConfig;
  const r = checkSamplingPolicy({
    version: o.version,
    signals: o.signals.map((s) => ({ path: s.path, periodMs: s.periodMs, deadband: s.deadband })),
    triggers: o.triggers.map((t) => ({ kind: TRIGGER_FROM_PROTO[t.kind] ?? t.kind, threshold: t.threshold })),
    batchMaxSamples: o.batchMaxSamples,
    batchMaxDelayMs: o.batchMaxDelayMs,
    locationEnabled: o.locationEnabled,
    locationPrecisionDeg: o.locationPrecisionDeg,
  });
  if (!r.success) throw new CodecError('config', 'invalid', r.error.message);
  return r.data;
}
