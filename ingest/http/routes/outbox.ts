// The lifecycle outbox for operators (`outbox:manage`): list events by state (dead ones above all:
// given up after ODOPULSE_WEBHOOK_GIVE_UP_HOURS, kept until retried) and retry a dead event, which
// puts it back in the queue, due at once. A retry is audited (`outbox.retried`). Events are shown
// without their CloudEvent data (it may hold evidence, position included): type and subject only.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { AuditLog, Outbox, OutboxEvent } from '../../store/ports.js';
import { auditFor } from '../scope.js';
import { badRequest, conflict, HttpError } from '../errors.js';
import { ErrorSchema, IdParams, OutboxListQuery, OutboxPage, OutboxRetryBody, OutboxRetryQuery, OutboxRetryResult } from '../schemas.js';

export interface OutboxRoutesDeps {
  stores: { outbox: Pick<Outbox, 'list' | 'retry' | 'get'>; audit: AuditLog; transaction<T>(fn: () => Promise<T>): Promise<T> };
  /** The webhook dispatcher: its clock (a retried event is due at once on it; default wall time) and its wake-up. */
  dispatcher?: { now?(): number; kick(): void };
}

const isoOrNull = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** type and subject of the stored CloudEvent; null if the body is not one (it always is, unless edited by hand). */
function envelope(body: string): { type: string | null; subject: string | null } {
  try {
    const ev = JSON.parse(body) as { type?: unknown; subject?: unknown };
    return { type: typeof ev.type === 'string' ? ev.type : null, subject: typeof ev.subject === 'string' ? ev.subject : null };
  } catch {
    return { type: null, subject: null };
  }
}

export function outboxEventJson(e: OutboxEvent) {
  return {
    id: e.id,
    url: e.url,
    state: e.state,
    ...envelope(e.body),
    attempts: e.attempts,
    lastError: e.lastError,
    createdAt: new Date(e.createdAt).toISOString(),
    nextAttemptAt: e.state === 'pending' ? new Date(e.nextAttemptAt).toISOString() : null,
    firstFailedAt: isoOrNull(e.firstFailedAt),
    deadAt: isoOrNull(e.deadAt),
    deliveredAt: isoOrNull(e.deliveredAt),
  };
}

export function registerOutbox(app: FastifyInstance, deps: OutboxRoutesDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { outbox } = deps.stores;
  const now = () => deps.dispatcher?.now?.() ?? Date.now();

  r.get(
    '/api/v1/outbox',
    {
      schema: {
        summary: 'Outbox events in one state (default dead), oldest first',
        tags: ['outbox'],
        querystring: OutboxListQuery,
        response: { 200: OutboxPage, 400: ErrorSchema },
      },
      config: { auth: 'outbox:manage' },
    },
    async (req) => {
      const page = await outbox.list(req.query);
      return { items: page.items.map(outboxEventJson), nextCursor: page.nextCursor };
    },
  );

  r.post(
    '/api/v1/outbox/:id/retry',
    {
      schema: {
        summary: 'Put a dead event back in the queue, due at once: one URL (body or query `url`) or all of its URLs',
        tags: ['outbox'],
        params: IdParams,
        querystring: OutboxRetryQuery,
        body: OutboxRetryBody,
        response: { 200: OutboxRetryResult, 400: ErrorSchema, 404: ErrorSchema, 409: ErrorSchema },
      },
      config: { auth: 'outbox:manage' },
    },
    async (req) => {
      const { id } = req.params;
      const bodyUrl = req.body?.url;
      const queryUrl = req.query.url;
      if (bodyUrl !== undefined && queryUrl !== undefined && bodyUrl !== queryUrl)
        throw badRequest('the body and the query name different URLs', { body: bodyUrl, query: queryUrl });
      const url = bodyUrl ?? queryUrl ?? null;
      const audit = auditFor(deps.stores.audit, req, Date.now);
      const moved = await deps.stores.transaction(async () => {
        const rows = await outbox.retry(id, url, now());
        if (rows.length) {
          const subject = envelope(rows[0].body).subject;
          await audit('outbox.retried', subject, { eventId: id, urls: rows.map((e) => e.url), attempts: rows.map((e) => e.attempts) });
        }
        return rows;
      });
      if (moved.length === 0) {
        const row = url === null ? undefined : await outbox.get(id, url);
        if (row) throw conflict(`event ${id} for ${url} is ${row.state}, not dead`, { id, url, state: row.state });
        throw new HttpError(404, 'not_found', url === null ? `no dead event ${id}` : `no event ${id} for ${url}`, { id, url });
      }
      deps.dispatcher?.kick();
      return { items: moved.map(outboxEventJson) };
    },
  );
}
