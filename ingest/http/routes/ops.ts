// Operations: liveness/readiness, Prometheus metrics and the generated OpenAPI document.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { HealthResponse } from '../schemas.js';

export interface OpsDeps {
  health(): Promise<{ ok: boolean; checks: Record<string, boolean | string> }>;
  metrics: { contentType: string; render(): Promise<string> };
}

export function registerOps(app: FastifyInstance, deps: OpsDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness plus broker / InfluxDB / workers readiness',
        tags: ['ops'],
        response: { 200: HealthResponse, 503: HealthResponse },
      },
      config: { auth: 'public' },
    },
    async (req, reply) => {
      let h: { ok: boolean; checks: Record<string, boolean | string> };
      try {
        h = await deps.health();
      } catch (err) {
        req.log.error({ err }, 'health check failed');
        h = { ok: false, checks: { health: err instanceof Error ? err.message : String(err) } };
      }
      return reply
        .code(h.ok ? 200 : 503)
        .header('cache-control', 'no-store')
        .send(h);
    },
  );

  r.get(
    '/metrics',
    { schema: { summary: 'Prometheus exposition', tags: ['ops'], produces: ['text/plain'] }, config: { auth: 'metrics:read' } },
    async (_req, reply) => {
      const text = await deps.metrics.render();
      return reply.type(deps.metrics.contentType).header('cache-control', 'no-store').send(text);
    },
  );

  r.get('/openapi.json', { schema: { hide: true }, config: { auth: 'session' } }, async (_req, reply) =>
    reply.type('application/json; charset=utf-8').send(JSON.stringify(app.swagger())),
  );
}
