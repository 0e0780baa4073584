// Prompts for advisors: list/filter, detail, acknowledge, resolve (each recorded with who, when
// and the note: the audit trail), and per-kind conversion statistics.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Prompt, PromptChange, PromptStore } from '../../store/ports.js';
import { badRequest, conflict, notFound } from '../errors.js';
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
  stores: { prompts: PromptStore };
  /** Changes this API makes itself (acknowledge, resolve), for the outbox and every stream. */
  changes: { publish?(c: PromptChange): void };
  clock: { now(): number };
}

export function registerPrompts(app: FastifyInstance, deps: PromptRoutesDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { prompts } = deps.stores;
  const known = (id: string): Prompt => {
    const p = prompts.get(id);
    if (!p) throw notFound('prompt', id);
    return p;
  };
  const published = (c: PromptChange): PromptChange => {
    deps.changes.publish?.(c);
    return c;
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
    },
    async (req) => {
      const page = prompts.list(req.query);
      return { items: page.items.map(promptJson), nextCursor: page.nextCursor };
    },
  );

  r.get(
    '/api/v1/prompts/:id',
    { schema: { summary: 'One prompt', tags: ['prompts'], params: IdParams, response: { 200: PromptSchema, 404: ErrorSchema } } },
    async (req) => promptJson(known(req.params.id)),
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
    },
    async (req) => {
      const p = known(req.params.id);
      const c = prompts.acknowledge(p.id, req.body.by, req.body.note, deps.clock.now());
      if (!c) throw conflict(`prompt ${p.id} is ${p.status} and cannot be acknowledged`, { id: p.id, status: p.status });
      return { prompt: promptJson(c.prompt), change: changeJson(published(c)) };
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
    },
    async (req) => {
      const p = known(req.params.id);
      const c = prompts.resolve(p.id, req.body.by, req.body.outcome, req.body.note, deps.clock.now());
      if (!c) throw conflict(`prompt ${p.id} is ${p.status} and cannot be resolved`, { id: p.id, status: p.status });
      return { prompt: promptJson(c.prompt), change: changeJson(published(c)) };
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
    },
    async (req) => {
      const to = req.query.to ?? deps.clock.now();
      const from = req.query.from ?? to - DEFAULT_STATS_RANGE_MS;
      if (from >= to) throw badRequest('`from` must be before `to`', { from, to });
      return { from: new Date(from).toISOString(), to: new Date(to).toISOString(), kinds: prompts.stats(from, to) };
    },
  );
}
