// Ingest configuration: every setting is an environment variable with a matching CLI flag
// (docs/contract.md#settings), validated with zod at start-up.
import { availableParallelism, hostname } from 'node:os';
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const optionalString = z
  .string()
  .optional()
  .transform((s) => (s === '' ? undefined : s));

/** env name -> [schema, default, description]. Flags are derived: ODOPULSE_HTTP_PORT -> --http-port. */
export const INGEST_SETTINGS = {
  ODOPULSE_MQTT_URL: [
    optionalString.pipe(
      z
        .string()
        .regex(/^mqtts?:\/\//, 'must start with mqtt:// or mqtts://')
        .optional(),
    ),
    undefined,
    'external broker (mqtt://, mqtts://); unset = embedded aedes',
  ],
  ODOPULSE_MQTT_PORT: [port, 1883, "embedded broker's TCP port"],
  ODOPULSE_MQTT_HOST: [z.string(), '0.0.0.0', "embedded broker's listen address"],
  ODOPULSE_MQTT_TLS_PORT: [port, 8883, "embedded broker's TLS port (used when a certificate is configured)"],
  ODOPULSE_MQTT_TLS_CERT: [optionalString, undefined, 'PEM certificate file for the embedded broker (enables TLS)'],
  ODOPULSE_MQTT_TLS_KEY: [optionalString, undefined, 'PEM private key file for the embedded broker'],
  ODOPULSE_MQTT_TLS_CA: [optionalString, undefined, 'PEM CA file: when set, vehicles must present a client certificate (mutual TLS)'],
  ODOPULSE_MQTT_CREDENTIALS: [
    optionalString,
    undefined,
    'file of per-vehicle credentials, one "VIN:secret" or "VIN:sha256:<hex>" per line; unset = demo mode (any valid VIN, still confined to its own topics)',
  ],
  ODOPULSE_MQTT_USERNAME: [optionalString, undefined, 'username for the external broker'],
  ODOPULSE_MQTT_PASSWORD_FILE: [optionalString, undefined, 'file holding the password for the external broker'],
  ODOPULSE_MQTT_PREFIX: [z.string().regex(/^[A-Za-z0-9_-]+$/), 'v1', 'topic prefix'],
  ODOPULSE_MQTT_MAX_PACKET_BYTES: [
    z.coerce.number().int().min(1024).max(268_435_460),
    263_168,
    "embedded broker's largest MQTT packet (whole packet, bytes); a larger one closes the connection. Default: a 256 KiB telemetry payload plus 1 KiB for header and topic",
  ],
  ODOPULSE_MQTT_CONNECT_RATE: [
    z.coerce.number().min(0),
    20,
    'embedded broker: new connections per second per source address (IPv6: per /64), token bucket; 0 = no limit. Loopback addresses are exempt (local tools, a local proxy)',
  ],
  ODOPULSE_MQTT_CONNECT_BURST: [
    z.coerce.number().int().min(1),
    40,
    'embedded broker: connections one source address may open at once before ODOPULSE_MQTT_CONNECT_RATE applies',
  ],
  ODOPULSE_HTTP_PORT: [port, 8080, 'HTTP API and console'],
  ODOPULSE_HTTP_HOST: [z.string(), '0.0.0.0', 'HTTP listen address'],
  ODOPULSE_HTTP_RATE_LIMIT: [z.coerce.number().int().min(1), 600, 'HTTP requests per minute per principal (unauthenticated: per address)'],
  ODOPULSE_HTTP_AUTH_FAILURES: [
    z.coerce.number().int().min(1),
    60,
    'refused credentials (unknown, revoked or expired keys, bad tokens) per minute per address before it gets 429s',
  ],
  ODOPULSE_HTTP_CORS_ORIGINS: [
    z.string().transform((s) =>
      s
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    ),
    [] as string[],
    'origins allowed to call the API from a browser, comma-separated; unset = CORS off',
  ],
  ODOPULSE_HTTP_MAX_POINTS: [
    z.coerce.number().int().min(10).max(1_000_000),
    10_000,
    'most points one telemetry history answer holds; past it the caller aggregates with `every`',
  ],
  ODOPULSE_HTTP_SECURE_COOKIES: [
    z.enum(['true', 'false']).transform((v) => v === 'true'),
    false,
    'mark the console session cookie Secure (and send HSTS): set when the console is served over HTTPS',
  ],
  ODOPULSE_SESSION_HOURS: [z.coerce.number().min(0.1).max(720), 12, 'how long a console session lasts'],
  ODOPULSE_OIDC_ISSUER: [
    optionalString.pipe(z.string().url().optional()),
    undefined,
    "the OEM identity provider's issuer URL; unset = API keys only",
  ],
  ODOPULSE_OIDC_AUDIENCE: [optionalString, undefined, 'the audience tokens must carry (required with an issuer)'],
  ODOPULSE_OIDC_JWKS_URL: [
    optionalString.pipe(z.string().url().optional()),
    undefined,
    "the issuer's JWKS URL; unset = taken from the issuer's discovery document",
  ],
  ODOPULSE_OIDC_ROLE_CLAIM: [z.string().min(1), 'odopulse_roles', 'claim holding the odopulse role(s); dotted names reach into objects'],
  ODOPULSE_OIDC_DEALERS_CLAIM: [z.string().min(1), 'odopulse_dealers', 'claim holding the dealer ids of advisors and dealer admins'],
  ODOPULSE_OIDC_PERMISSIONS_CLAIM: [z.string().min(1), 'odopulse_permissions', 'claim holding extra permissions (location:read)'],
  ODOPULSE_OIDC_CLIENT_ID: [
    optionalString,
    undefined,
    "the console's public client id at the identity provider (sign-in with authorization code + PKCE)",
  ],
  ODOPULSE_DATA_DIR: [z.string().min(1), './data', 'durable local state (journal, prompt store, outbox, dead letters)'],
  ODOPULSE_WORKERS: [z.coerce.number().int().min(1).max(64), Math.max(1, availableParallelism()), 'rules worker threads'],
  ODOPULSE_BACKLOG_READINGS: [
    z.coerce.number().int().min(0).max(1_000_000),
    100_000,
    'back-pressure: while the rules or the InfluxDB writer are this many readings behind, PUBACKs of new telemetry wait (at most 5 s) until they are back under 60 % of it, so vehicles keep the excess in their spools; 0 = off. Single-machine mode',
  ],
  INFLUX_URL: [z.string().url(), 'http://127.0.0.1:8086', 'InfluxDB'],
  INFLUX_TOKEN: [z.string(), '', 'v2 token (on 1.x: user:password, or empty)'],
  INFLUX_ORG: [z.string(), 'odopulse', 'InfluxDB organisation (2.x)'],
  INFLUX_BUCKET: [z.string().min(1), 'telemetry', 'bucket; on 1.x database or database/retention-policy'],
  ODOPULSE_WEBHOOK_URL: [optionalString, undefined, 'lifecycle-system endpoint(s), comma-separated; unset = no outbound events'],
  ODOPULSE_WEBHOOK_SECRET: [optionalString, undefined, 'HMAC key for the webhook signature header (required with a URL)'],
  ODOPULSE_EVENTS_POSITION_PURPOSE: [
    optionalString.pipe(z.string().min(10).max(200).optional()),
    undefined,
    'position signals leave in CloudEvents only when set: the stated purpose (e.g. "roadside assistance dispatch"), sent in each such event; unset = never',
  ],
  ODOPULSE_WEBHOOK_MAX_BACKOFF_MS: [
    z.coerce.number().int().min(10),
    600_000,
    'longest wait between webhook retries (exponential from 1 s, with jitter)',
  ],
  ODOPULSE_WEBHOOK_GIVE_UP_HOURS: [
    z.coerce.number().min(0).max(87_600),
    72,
    'a webhook event still failing this long after its first failed attempt becomes dead: no longer sent, kept until an operator retries it (POST /api/v1/outbox/{id}/retry); 0 = retry forever',
  ],
  ODOPULSE_RULES_CONFIG: [
    optionalString,
    undefined,
    'rule configuration file (JSON); unset = built-in defaults (docs/domain.md#rule-configuration)',
  ],
  ODOPULSE_CLOCK: [
    z.enum(['wall', 'event']),
    'wall',
    'fleet clock: wall time, or the newest event time seen (replays, accelerated simulations)',
  ],
  ODOPULSE_MAX_CLOCK_SKEW_S: [
    z.coerce.number().int().min(1),
    600,
    'a sample timestamped more than this after its arrival (ODOPULSE_CLOCK=event: after the fleet clock, at its pace) is dead-lettered (future_timestamp)',
  ],
  ODOPULSE_TELEMETRY_RETENTION_DAYS: [
    z.coerce.number().int().min(0),
    3650,
    'a sample older than this (wall clock) is dead-lettered (too_old): set it to the InfluxDB retention; 0 = no limit',
  ],
  ODOPULSE_SWEEP_MS: [z.coerce.number().int().min(100), 60_000, 'how often time-based rules are swept (wall ms)'],
  ODOPULSE_HMI_DAILY_CAP: [z.coerce.number().int().min(0), 3, 'non-urgent HMI prompts per vehicle per local day'],
  ODOPULSE_RETENTION_DAYS: [
    z.coerce.number().int().min(1),
    365,
    'resolved prompts, delivered outbox events and dead letters are pruned after this',
  ],
  ODOPULSE_NATS_URL: [
    optionalString.pipe(
      z
        .string()
        .regex(/^(nats|tls):\/\/[^,\s]+(,\s*(nats|tls):\/\/[^,\s]+)*$/, 'must be nats:// (or tls://) URLs, comma-separated')
        .optional(),
    ),
    undefined,
    'NATS servers, comma-separated: set = cluster mode, telemetry journalled in JetStream (docs/architecture.md#cluster-mode); needs ODOPULSE_DATABASE_URL',
  ],
  ODOPULSE_DATABASE_URL: [
    optionalString.pipe(
      z
        .string()
        .regex(/^postgres(ql)?:\/\//, 'must start with postgres:// or postgresql://')
        .optional(),
    ),
    undefined,
    'PostgreSQL for the shared state (prompts, vehicles, rule states, outbox, keys, audit); unset = SQLite in ODOPULSE_DATA_DIR',
  ],
  ODOPULSE_INSTANCE_ID: [
    optionalString.pipe(
      z
        .string()
        .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits, dot, dash, underscore; at most 64')
        .optional(),
    ),
    undefined,
    "this instance's name in the cluster; unset = host name and process id",
  ],
  ODOPULSE_PARTITIONS: [
    z.coerce.number().int().min(1).max(1024),
    64,
    'telemetry partitions by VIN (cluster mode): each is consumed by one instance at a time; fixed for the life of a cluster',
  ],
  ODOPULSE_NATS_REPLICAS: [z.coerce.number().int().min(1).max(5), 3, 'replicas of the JetStream telemetry stream (cluster mode)'],
  ODOPULSE_LOG_LEVEL: [z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']), 'info', 'log level'],
} as const satisfies Record<string, readonly [z.ZodType, unknown, string]>;

export type SettingName = keyof typeof INGEST_SETTINGS;
type Out<K extends SettingName> = z.output<(typeof INGEST_SETTINGS)[K][0]>;
export type IngestConfig = { [K in SettingName]: Out<K> };

export function flagName(env: string): string {
  return (
    '--' +
    env
      .replace(/^ODOPULSE_/, '')
      .toLowerCase()
      .replace(/_/g, '-')
  );
}

/** commander's camelCase option values -> { ENV_NAME: value }. */
export function flagsToSettings(opts: Record<string, unknown>): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const name of Object.keys(INGEST_SETTINGS) as SettingName[]) {
    const key = flagName(name)
      .slice(2)
      .replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
    if (opts[key] !== undefined) out[name] = String(opts[key]);
  }
  return out;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Merge flags over the environment over defaults and validate. A bad value throws a ConfigError
 * naming the setting (both its variable and its flag).
 */
export function loadIngestConfig(env: NodeJS.ProcessEnv, flags: Record<string, string | undefined> = {}): IngestConfig {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, [schema, def]] of Object.entries(INGEST_SETTINGS) as Array<[SettingName, readonly [z.ZodType, unknown, string]]>) {
    const raw = flags[name] ?? env[name];
    if (raw === undefined || raw === '') {
      out[name] = def;
      continue;
    }
    const r = schema.safeParse(raw);
    if (r.success) out[name] = r.data;
    else problems.push(`${name} (${flagName(name)}) = ${JSON.stringify(raw)}: ${r.error.issues.map((i) => i.message).join('; ')}`);
  }
  const cfg = out as IngestConfig;
  if (cfg.ODOPULSE_WEBHOOK_URL && !cfg.ODOPULSE_WEBHOOK_SECRET)
    problems.push('ODOPULSE_WEBHOOK_SECRET (--webhook-secret): required when ODOPULSE_WEBHOOK_URL is set');
  if (cfg.ODOPULSE_OIDC_ISSUER && !cfg.ODOPULSE_OIDC_AUDIENCE)
    problems.push('ODOPULSE_OIDC_AUDIENCE (--oidc-audience): required when ODOPULSE_OIDC_ISSUER is set');
  if (!cfg.ODOPULSE_OIDC_ISSUER && (cfg.ODOPULSE_OIDC_JWKS_URL || cfg.ODOPULSE_OIDC_CLIENT_ID))
    problems.push('ODOPULSE_OIDC_ISSUER (--oidc-issuer): required when another ODOPULSE_OIDC_* setting is set');
  for (const u of webhookUrls(cfg)) {
    if (!/^https?:\/\//.test(u)) problems.push(`ODOPULSE_WEBHOOK_URL (--webhook-url): ${JSON.stringify(u)} is not an http(s) URL`);
  }
  if (Boolean(cfg.ODOPULSE_MQTT_TLS_CERT) !== Boolean(cfg.ODOPULSE_MQTT_TLS_KEY))
    problems.push('ODOPULSE_MQTT_TLS_CERT / ODOPULSE_MQTT_TLS_KEY: set both or neither');
  if (cfg.ODOPULSE_NATS_URL && cfg.ODOPULSE_MQTT_URL)
    problems.push(
      'ODOPULSE_MQTT_URL (--mqtt-url): cluster mode (ODOPULSE_NATS_URL) runs the embedded broker on every instance, behind a TCP load balancer',
    );
  if (cfg.ODOPULSE_NATS_URL && !cfg.ODOPULSE_DATABASE_URL)
    problems.push(
      'ODOPULSE_DATABASE_URL (--database-url): required when ODOPULSE_NATS_URL is set (cluster mode shares its state in PostgreSQL)',
    );
  if (problems.length) throw new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);
  return cfg;
}

/** This instance's name in the cluster (ODOPULSE_INSTANCE_ID, else host name and pid). */
export function instanceId(cfg: Pick<IngestConfig, 'ODOPULSE_INSTANCE_ID'>): string {
  return (
    cfg.ODOPULSE_INSTANCE_ID ??
    `${hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .slice(0, 48)}-${process.pid}`
  );
}

export function natsServers(cfg: Pick<IngestConfig, 'ODOPULSE_NATS_URL'>): string[] {
  return (cfg.ODOPULSE_NATS_URL ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export function webhookUrls(cfg: Pick<IngestConfig, 'ODOPULSE_WEBHOOK_URL'>): string[] {
  return (cfg.ODOPULSE_WEBHOOK_URL ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}
