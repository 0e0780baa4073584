// Zod schemas of the campaign API (docs/contract.md#campaigns): the same objects validate the
// requests, serialise the answers and generate /openapi.json. A file of its own beside schemas.ts.
import { z } from 'zod';
import { LOCALES, POWERTRAINS, VEHICLE_TYPES, VinSchema } from '../../proto/domain.js';
import { CAMPAIGN_STATES, SEGMENT_VALUES } from '../store/ports.js';

/** An ISO 8601 time (with a zone) or epoch ms, as epoch ms. */
const Instant = z.union([z.string().max(40), z.number().int()]).transform((v, ctx) => {
  const ms = typeof v === 'number' ? v : /(Z|[+-]\d{2}:?\d{2})$/.test(v) ? Date.parse(v) : NaN;
  if (!Number.isFinite(ms)) {
    ctx.addIssue({ code: 'custom', message: 'expected an ISO 8601 time with a zone (e.g. 2026-03-01T08:00:00Z) or epoch ms' });
    return z.NEVER;
  }
  return ms;
});

const list = <T extends z.ZodTypeAny>(t: T, max = 100) => z.array(t).max(max).optional();
const Id = z.string().min(1).max(64);

export const CampaignAudienceSchema = z.strictObject({
  stage: list(z.enum(SEGMENT_VALUES.stage)),
  activity: list(z.enum(SEGMENT_VALUES.activity)),
  maturity: list(z.enum(SEGMENT_VALUES.maturity)),
  model: list(z.string().min(1).max(100)),
  powertrain: list(z.enum(POWERTRAINS)),
  dealerId: list(Id, 1000),
  vehicleType: list(z.enum(VEHICLE_TYPES)),
  vins: list(VinSchema, 100_000),
});

// the HMI prompt's limits (docs/contract.md#hmi-prompt)
const Text = z.strictObject({ title: z.string().trim().min(1).max(200), body: z.string().trim().min(1).max(2000) });
const Label = z.string().trim().min(1).max(64);

export const CampaignBody = z
  .strictObject({
    name: z.string().trim().min(1).max(200),
    audience: CampaignAudienceSchema.default({}),
    message: z
      .strictObject({ 'zh-CN': Text.optional(), en: Text.optional() })
      .refine((m) => LOCALES.some((l) => m[l] !== undefined), 'at least one locale (zh-CN, en)'),
    actions: z
      .array(
        z.strictObject({
          id: z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, 'expected an id of a-z, 0-9 and _ (1–32, a letter first)'),
          label: z.strictObject({ 'zh-CN': Label.optional(), en: Label.optional() }),
        }),
      )
      .max(7)
      .default([]),
    startsAt: Instant,
    endsAt: Instant,
    priority: z.number().int().min(0).max(10).default(5),
    frequencyCap: z
      .strictObject({ perVehicle: z.number().int().min(1).max(100), perDays: z.number().int().min(1).max(365) })
      .nullable()
      .default(null),
    quietHoursRespected: z.boolean().default(true),
  })
  .superRefine((b, ctx) => {
    if (b.endsAt <= b.startsAt) ctx.addIssue({ code: 'custom', path: ['endsAt'], message: 'must be after startsAt' });
    const ids = new Set<string>();
    b.actions.forEach((a, i) => {
      if (ids.has(a.id) || a.id === 'dismiss')
        ctx.addIssue({ code: 'custom', path: ['actions', i, 'id'], message: `duplicate or reserved id ${a.id}` });
      ids.add(a.id);
      for (const l of LOCALES) {
        if (b.message[l] && !a.label[l])
          ctx.addIssue({ code: 'custom', path: ['actions', i, 'label', l], message: `the message has ${l}: the label needs it too` });
      }
    });
  });

export const CampaignListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(50),
  cursor: z.string().min(1).max(256).optional(),
});

const FunnelSchema = z.object({
  targeted: z.number().int(),
  pending: z.number().int(),
  delivered: z.number().int(),
  shown: z.number().int(),
  dismissed: z.number().int(),
  acted: z.number().int(),
  withdrawn: z.number().int(),
  expired: z.number().int(),
  conversion: z.number().nullable().describe('acted ÷ delivered'),
});

const TextOut = z.object({ title: z.string(), body: z.string() });

export const CampaignSchema = z.object({
  id: z.string(),
  name: z.string(),
  audience: CampaignAudienceSchema,
  message: z.object({ 'zh-CN': TextOut.optional(), en: TextOut.optional() }),
  actions: z.array(z.object({ id: z.string(), label: z.object({ 'zh-CN': z.string().optional(), en: z.string().optional() }) })),
  startsAt: z.string(),
  endsAt: z.string(),
  priority: z.number(),
  frequencyCap: z.object({ perVehicle: z.number(), perDays: z.number() }).nullable(),
  quietHoursRespected: z.boolean(),
  state: z.enum(CAMPAIGN_STATES),
  status: z.enum([...CAMPAIGN_STATES, 'scheduled', 'ended']).describe('the state, or scheduled (before startsAt), ended (from endsAt)'),
  launchedAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
  createdBy: z.string(),
  counts: FunnelSchema,
});

export const CampaignPage = z.object({ items: z.array(CampaignSchema), nextCursor: z.string().nullable() });

export const CampaignStatsSchema = z.object({
  campaignId: z.string(),
  status: CampaignSchema.shape.status,
  totals: FunnelSchema,
  segments: z.array(FunnelSchema.extend({ stage: z.string(), activity: z.string(), maturity: z.string() })),
});
