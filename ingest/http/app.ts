// The advisor-facing HTTP API, live stream and console. buildApp only assembles the instance;
// the caller (ingest/main.ts) listens, tests use inject or listen on port 0.
import fastifyCors from '@fastify/cors';
import fastifyHelmet from '@fastify/helmet';
import fastifyRateLimit from '@fastify/rate-limit';
import fastifySwagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import { PACKAGE_VERSION } from '../../proto/paths.js';
import type { ServiceRecord } from '../../rules/types.js';
import type { Stores } from '../store/ports.js';
import type { PromptChange, TelemetryStore } from '../store/ports.js';
import type { Authenticator } from '../auth/authenticate.js';
import { registerAuth } from './auth.js';
import { HttpError, installErrorHandlers } from './errors.js';
import { registerAccess } from './routes/access.js';
import { registerCampaigns, type CampaignRoutesDeps } from './routes/campaigns.js';
import { registerOps, type OpsDeps } from './routes/ops.js';
import { registerOutbox } from './routes/outbox.js';
import { registerPrompts } from './routes/prompts.js';
import { registerVehicles } from './routes/vehicles.js';
import { registerStream, type StreamOptions } from './sse.js';
import { registerConsole, type ConsoleOptions } from './static.js';
import type { SamplingPolicy } from '../../proto/domain.js';

/** HTTP hardening (docs/contract.md#access-control); every field has a safe default. */
export interface HttpLimits {
  /** Requests per minute per principal (unauthenticated: per address). */
  ratePerMinute: number;
  /** Refused credentials per minute per address before 429s (key and token guessing). */
  authFailuresPerMinute: number;
  /** Origins allowed to call the API from a browser; empty = CORS off. */
  corsOrigins: string[];
  maxHistoryPoints: number;
  maxStatsWindowDays: number;
  sessionTtlMs: number;
  secureCookies: boolean;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  ratePerMinute: 600,
  authFailuresPerMinute: 60,
  corsOrigins: [],
  maxHistoryPoints: 10_000,
  maxStatsWindowDays: 400,
  sessionTtlMs: 12 * 3_600_000,
  secureCookies: false,
};

export interface AppDeps {
  stores: Stores;
  /** Principals from API keys, OIDC tokens and console sessions. */
  authenticator: Authenticator;
  limits?: Partial<HttpLimits>;
  /** What the console's sign-in page offers besides an API key. */
  console?: ConsoleOptions;
  telemetry: TelemetryStore;
  /**
   * Prompt changes for the live stream. `record`, when given, makes the changes this API makes
   * itself (acknowledge, resolve) in one transaction with their outbox rows, then publishes them to
   * every subscriber, other consoles included (PromptFanout.record).
   */
  changes: {
    subscribe(fn: (c: PromptChange) => void): () => void;
    record?(fn: () => Promise<PromptChange[]>): Promise<PromptChange[]>;
  };
  /** The webhook dispatcher, when one runs: a retried outbox event wakes it (`now`: its clock, default wall time). */
  dispatcher?: { now?(): number; kick(): void };
  /** Store a service visit and reset the maintenance schedule (rules), atomically; returns its id. */
  onServiceRecord(vin: string, rec: ServiceRecord): Promise<number>;
  /** Publish a vehicle's sampling policy (retained AgentConfig on its config topic). */
  publishPolicy?(vin: string, policy: SamplingPolicy): Promise<void>;
  /** A profile was created or changed (rules reload the vehicle). */
  onProfileChanged?(vin: string): void;
  health: OpsDeps['health'];
  metrics: { contentType: string; render(): Promise<string> };
  clock: { now(): number };
  /** false (default), fastify logger options, or a pino logger instance to share. */
  logger?: boolean | object;
  bodyLimit?: number;
  /** How long close() waits for open sockets before cutting them (default 1 s). */
  closeGraceMs?: number;
  /** SSE tuning (tests shorten the heartbeat). */
  stream?: StreamOptions;
  /** Lifecycle campaigns (ingest/campaigns/service.ts). */
  campaigns: CampaignRoutesDeps['campaigns'];
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  // fastify 5 takes a ready pino instance as loggerInstance and only options as logger.
  const isInstance = (l: unknown): l is FastifyBaseLogger =>
    typeof l === 'object' &&
    l !== null &&
    typeof (l as { child?: unknown }).child === 'function' &&
    typeof (l as { info?: unknown }).info === 'function';
  const app = Fastify({
    ...(isInstance(deps.logger) ? { loggerInstance: deps.logger } : { logger: deps.logger ?? false }),
    bodyLimit: deps.bodyLimit ?? 1024 * 1024,
    // Let app.close() finish while keep-alive connections are idle.
    forceCloseConnections: 'idle',
    // one log line per request would drown the service's own log (and the demo's terminal); failures
    // are logged by the error handler, and who read or changed what is in the audit trail
    logController: new LogController({ disableRequestLogging: true }),
  }) as unknown as FastifyInstance;
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandlers(app);
  const limits = { ...DEFAULT_HTTP_LIMITS, ...deps.limits };

