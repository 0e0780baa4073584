// Wiring of the ingest service: reads the validated configuration and connects the parts.
import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { RulesPool } from '../rules/pool.js';
import { Journal } from './journal.js';
import { createMetrics } from './metrics.js';
import { createClock } from './clock.js';
import { Pipeline } from './pipeline.js';
import { RulesRunner } from './rules-runner.js';
import { HmiDelivery } from './delivery/hmi.js';
import { eventsForChanges, WebhookDispatcher } from './delivery/webhook.js';
import { startEmbeddedBroker } from './broker/embedded.js';
import { connectExternalBroker } from './broker/external.js';
import { loadCredentials } from './broker/credentials.js';
import { topicFor, type BrokerLink } from './broker/topics.js';
import { encodeAgentConfig } from '../proto/codec.js';
import { openSqliteStores } from './store/index.js';
import { createInfluxTelemetryStore } from './store/influx.js';
import type { PromptChange, TelemetryStore } from './store/ports.js';
import { buildApp } from './http/app.js';
import { loadRulesConfigFile, watchRulesConfig } from './rules-config.js';
import { webhookUrls, type IngestConfig } from './config.js';

export interface IngestHandle {
  httpPort: number;
  mqttPort: number | null;
  stop(): Promise<void>;
}

const DAY = 86_400_000;

export async function startIngest(cfg: IngestConfig): Promise<IngestHandle> {
  const log = pino({ level: cfg.ODOPULSE_LOG_LEVEL, base: { svc: 'ingest' } });
  const influxLog = { warn: (m: string, e?: unknown) => log.warn({ err: String(e ?? '') }, m), error: (m: string, e?: unknown) => log.error({ err: String(e ?? '') }, m) };
  const metrics = createMetrics();
  const clock = createClock(cfg.ODOPULSE_CLOCK);
  const rulesConfig = loadRulesConfigFile(cfg.ODOPULSE_RULES_CONFIG);

  const stores = openSqliteStores(cfg.ODOPULSE_DATA_DIR);
  const journal = new Journal(cfg.ODOPULSE_DATA_DIR);
  const telemetry: TelemetryStore = await connectInflux(cfg, log, influxLog);
  const pool = new RulesPool({ threads: cfg.ODOPULSE_WORKERS, config: rulesConfig });
  const stopWatch = cfg.ODOPULSE_RULES_CONFIG
    ? watchRulesConfig(cfg.ODOPULSE_RULES_CONFIG, (c) => { pool.setConfig(c); log.info({ file: cfg.ODOPULSE_RULES_CONFIG }, 'rule configuration reloaded'); }, (msg) => log.error(msg))
    : () => {};

  const urls = webhookUrls(cfg);
  const rules = new RulesRunner({ pool, stores, clock, metrics, webhookUrls: urls, log });
  const pipeline = new Pipeline({ journal, stores, telemetry, rules, clock, metrics, log });

  const link: BrokerLink = cfg.ODOPULSE_MQTT_URL
    ? await connectExternalBroker(
        { url: cfg.ODOPULSE_MQTT_URL, prefix: cfg.ODOPULSE_MQTT_PREFIX, username: cfg.ODOPULSE_MQTT_USERNAME, passwordFile: cfg.ODOPULSE_MQTT_PASSWORD_FILE, ca: cfg.ODOPULSE_MQTT_TLS_CA, onError: (err) => log.warn({ err: err.message }, 'external broker error') },
        pipeline.handlers,
      )
    : await startEmbeddedBroker(
        {
          prefix: cfg.ODOPULSE_MQTT_PREFIX, host: cfg.ODOPULSE_MQTT_HOST, port: cfg.ODOPULSE_MQTT_PORT,
          tls: cfg.ODOPULSE_MQTT_TLS_CERT && cfg.ODOPULSE_MQTT_TLS_KEY ? { port: cfg.ODOPULSE_MQTT_TLS_PORT, cert: cfg.ODOPULSE_MQTT_TLS_CERT, key: cfg.ODOPULSE_MQTT_TLS_KEY, ca: cfg.ODOPULSE_MQTT_TLS_CA } : undefined,
          credentials: cfg.ODOPULSE_MQTT_CREDENTIALS ? loadCredentials(cfg.ODOPULSE_MQTT_CREDENTIALS) : undefined,
          onDenied: (what, client) => { metrics.denied.inc(); log.warn({ client, what }, 'MQTT ACL denied'); },
        },
        pipeline.handlers,
      );
  if (!cfg.ODOPULSE_MQTT_URL && !cfg.ODOPULSE_MQTT_CREDENTIALS) log.warn('no vehicle credentials configured (ODOPULSE_MQTT_CREDENTIALS): demo mode, any valid VIN may connect, confined to its own topics');

  // One bus for prompt changes: SSE subscribers, HMI delivery, webhooks.
  const bus = new EventEmitter<{ change: [PromptChange] }>();
  bus.setMaxListeners(0);
  const dispatcher = urls.length ? new WebhookDispatcher({ outbox: stores.outbox, secret: cfg.ODOPULSE_WEBHOOK_SECRET!, baseBackoffMs: Math.min(1000, cfg.ODOPULSE_WEBHOOK_MAX_BACKOFF_MS), maxBackoffMs: cfg.ODOPULSE_WEBHOOK_MAX_BACKOFF_MS, onError: (err: unknown) => log.warn({ err: String(err) }, 'webhook delivery failed; will retry') }) : null;
  const hmi = new HmiDelivery({
    stores, link, prefix: cfg.ODOPULSE_MQTT_PREFIX, clock, dailyCap: cfg.ODOPULSE_HMI_DAILY_CAP,
    latest: (vin) => rules.latest(vin),
    onChanges: (changes) => enqueueAndPublish(changes, false),
    onSent: (p) => metrics.hmiSent.inc({ urgent: String(p.urgent) }),
  });
  const deliverSafely = (vins: Iterable<string>) => hmi.deliver(vins).catch((err) => log.warn({ err: (err as Error).message }, 'HMI delivery failed; retried on the next sweep'));
  /** Prompt changes made outside the rules' transaction (HMI sent/acks, advisor acks, expiry) go to the outbox here. */
  function enqueueAndPublish(changes: PromptChange[], deliver = true) {
    if (urls.length && changes.length) stores.outbox.enqueue(eventsForChanges(changes, urls), clock.now());
    publishChanges(changes, deliver);
  }
  function publishChanges(changes: PromptChange[], deliver = true) {
    for (const c of changes) {
      bus.emit('change', c);
      if (c.prompt.hmiState === 'withdrawn' && (c.step === 'withdrawn' || c.step === 'resolved')) hmi.withdraw(c.prompt).catch(() => undefined);
    }
    if (deliver) void deliverSafely(new Set(changes.map((c) => c.vin)));
    dispatcher?.kick();
  }
  // HMI delivery for these vehicles follows on 'processed', emitted right after for every vehicle of the step
  pipeline.on('changes', (c) => publishChanges(c, false));
  pipeline.on('acks', (c) => enqueueAndPublish(c, false));
  pipeline.on('processed', (vins) => void deliverSafely(vins));
  pipeline.on('online', (vin) => void deliverSafely([vin]));

  const app = await buildApp({
    stores, telemetry, clock,
    changes: { subscribe: (fn) => { bus.on('change', fn); return () => bus.off('change', fn); }, publish: (c) => enqueueAndPublish([c], false) },
    onServiceRecord: async (vin, rec) => publishChanges(await rules.serviceRecord(vin, rec)),
    publishPolicy: (vin, policy) => link.publish(topicFor(cfg.ODOPULSE_MQTT_PREFIX, vin, 'config'), encodeAgentConfig(policy), { qos: 1, retain: true }),
    health: async () => {
      const [influx, workers] = await Promise.all([telemetry.ping().catch(() => false), pingWorkers(pool, clock.now())]);
      const checks = { broker: link.ready(), influxdb: influx, workers, journalPending: String(journal.lag().rules), rulesLaneFallbacks: String(pool.failures) };
      return { ok: checks.broker && checks.influxdb && checks.workers, checks };
    },
    metrics: { contentType: metrics.registry.contentType, render: () => metrics.registry.metrics() },
  });

  pipeline.start();
  dispatcher?.start();
  let sweeping = false; // a sweep slower than the interval is not stacked behind itself
  const sweep = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    rules
      .sweep()
      .then(
        (c) => {
          publishChanges(c);
          enqueueAndPublish(stores.prompts.expire(clock.now()), false);
          return deliverSafely(rules.knownVins());
        },
        (err) => log.error({ err }, 'sweep failed'),
      )
      .finally(() => (sweeping = false));
  }, cfg.ODOPULSE_SWEEP_MS);
  const prune = setInterval(() => {
    stores.prune(Date.now() - cfg.ODOPULSE_RETENTION_DAYS * DAY);
    journal.prune(Date.now() - 3 * DAY);
  }, 6 * 3600_000);
  prune.unref();

  await app.listen({ port: cfg.ODOPULSE_HTTP_PORT, host: cfg.ODOPULSE_HTTP_HOST });
  const httpPort = (app.server.address() as { port: number }).port;
  const mqttPort = 'port' in link ? (link as { port: number }).port : null;
  log.info({ httpPort, mqttPort, broker: link.kind, influx: cfg.INFLUX_URL, clock: clock.mode, workers: cfg.ODOPULSE_WORKERS }, 'odopulse ingest ready');

  let stopping: Promise<void> | null = null;
  return {
    httpPort,
    mqttPort,
    stop: () =>
      (stopping ??= (async () => {
        clearInterval(sweep);
        clearInterval(prune);
        stopWatch();
        await app.close();
        await link.close();
        await pipeline.stop();
        await dispatcher?.stop();
        await pool.close();
        await telemetry.flush().catch(() => undefined);
        await telemetry.close();
        journal.close();
        stores.close();
        log.info('odopulse ingest stopped');
      })()),
  };
}

