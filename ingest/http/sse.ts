// GET /api/v1/stream: Server-Sent Events of prompt changes for advisors. A client that
// reconnects with Last-Event-ID first gets what it missed (from the store's change log), then
// live changes; the subscription starts before the replay so nothing falls between the two.
// Each stream carries only the caller's dealers (docs/contract.md#sse-stream); a client too far
// behind (or behind the retained log) gets a `reset` event instead of a replay of everything.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { seesDealer, type Principal } from '../auth/principal.js';
import type { PromptChange, PromptStore } from '../store/ports.js';
import { principalOf } from './auth.js';
import { badRequest, HttpError } from './errors.js';
import { scopedDealers, visiblePrompt } from './scope.js';
import { ErrorSchema, StreamQuery } from './schemas.js';

export interface ChangeFeed {
  subscribe(fn: (c: PromptChange) => void): () => void;
}

export interface StreamOptions {
  heartbeatMs?: number;
  /** A client that lets this much pile up unread is cut off; it resumes with Last-Event-ID. */
  maxBufferedBytes?: number;
  /** At most this many changes are replayed after a Last-Event-ID; further behind, a `reset` (default 10,000). */
  maxReplay?: number;
  /** Open streams one principal may hold (default 8). */
  maxPerPrincipal?: number;
}

const REPLAY_PAGE = 500;

export function formatEvent(c: PromptChange, p?: Principal): string {
  const prompt = p ? visiblePrompt(p, c.prompt) : c.prompt;
  const data = JSON.stringify({ seq: c.seq, step: c.step, at: c.at, by: c.by, prompt });
  return `id: ${c.seq}\nevent: prompt\ndata: ${data}\n\n`;
}

function parseLastEventId(v: unknown): number | undefined {
  if (v === undefined || v === '') return undefined;
  const s = Array.isArray(v) ? v[0] : v;
  if (typeof s !== 'string' || !/^\d{1,15}$/.test(s))
    throw badRequest('Last-Event-ID must be a change sequence number', { lastEventId: s });
  return Number(s);
}

export function registerStream(app: FastifyInstance, prompts: PromptStore, feed: ChangeFeed, opts: StreamOptions = {}): void {
  const heartbeatMs = opts.heartbeatMs ?? 15_000;
  const maxBuffered = opts.maxBufferedBytes ?? 4 * 1024 * 1024;
  const maxReplay = opts.maxReplay ?? 10_000;
  const maxPerPrincipal = opts.maxPerPrincipal ?? 8;
  const open = new Set<ServerResponse>();
  const perPrincipal = new Map<string, number>();

  // Streams never end by themselves: close them so app.close() does not wait forever.
  app.addHook('preClose', async () => {
    for (const res of open) res.end();
    open.clear();
  });

  app.withTypeProvider<ZodTypeProvider>().get(
    '/api/v1/stream',
    {
      // A HEAD would open a stream that never ends.
      exposeHeadRoute: false,
      config: { auth: 'stream:read' },
      schema: {
        summary: 'Server-Sent Events of new and changed prompts (event: prompt, id: change sequence)',
        tags: ['prompts'],
        querystring: StreamQuery,
        response: {
          200: {
            description:
              'text/event-stream: `id: <seq>`, `event: prompt`, data = {seq, step, at, by, prompt}; `: heartbeat` comments every 15 s',
            content: { 'text/event-stream': { schema: z.string() } },
          },
          400: ErrorSchema,
        },
      },
    },
    // async: the replay reads the store; a hijacked reply's result is not sent by fastify
    async (req, reply) => {
      const principal = principalOf(req);
      const lastSeq = parseLastEventId(req.headers['last-event-id'] ?? req.query.lastEventId);
      const dealerId = req.query.dealerId;
      // the store query and the live filter use the same selection: the caller's scope, narrowed by dealerId
      const scope = scopedDealers(principal, dealerId);
      const selector = scope.dealerIds ?? scope.dealerId;
      const wanted = (c: PromptChange) => seesDealer(principal, c.dealerId) && (dealerId === undefined || c.dealerId === dealerId);
      const held = perPrincipal.get(principal.id) ?? 0;
      if (held >= maxPerPrincipal) {
        throw new HttpError(429, 'too_many_streams', `at most ${maxPerPrincipal} open streams per principal`, { open: held });
      }
      perPrincipal.set(principal.id, held + 1);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      open.add(res);

      let lastSent = lastSeq ?? -1;
      let replaying = true;
      let closed = false;
      const pending: PromptChange[] = [];

      const emit = (c: PromptChange): void => {
        if (closed || c.seq <= lastSent) return;
        lastSent = c.seq;
        res.write(formatEvent(c, principal));
        if (res.writableLength > maxBuffered) {
          req.log.warn({ dealerId, buffered: res.writableLength }, 'SSE client too slow; closing its stream');
          res.end();
        }
      };

      const unsubscribe = feed.subscribe((c) => {
        if (closed || !wanted(c)) return;
        if (replaying) pending.push(c);
        else emit(c);
      });
      const heartbeat = setInterval(() => {
        if (!closed) res.write(': heartbeat\n\n');
      }, heartbeatMs);
      heartbeat.unref();

      const cleanup = (): void => {
        if (closed) return;
        closed = true;
        clearInterval(heartbeat);
        unsubscribe();
        open.delete(res);
        const n = (perPrincipal.get(principal.id) ?? 1) - 1;
        if (n > 0) perPrincipal.set(principal.id, n);
        else perPrincipal.delete(principal.id);
      };
      res.on('close', cleanup);
      res.on('error', cleanup);

      res.write('retry: 3000\n\n');
      try {
        if (lastSeq !== undefined) {
          // Behind the retained log (pruned changes) or too far behind to page on the event loop:
          // say so and go live; the client reloads its lists from the API (docs/contract.md#sse-stream).
          const first = (await prompts.changesSince(lastSeq, undefined, 1))[0];
          let reset = first !== undefined && first.seq > lastSeq + 1 ? 'behind_retained_log' : null;
          let replayed = 0;
          while (!reset && !closed) {
            const page = await prompts.changesSince(lastSent, selector, REPLAY_PAGE);
            if (replayed + page.length > maxReplay) {
              reset = 'too_far_behind';
              break;
            }
            for (const c of page) emit(c);
            replayed += page.length;
            if (page.length < REPLAY_PAGE) break;
          }
          if (reset && !closed) {
            lastSent = Math.max(lastSent, await prompts.lastChangeSeq());
            res.write(`id: ${lastSent}\nevent: reset\ndata: ${JSON.stringify({ reason: reset, seq: lastSent })}\n\n`);
          }
        }
      } catch (err) {
        // Headers are out: tell the client in-band and let it reconnect.
        req.log.error({ err }, 'SSE replay failed');
        if (closed) return;
        res.write(`event: error\ndata: ${JSON.stringify({ error: 'replay_failed' })}\n\n`);
        res.end();
        cleanup();
        return;
      }
      replaying = false;
      for (const c of pending.splice(0)) emit(c);
    },
  );
}
