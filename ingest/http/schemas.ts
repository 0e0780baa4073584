// Zod schemas of the advisor API. The same objects validate requests, serialise responses and
// generate /openapi.json, so the document cannot drift from what the routes accept.
import { z } from 'zod';
import { LOCALES, POWERTRAINS, SEVERITIES, VEHICLE_TYPES, VinSchema, IsoDateSchema } from '../../proto/domain.js';
import { SIGNAL_PATHS } from '../../proto/signals.js';
import { AUDIENCES, PROMPT_KINDS } from '../../rules/types.js';
import { OUTBOX_STATES, PROMPT_STATUSES, RESOLVE_OUTCOMES } from '../store/ports.js';

export const ErrorSchema = z.object({
  error: z.string(),
  message: z.string(),
  details: z.unknown(),
});

export const VinParams = z.object({ vin: VinSchema });
export const IdParams = z.object({ id: z.string().min(1).max(128) });

/** Epoch milliseconds or an ISO 8601 time, as query strings carry them. */
export const TimeParam = z
  .string()
  .max(40)
  .transform((s, ctx) => {
    const ms = /^\d{1,15}$/.test(s) ? Number(s) : Date.parse(s);
    if (!Number.isFinite(ms)) {
      ctx.addIssue({ code: 'custom', message: 'expected epoch milliseconds or an ISO 8601 time' });
      return z.NEVER;
    }
    return ms;
  });

const EVERY_UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parse a downsampling window such as 30s, 5m, 1h, 1d into milliseconds. */
export function parseEvery(s: string): number | undefined {
  const m = /^(\d{1,6})(s|m|h|d)$/.exec(s);
  if (!m) return undefined;
  const ms = Number(m[1]) * EVERY_UNITS[m[2]];
  return ms > 0 ? ms : undefined;
}

export const EveryParam = z
  .string()
  .max(10)
  .transform((s, ctx) => {
    const ms = parseEvery(s);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: 'expected a window such as 30s, 5m, 1h or 1d' });
      return z.NEVER;
    }
    return ms;
  });

const Cursor = z.string().min(1).max(256);
export const Limit = z.coerce.number().int().min(1).max(500).default(50);

export const VehicleListQuery = z.object({
  dealerId: z.string().min(1).max(64).optional(),
  limit: Limit,
  cursor: Cursor.optional(),
});

export const TelemetryQuery = z.object({
  signal: z.enum(SIGNAL_PATHS as [string, ...string[]]),
  from: TimeParam.optional(),
  to: TimeParam.optional(),
  every: EveryParam.optional(),
});

export const ServiceRecordBody = z.object({
  date: IsoDateSchema,
  odometer: z.number().finite().min(0).max(5_000_000),
  items: z.array(z.string().min(1).max(200)).max(100),
});

export const PromptListQuery = z.object({
  vin: VinSchema.optional(),
  kind: z.enum(PROMPT_KINDS).optional(),
  audience: z.enum(AUDIENCES).optional(),
  status: z.enum(PROMPT_STATUSES).optional(),
  dealerId: z.string().min(1).max(64).optional(),
  limit: Limit,
  cursor: Cursor.optional(),
});

const By = z.string().trim().min(1).max(64);
const Note = z.string().max(2000).optional();
/** `by` is only a display name: who acted is the authenticated principal (docs/contract.md#access-control). */
export const AckBody = z.object({ by: By.optional(), note: Note });
export const ResolveBody = z.object({ by: By.optional(), outcome: z.enum(RESOLVE_OUTCOMES), note: Note });

export const StatsQuery = z.object({ from: TimeParam.optional(), to: TimeParam.optional() });
export const StreamQuery = z.object({
  dealerId: z.string().min(1).max(64).optional(),
  lastEventId: z
    .string()
    .regex(/^\d{1,15}$/)
    .optional(),
});

