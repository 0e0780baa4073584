// Lifecycle campaigns (docs/contract.md#campaigns): create, list, one with live counts, its stats,
// pause / resume / cancel. Fleet-wide roles only (lifecycle, operator): a dealer's roles lack the actions.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import type { Locale } from '../../../proto/domain.js';
import type { AuditLog, Campaign } from '../../store/ports.js';
import { principalOf } from '../auth.js';
import { auditFor } from '../scope.js';
import { HttpError, conflict, notFound } from '../errors.js';
import { ErrorSchema, IdParams } from '../schemas.js';
import { CampaignBody, CampaignListQuery, CampaignPage, CampaignSchema, CampaignStatsSchema } from '../campaign-schemas.js';

type View = z.input<typeof CampaignSchema>;
type Input = z.output<typeof CampaignBody>;

/** The campaign service as the routes need it (ingest/campaigns/service.ts). */
export interface CampaignRoutesDeps {
  campaigns: {
    missingLocales(input: Pick<Input, 'audience' | 'message'>): Promise<Array<{ locale: Locale; vehicles: number }>>;
    create(input: Input, by: string, audit: (c: Campaign) => Promise<void>): Promise<View>;
    list(q: { limit: number; cursor?: string }): Promise<{ items: View[]; nextCursor: string | null }>;
    get(id: string): Promise<View | undefined>;
    stats(id: string): Promise<z.input<typeof CampaignStatsSchema> | undefined>;
    command(id: string, cmd: 'pause' | 'resume' | 'cancel', audit: (c: Campaign) => Promise<void>): Promise<View | undefined>;
  };
  stores: { audit: AuditLog };
  /** The fleet clock: a campaign must end after now. */
  clock: { now(): number };
}

export function registerCampaigns(app: FastifyInstance, deps: CampaignRoutesDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { campaigns } = deps;
  const who = (req: Parameters<typeof principalOf>[0]) => {
    const p = principalOf(req);
    return `${p.name} (${p.id})`;
  };

  r.post(
    '/api/v1/campaigns',
    {
      schema: {
        summary: 'A new campaign; it runs from startsAt, reaching every vehicle that is or enters its audience',
        tags: ['campaigns'],
        body: CampaignBody,
        response: { 201: CampaignSchema, 400: ErrorSchema },
      },
      config: { auth: 'campaigns:manage' },
    },
    async (req, reply) => {
      if (req.body.endsAt <= deps.clock.now()) {
        const issue = {
          path: '/endsAt',
          code: 'in_the_past',
          message: `must be after now (${new Date(deps.clock.now()).toISOString()}, the fleet clock)`,
        };
        throw new HttpError(400, 'validation', `invalid body: ${issue.path} ${issue.message}`, { in: 'body', issues: [issue] });
      }
      const missing = await campaigns.missingLocales(req.body);
      if (missing.length) {
        const issues = missing.map((m) => ({
          path: `/message/${m.locale}`,
          code: 'missing_locale',
          message: `${m.vehicles} vehicle(s) the audience may reach use ${m.locale}: the message needs ${m.locale}`,
          locale: m.locale,
          vehicles: m.vehicles,
        }));
        throw new HttpError(400, 'validation', `invalid body: ${issues.map((i) => `${i.path} ${i.message}`).join('; ')}`, {
          in: 'body',
          issues,
        });
      }
      const audit = auditFor(deps.stores.audit, req, Date.now);
      const c = await campaigns.create(req.body, who(req), (x) => audit('campaign.created', null, { campaignId: x.id, name: x.name }));
      return reply.code(201).send(c);
    },
  );

  r.get(
    '/api/v1/campaigns',
    {
      schema: {
        summary: 'Campaigns, newest first, with live counts',
        tags: ['campaigns'],
        querystring: CampaignListQuery,
        response: { 200: CampaignPage, 400: ErrorSchema },
      },
      config: { auth: 'campaigns:read' },
    },
    async (req) => {
      const page = await campaigns.list(req.query);
      return { items: page.items, nextCursor: page.nextCursor };
    },
  );

  r.get(
    '/api/v1/campaigns/:id',
    {
      schema: {
        summary: 'One campaign with its live counts',
        tags: ['campaigns'],
        params: IdParams,
        response: { 200: CampaignSchema, 404: ErrorSchema },
      },
      config: { auth: 'campaigns:read' },
    },
    async (req) => {
      const c = await campaigns.get(req.params.id);
      if (!c) throw notFound('campaign', req.params.id);
      return c;
    },
  );

  r.get(
    '/api/v1/campaigns/:id/stats',
    {
      schema: {
        summary: 'The funnel (targeted, delivered, shown, dismissed, acted, conversion) overall and per segment',
        tags: ['campaigns'],
        params: IdParams,
        response: { 200: CampaignStatsSchema, 404: ErrorSchema },
      },
      config: { auth: 'campaigns:read' },
    },
    async (req) => {
      const s = await campaigns.stats(req.params.id);
      if (!s) throw notFound('campaign', req.params.id);
      return s;
    },
  );

  const SUMMARY = {
    pause: 'Pause: no new messages, and those the owners have not seen are withdrawn',
    resume: 'Resume a paused campaign: one pass over the fleet (a vehicle whose message was withdrawn unseen gets a new one)',
    cancel: 'Cancel for good: the messages the owners have not seen are withdrawn from the cars',
  } as const;
  const DONE = { pause: 'campaign.paused', resume: 'campaign.resumed', cancel: 'campaign.cancelled' } as const;
  for (const command of ['pause', 'resume', 'cancel'] as const) {
    r.post(
      `/api/v1/campaigns/:id/${command}`,
      {
        schema: {
          summary: SUMMARY[command],
          tags: ['campaigns'],
          params: IdParams,
          response: { 200: CampaignSchema, 404: ErrorSchema, 409: ErrorSchema },
        },
        config: { auth: 'campaigns:manage' },
      },
      async (req) => {
        const { id } = req.params;
        const before = await campaigns.get(id);
        if (!before) throw notFound('campaign', id);
        const audit = auditFor(deps.stores.audit, req, Date.now);
        const c = await campaigns.command(id, command, (x) => audit(DONE[command], null, { campaignId: x.id }));
        if (!c) throw conflict(`campaign ${id} is ${before.status}: it cannot ${command}`, { id, status: before.status });
        return c;
      },
    );
  }
}
