// Typed domain objects that cross the system's edges, validated with zod. The codec turns
// protobuf bytes into these; the replay reader turns JSONL into these; nothing else parses.
import { z } from 'zod';
import {
  DTC_MESSAGE,
  DTC_PATTERN,
  MAX_SAMPLES_PER_BATCH,
  POWERTRAINS,
  TRIGGER_KINDS,
  VIN_MESSAGE,
  VIN_PATTERN,
  type SamplingPolicyShape,
} from './checks.js';
import { SIGNALS, VSS, type ValueSignalPath } from './signals.js';

export { MAX_SAMPLES_PER_BATCH, POWERTRAINS, TRIGGER_KINDS };

/** ISO 3779 VIN: 17 characters, no I, O or Q. */
export const VinSchema = z.string().regex(VIN_PATTERN, VIN_MESSAGE);
export const DtcSchema = z.string().regex(DTC_PATTERN, DTC_MESSAGE);

export type SignalValue = number | boolean | string;
export type Signals = Partial<Record<ValueSignalPath, SignalValue>>;

const signalValueSchema = (path: ValueSignalPath) => {
  const spec = SIGNALS[path];
  if (spec.kind === 'number') {
    let s = z.number().finite();
    if (spec.min !== undefined) s = s.min(spec.min);
    if (spec.max !== undefined) s = s.max(spec.max);
    return s;
  }
  if (spec.kind === 'boolean') return z.boolean();
  return z.enum(spec.values as [string, ...string[]]);
};

export const SignalsSchema = z
  .object(Object.fromEntries(Object.keys(SIGNALS).map((p) => [p, signalValueSchema(p as ValueSignalPath).optional()])))
  .strict() as unknown as z.ZodType<Signals>;

/** Timestamps later than 2000-01-01 and not absurdly in the future (year 2200). */
export const EventTimeSchema = z.number().int().min(946_684_800_000).max(7_258_118_400_000);

export const SampleSchema = z.object({
  ts: EventTimeSchema,
  signals: SignalsSchema,
  dtcs: z.array(DtcSchema).max(64).optional(),
});
export type Sample = z.infer<typeof SampleSchema>;

export const TelemetryBatchSchema = z.object({
  vin: VinSchema,
  bootId: z.string().min(1).max(64),
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  samples: z.array(SampleSchema).min(1).max(MAX_SAMPLES_PER_BATCH),
  dropped: z.number().int().min(0).default(0),
});
export type TelemetryBatch = z.infer<typeof TelemetryBatchSchema>;

/** One sample of one vehicle, as the rules and the stores see it. */
export interface Reading {
  vin: string;
  ts: number;
  signals: Signals;
  dtcs?: string[];
}

export const AgentStatusSchema = z.object({
  vin: VinSchema,
  online: z.boolean(),
  agentVersion: z.string().max(64),
  configVersion: z.number().int().min(0),
  bootId: z.string().max(64),
  ts: z.number().int().min(0),
  spoolDropped: z.number().int().min(0).default(0),
  spoolPending: z.number().int().min(0).default(0),
});
export type AgentStatus = z.infer<typeof AgentStatusSchema>;

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];
export const LOCALES = ['zh-CN', 'en'] as const;
export type Locale = (typeof LOCALES)[number];

export const PromptActionSchema = z.object({ id: z.string().min(1).max(64), label: z.string().max(200) });
export const HmiPromptSchema = z.object({
  promptId: z.string().min(1).max(64),
  kind: z.string().min(1).max(64),
  severity: z.enum(SEVERITIES),
  title: z.string().max(200),
  body: z.string().max(2000),
  locale: z.enum(LOCALES),
  actions: z.array(PromptActionSchema).max(8),
  createdAt: z.number().int().min(0),
  expiresAt: z.number().int().min(0),
  withdrawn: z.boolean(),
});
export type HmiPrompt = z.infer<typeof HmiPromptSchema>;