/** The rules workers answer: one empty vehicle through the pool, within 2 s. */
async function pingWorkers(pool: RulesPool, now: number): Promise<boolean> {
  const timeout = new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 2000).unref());
  const run = pool.run([{ vin: 'HEALTHCHECK000000', readings: [] }], now).then((r) => r.length === 1, () => false);
  return Promise.race([run, timeout]);
}

/** On loopback, compressing write bodies costs CPU and saves nothing (measured: ~30 % slower). */
function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '::1' || host === '[::1]' || host.startsWith('127.');
}

async function connectInflux(cfg: IngestConfig, log: { warn(o: object, m?: string): void }, logger: { warn(m: string, e?: unknown): void; error(m: string, e?: unknown): void }): Promise<TelemetryStore> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      return await createInfluxTelemetryStore({ url: cfg.INFLUX_URL, token: cfg.INFLUX_TOKEN, org: cfg.INFLUX_ORG, bucket: cfg.INFLUX_BUCKET, flushIntervalMs: 1000, logger, gzipThreshold: isLoopback(cfg.INFLUX_URL) ? Number.MAX_SAFE_INTEGER : 1000 });
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`InfluxDB at ${cfg.INFLUX_URL} is not reachable: ${(err as Error).message}`);
      log.warn({ err: (err as Error).message }, 'waiting for InfluxDB');
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