  // Security headers; the console is same-origin only: its scripts, styles and API calls.
  await app.register(fastifyHelmet, {
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        // the console's OIDC sign-in reads the issuer's discovery document and exchanges the code there
        connectSrc: ["'self'", ...(deps.console?.oidc ? [new URL(deps.console.oidc.issuer).origin] : [])],
        frameAncestors: ["'none'"],
        formAction: ["'self'"],
        baseUri: ["'none'"],
        objectSrc: ["'none'"],
      },
    },
    // served over plain HTTP in the one-machine demo; behind TLS the proxy sets HSTS
    strictTransportSecurity: limits.secureCookies,
  });
  if (limits.corsOrigins.length) await app.register(fastifyCors, { origin: limits.corsOrigins, credentials: false });
  await registerAuth(app, { authenticator: deps.authenticator, failuresPerMinute: limits.authFailuresPerMinute });
  // After authentication (preHandler), so the limit is per principal, not per address behind a proxy.
  await app.register(fastifyRateLimit, {
    global: true,
    hook: 'preHandler',
    max: limits.ratePerMinute,
    timeWindow: 60_000,
    keyGenerator: (req) => req.principal?.id ?? req.ip,
    // thrown by the plugin, so it goes through the one error handler as a JSON 429
    errorResponseBuilder: (_req, ctx) =>
      new HttpError(429, 'rate_limited', `more than ${ctx.max} requests per minute; retry in ${Math.ceil(ctx.ttl / 1000)} s`, {
        limit: ctx.max,
        retryAfterS: Math.ceil(ctx.ttl / 1000),
      }),
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'odopulse advisor API',
        description: 'Vehicles, telemetry history, prompts and their outcomes; Server-Sent Events at /api/v1/stream.',
        version: PACKAGE_VERSION,
      },
      tags: [
        { name: 'vehicles', description: 'Profiles, live view, telemetry and service visits' },
        { name: 'prompts', description: 'Prompts for advisors and their outcomes' },
        { name: 'ops', description: 'Health and metrics' },
        { name: 'access', description: 'Sessions, API keys and the audit trail' },
        { name: 'outbox', description: 'Lifecycle events in the outbox: dead ones and their retry (operators)' },
        { name: 'campaigns', description: 'Lifecycle campaigns into the car: audiences, messages, funnels (lifecycle, operators)' },
      ],
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An API key (odp_…) or an OIDC access token' },
          session: { type: 'apiKey', in: 'cookie', name: 'odopulse_session' },
        },
      },
      security: [{ bearer: [] }, { session: [] }],
    },
    transform: jsonSchemaTransform,
  });

  registerOps(app, deps);
  registerVehicles(app, { ...deps, maxHistoryPoints: limits.maxHistoryPoints });
  registerPrompts(app, { ...deps, maxStatsWindowMs: limits.maxStatsWindowDays * 86_400_000 });
  registerOutbox(app, deps);
  registerCampaigns(app, deps);
  registerAccess(app, { ...deps, sessionTtlMs: limits.sessionTtlMs, secureCookies: limits.secureCookies });
  registerStream(app, deps.stores.prompts, deps.changes, deps.stream);
  await registerConsole(app, deps.console);

  // Idle keep-alive sockets close at once ('idle' above); sockets a client opened without
  // sending a request yet (browsers and undici pre-connect) would hold close() for their
  // timeout, so they get a short grace period and are then cut.
  let grace: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    grace = setTimeout(() => app.server.closeAllConnections(), deps.closeGraceMs ?? 1000);
    grace.unref();
  });
  app.addHook('onClose', async () => clearTimeout(grace));
  return app;
}
