// Operations: liveness/readiness, Prometheus metrics and the generated OpenAPI document.
import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { HealthResponse, type HealthStatus } from '../schemas.js';

/** What the service says about itself; without `status`, `ok` decides between ok and down. */
export interface HealthReport {
  ok: boolean;
  status?: HealthStatus;
  checks: Record<string, boolean | string>;
}

export interface OpsDeps {
  health(): Promise<HealthReport>;
  metrics: { contentType: string; render(): Promise<string> };
}

export function registerOps(app: FastifyInstance, deps: OpsDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness plus broker / InfluxDB / workers readiness: ok, degraded (InfluxDB away; 200) or down (503)',
        tags: ['ops'],
        response: { 200: HealthResponse, 503: HealthResponse },
      },
      config: { auth: 'public' },
    },
    async (req, reply) => {
      let h: HealthReport;
      try {
        h = await deps.health();
      } catch (err) {
        req.log.error({ err }, 'health check failed');
        h = { ok: false, status: 'down', checks: { health: err instanceof Error ? err.message : String(err) } };
      }
      // degraded is still 200: ingest takes telemetry into its journal, a load balancer keeps it
      const status = h.status ?? (h.ok ? 'ok' : 'down');
      return reply
        .code(status === 'down' ? 503 : 200)
        .header('cache-control', 'no-store')
        .send({ ok: status === 'ok', status, checks: h.checks });
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
