// Prompts for advisors: list/filter, detail, acknowledge, resolve (each recorded with who, when
// and the note: the audit trail), and per-kind conversion statistics.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { FastifyRequest } from 'fastify';
import type { AuditLog, Prompt, PromptChange, PromptStore } from '../../store/ports.js';
import type { Principal } from '../../auth/principal.js';
import { principalOf } from '../auth.js';
import { auditFor, promptInScope, scopedDealers, visiblePrompt } from '../scope.js';
import { badRequest, conflict } from '../errors.js';
import {
  AckBody,
  ErrorSchema,
  IdParams,
  PromptActionResult,
  PromptListQuery,
  PromptPage,
  PromptSchema,
  ResolveBody,
  StatsQuery,
  StatsResponse,
} from '../schemas.js';

const DEFAULT_STATS_RANGE_MS = 30 * 86_400_000;
const errors = { 400: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema };

// Spread into a plain object type: interfaces carry no index signature, the loose schema wants one.
const promptJson = (p: Prompt) => ({ ...p });

function changeJson(c: PromptChange) {
  return { seq: c.seq, step: c.step, at: c.at, by: c.by, prompt: promptJson(c.prompt) };
}

export interface PromptRoutesDeps {
  stores: { prompts: PromptStore; audit: AuditLog; transaction<T>(fn: () => Promise<T>): Promise<T> };
  /** The longest [from, to) one stats call may cover. */
  maxStatsWindowMs: number;
  /**
   * Changes this API makes itself (acknowledge, resolve): `record` runs the store call, and the
   * route's audit entry, in one transaction with the change's outbox rows, then publishes the
   * changes to every stream (PromptFanout.record). Unset: a plain transaction, nothing published.
   */
  changes: { record?(fn: () => Promise<PromptChange[]>): Promise<PromptChange[]> };
  clock: { now(): number };
}

export function registerPrompts(app: FastifyInstance, deps: PromptRoutesDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { prompts } = deps.stores;
  const known = (req: FastifyRequest, id: string) => promptInScope((x) => prompts.get(x), principalOf(req), id);
  /** Who acted: always the principal; a display name from the body is kept beside it, never instead. */
  const actor = (p: Principal, displayName: string | undefined): string =>
    displayName && displayName !== p.name ? `${displayName} (${p.name}, ${p.id})` : `${p.name} (${p.id})`;
  /** One change (or none) made atomically with its audit entry and outbox rows, then published. */
  const recorded = async (
    change: () => Promise<PromptChange | undefined>,
    audit: (c: PromptChange) => Promise<void>,
  ): Promise<PromptChange | undefined> => {
    const fn = async () => {
      const c = await change();
      if (c) await audit(c);
      return c ? [c] : [];
    };
    return (await (deps.changes.record ? deps.changes.record(fn) : deps.stores.transaction(fn)))[0];
  };

  r.get(
    '/api/v1/prompts',
    {
      schema: {
        summary: 'Prompts, newest first',
        tags: ['prompts'],
        querystring: PromptListQuery,
        response: { 200: PromptPage, 400: ErrorSchema },
      },
      config: { auth: 'prompts:read' },
    },
    async (req) => {
      const p = principalOf(req);
      const { dealerId, ...rest } = req.query;
      const page = await prompts.list({ ...rest, ...scopedDealers(p, dealerId) });
      return { items: page.items.map((x) => promptJson(visiblePrompt(p, x))), nextCursor: page.nextCursor };
    },
  );

  r.get(
    '/api/v1/prompts/:id',
    {
      schema: { summary: 'One prompt', tags: ['prompts'], params: IdParams, response: { 200: PromptSchema, 404: ErrorSchema } },
      config: { auth: 'prompts:read' },
    },
    async (req) => promptJson(visiblePrompt(principalOf(req), await known(req, req.params.id))),
  );

  r.post(
    '/api/v1/prompts/:id/ack',
    {
      schema: {
        summary: 'An advisor acknowledges the prompt (open or delivered ones only)',
        tags: ['prompts'],
        params: IdParams,
        body: AckBody,
        response: { 200: PromptActionResult, ...errors },
      },
      config: { auth: 'prompts:act' },
    },
    async (req) => {
      const p = await known(req, req.params.id);
      const c = await recorded(
        () => prompts.acknowledge(p.id, actor(principalOf(req), req.body.by), req.body.note, deps.clock.now()),
        () => auditFor(deps.stores.audit, req, Date.now)('prompt.acknowledged', p.vin, { promptId: p.id }),
      );
      if (!c) throw conflict(`prompt ${p.id} is ${p.status} and cannot be acknowledged`, { id: p.id, status: p.status });
      return { prompt: promptJson(c.prompt), change: changeJson(c) };
    },
  );

  r.post(
    '/api/v1/prompts/:id/resolve',
    {
      schema: {
        summary: 'An advisor closes the prompt with an outcome',
        tags: ['prompts'],
        params: IdParams,
        body: ResolveBody,
        response: { 200: PromptActionResult, ...errors },
      },
      config: { auth: 'prompts:act' },
    },
    async (req) => {
      const p = await known(req, req.params.id);
      const c = await recorded(
        () => prompts.resolve(p.id, actor(principalOf(req), req.body.by), req.body.outcome, req.body.note, deps.clock.now()),
        () => auditFor(deps.stores.audit, req, Date.now)('prompt.resolved', p.vin, { promptId: p.id, outcome: req.body.outcome }),
      );
      if (!c) throw conflict(`prompt ${p.id} is ${p.status} and cannot be resolved`, { id: p.id, status: p.status });
      return { prompt: promptJson(c.prompt), change: changeJson(c) };
    },
  );

  r.get(
    '/api/v1/stats/prompts',
    {
      schema: {
        summary: 'Per-kind outcome counts and conversion in [from, to) (default: the last 30 days)',
        tags: ['prompts'],
        querystring: StatsQuery,
        response: { 200: StatsResponse, 400: ErrorSchema },
      },
      config: { auth: 'stats:read' },
    },
    async (req) => {
      const to = req.query.to ?? deps.clock.now();
      const from = req.query.from ?? to - DEFAULT_STATS_RANGE_MS;
      if (from >= to) throw badRequest('`from` must be before `to`', { from, to });
      if (to - from > deps.maxStatsWindowMs) {
        throw badRequest(`the window may span at most ${Math.round(deps.maxStatsWindowMs / 86_400_000)} days`, { from, to });
      }
      const scope = scopedDealers(principalOf(req), undefined);
      const kinds = await prompts.stats(from, to, scope.dealerIds);
      return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), kinds };
    },
  );
}