export const ACK_OUTCOMES = ['SHOWN', 'DISMISSED', 'ACTED'] as const;
export type AckOutcome = (typeof ACK_OUTCOMES)[number];
export const PromptAckSchema = z.object({
  promptId: z.string().min(1).max(64),
  outcome: z.enum(ACK_OUTCOMES),
  ts: z.number().int().min(0),
  actionId: z.string().max(64).optional(),
});
export type PromptAck = z.infer<typeof PromptAckSchema>;

export const SamplingPolicySchema = z.object({
  version: z.number().int().min(0),
  signals: z
    .array(
      z.object({
        path: z.enum(Object.keys(SIGNALS) as [ValueSignalPath, ...ValueSignalPath[]]),
        periodMs: z.number().int().min(0).max(86_400_000),
        deadband: z.number().min(0).default(0),
      }),
    )
    .max(64),
  triggers: z.array(z.object({ kind: z.enum(TRIGGER_KINDS), threshold: z.number().default(0) })).max(16),
  batchMaxSamples: z.number().int().min(1).max(MAX_SAMPLES_PER_BATCH),
  batchMaxDelayMs: z.number().int().min(0).max(3_600_000),
  locationEnabled: z.boolean().default(false),
  locationPrecisionDeg: z.number().min(0).max(1).default(0.01),
});
export type SamplingPolicy = z.infer<typeof SamplingPolicySchema>;
// The vehicle side checks policies by hand (checks.ts): the two must describe the same shape.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _policyShapesAgree: Same<SamplingPolicy, SamplingPolicyShape> = true;

export type Powertrain = (typeof POWERTRAINS)[number];
export const VEHICLE_TYPES = ['passenger', 'commercial'] as const;

export const IsoDateSchema = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}(T.*)?$/, 'expected an ISO date (YYYY-MM-DD)')
  .refine((s) => !Number.isNaN(Date.parse(s)), 'not a valid date');

/** HH:MM, 00:00-23:59. */
const ClockTimeSchema = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'expected HH:MM (00:00-23:59)');

/** Whether Intl knows this IANA time zone (a bad one would make every local-time computation throw). */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export const VehicleProfileSchema = z.object({
  model: z.string().min(1).max(64),
  powertrain: z.enum(POWERTRAINS),
  deliveryDate: IsoDateSchema,
  dealerId: z.string().min(1).max(64),
  locale: z.enum(LOCALES),
  vehicleType: z.enum(VEHICLE_TYPES).default('passenger'),
  /** Per-vehicle HMI quiet hours in the vehicle's local time (domain default 22:00-07:00). */
  quietHours: z.object({ start: ClockTimeSchema, end: ClockTimeSchema }).optional(),
  /** IANA time zone for quiet hours; defaults by locale. An unknown zone is refused, never stored. */
  timeZone: z.string().max(64).refine(isTimeZone, 'not an IANA time zone (e.g. Asia/Shanghai, Europe/Berlin)').optional(),
});
export type VehicleProfile = z.infer<typeof VehicleProfileSchema>;
export interface Vehicle extends VehicleProfile {
  vin: string;
}

/** Replay line (docs/contract.md#replay-source): {ts, vin, signals, dtcs?}. */
export const ReplayLineSchema = z.object({
  ts: z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'ts must be an ISO 8601 time'),
  vin: VinSchema,
  signals: z.record(z.string(), z.union([z.number(), z.boolean(), z.string()])),
  dtcs: z.array(DtcSchema).optional(),
});

/** Parse one replay JSONL line into a Reading; throws with a message naming the problem. */
export function parseReplayLine(line: string): Reading {
  const raw = ReplayLineSchema.parse(JSON.parse(line));
  const dtcs = raw.dtcs ?? (Array.isArray(raw.signals[VSS.dtcList]) ? (raw.signals[VSS.dtcList] as unknown as string[]) : undefined);
  const { [VSS.dtcList]: _ignored, ...rest } = raw.signals;
  const signals = SignalsSchema.parse(rest);
  const reading: Reading = { vin: raw.vin, ts: Date.parse(raw.ts), signals };
  if (dtcs) reading.dtcs = dtcs;
  return reading;
}

export function formatZodError(err: z.ZodError): string {
  return err.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
}