export const OutboxListQuery = z.object({ state: z.enum(OUTBOX_STATES).default('dead'), limit: Limit, cursor: Cursor.optional() });
const WebhookUrl = z
  .string()
  .max(2048)
  .regex(/^https?:\/\//, 'expected an http(s) URL');
/** The URL of the event to retry, in the body or the query; neither = every URL of that event. */
export const OutboxRetryBody = z.object({ url: WebhookUrl.optional() }).nullish(); // no body at all arrives as null
export const OutboxRetryQuery = z.object({ url: WebhookUrl.optional() });

// ---- responses ----

/** docs/contract.md#prompt-json; loose so the audit fields (acknowledgedBy, resolvedBy, note...) pass through. */
export const PromptSchema = z.looseObject({
  id: z.string(),
  vin: z.string(),
  kind: z.string(),
  audience: z.array(z.string()),
  severity: z.enum(SEVERITIES),
  status: z.enum(PROMPT_STATUSES),
  title: z.string(),
  body: z.string(),
  locale: z.enum(LOCALES),
  actions: z
    .array(z.object({ id: z.string(), label: z.string() }))
    .optional()
    .describe("The prompt's actions besides dismiss, in its locale (the HMI offers these and dismiss)"),
  dedupKey: z.string(),
  evidence: z.record(z.string(), z.unknown()),
  createdAt: z.string(),
  updatedAt: z.string(),
  outcome: z.string().nullable(),
});

export const PromptPage = z.object({ items: z.array(PromptSchema), nextCursor: z.string().nullable() });

export const PromptChangeSchema = z.object({
  seq: z.number(),
  step: z.string(),
  at: z.string(),
  by: z.string().nullable(),
  prompt: PromptSchema,
});

export const PromptActionResult = z.object({ prompt: PromptSchema, change: PromptChangeSchema.nullable() });

const SegmentsSchema = z.object({ stage: z.string(), activity: z.string(), maturity: z.string() }).nullable();
const OnlineSchema = z.object({
  online: z.boolean(),
  since: z.string().nullable(),
  agentVersion: z.string().nullable(),
  configVersion: z.number().nullable(),
});

export const VehicleSchema = z.looseObject({
  vin: z.string(),
  model: z.string(),
  powertrain: z.enum(POWERTRAINS),
  deliveryDate: z.string(),
  dealerId: z.string(),
  locale: z.enum(LOCALES),
  vehicleType: z.enum(VEHICLE_TYPES),
  createdAt: z.string(),
  updatedAt: z.string(),
});

export const VehicleSummary = VehicleSchema.extend({ online: OnlineSchema, segments: SegmentsSchema });
export const VehiclePage = z.object({ items: z.array(VehicleSummary), nextCursor: z.string().nullable() });

export const ServiceRecordOut = z.object({ id: z.number(), date: z.string(), odometer: z.number(), items: z.array(z.string()) });

export const VehicleDetail = VehicleSummary.extend({
  latest: z
    .object({ ts: z.number(), at: z.string(), signals: z.record(z.string(), z.union([z.number(), z.boolean(), z.string()])) })
    .nullable(),
  /** Why `latest` is missing when the telemetry store failed (null when it answered). */
  latestError: z.string().nullable(),
  openPrompts: z.number().int(),
  serviceRecords: z.array(ServiceRecordOut),
  sequence: z
    .object({
      bootId: z.string().describe('boot id of the newest telemetry batches (one agent run: a random id per start)'),
      lastSeq: z.number().int().describe('highest seq journalled of that boot'),
      gaps: z
        .number()
        .int()
        .describe(
          'seqs missing right now: within each boot id, those between its lowest and highest journalled seq that never arrived; a late batch filling one takes it off, a new boot id starts a new range (no gap)',
        ),
    })
    .nullable()
    .describe('telemetry sequence (dedup key vin + boot id + seq); null before the first batch'),
});

export const TelemetryResponse = z.object({
  vin: z.string(),
  signal: z.string(),
  from: z.number(),
  to: z.number(),
  everyMs: z.number().nullable(),
  points: z.array(z.object({ ts: z.number(), value: z.union([z.number(), z.boolean(), z.string()]).nullable() })),
});

export const StatsResponse = z.object({
  from: z.string(),
  to: z.string(),
  kinds: z.array(
    z.object({
      kind: z.string(),
      delivered: z.number(),
      shown: z.number(),
      dismissed: z.number(),
      acted: z.number(),
      booked: z.number(),
      acknowledged: z.number(),
      resolved: z.number(),
      expired: z.number(),
      conversion: z.number().nullable(),
    }),
  ),
});

export const HEALTH_STATUSES = ['ok', 'degraded', 'down'] as const;
export type HealthStatus = (typeof HEALTH_STATUSES)[number];
/** docs/contract.md#health: `degraded` (200) still takes telemetry into the journal; `down` (503) does not. */
export const HealthResponse = z.object({
  ok: z.boolean(),
  status: z.enum(HEALTH_STATUSES),
  checks: z.record(z.string(), z.union([z.boolean(), z.string()])),
});

/** One outbox row (docs/contract.md#retries): the CloudEvent's type and subject, never its data. */
export const OutboxEventSchema = z.object({
  id: z.string(),
  url: z.string(),
  state: z.enum(OUTBOX_STATES),
  type: z.string().nullable(),
  subject: z.string().nullable(),
  attempts: z.number(),
  lastError: z.string().nullable(),
  createdAt: z.string(),
  nextAttemptAt: z.string().nullable(),
  firstFailedAt: z.string().nullable(),
  deadAt: z.string().nullable(),
  deliveredAt: z.string().nullable(),
});
export const OutboxPage = z.object({ items: z.array(OutboxEventSchema), nextCursor: z.string().nullable() });
export const OutboxRetryResult = z.object({ items: z.array(OutboxEventSchema) });
