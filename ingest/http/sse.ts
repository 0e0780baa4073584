// GET /api/v1/stream: Server-Sent Events of prompt changes for advisors. A client that
// reconnects with Last-Event-ID first gets what it missed (from the store's change log), then
// live changes; the subscription starts before the replay so nothing falls between the two.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import type { PromptChange, PromptStore } from '../store/ports.js';
import { badRequest } from './errors.js';
import { ErrorSchema, StreamQuery } from './schemas.js';

export interface ChangeFeed {
  subscribe(fn: (c: PromptChange) => void): () => void;
}

export interface StreamOptions {
  heartbeatMs?: number;
  /** A client that lets this much pile up unread is cut off; it resumes with Last-Event-ID. */
  maxBufferedBytes?: number;
}

const REPLAY_PAGE = 500;

export function formatEvent(c: PromptChange): string {
  const data = JSON.stringify({ seq: c.seq, step: c.step, at: c.at, by: c.by, prompt: c.prompt });
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
  const open = new Set<ServerResponse>();

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
    (req, reply) => {
      const lastSeq = parseLastEventId(req.headers['last-event-id'] ?? req.query.lastEventId);
      const dealerId = req.query.dealerId;
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
        res.write(formatEvent(c));
        if (res.writableLength > maxBuffered) {
          req.log.warn({ dealerId, buffered: res.writableLength }, 'SSE client too slow; closing its stream');
          res.end();
        }
      };

      const unsubscribe = feed.subscribe((c) => {
        if (closed || (dealerId !== undefined && c.dealerId !== dealerId)) return;
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
      };
      res.on('close', cleanup);
      res.on('error', cleanup);

      res.write('retry: 3000\n\n');
      try {
        if (lastSeq !== undefined) {
          for (;;) {
            const page = prompts.changesSince(lastSent, dealerId, REPLAY_PAGE);
            for (const c of page) emit(c);
            if (page.length < REPLAY_PAGE || closed) break;
          }
        }
      } catch (err) {
        // Headers are out: tell the client in-band and let it reconnect.
        req.log.error({ err }, 'SSE replay failed');
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
