// Wiring of the ingest service (docs/architecture.md): reads the validated configuration and connects
// the parts. Behaviour lives in the parts; this file only decides which ones and how they meet.
import { pino } from 'pino';
import { encodeAgentConfig } from '../proto/codec.js';
import { RulesPool } from '../rules/pool.js';
import type { ServiceRecord } from '../rules/types.js';
import { createClock } from './clock.js';
import { instanceId, natsServers, webhookUrls, type IngestConfig } from './config.js';
import { openCluster } from './cluster/wiring.js';
import { Authenticator } from './auth/authenticate.js';
import { CampaignDeliveries } from './campaigns/delivery.js';
import { CampaignService } from './campaigns/service.js';
import { createOidcVerifier } from './auth/oidc.js';
import { buildApp } from './http/app.js';
import { backlogGate } from './inbound/backlog-gate.js';
import { loadCredentials } from './inbound/credentials.js';
import { startEmbeddedBroker } from './inbound/embedded.js';
import { connectExternalBroker } from './inbound/external.js';
import { createInboundHandlers } from './inbound/handlers.js';
import { topicFor, type BrokerLink } from './inbound/topics.js';
import { DecodedCache } from './journal/decoded-cache.js';
import { Journal, type JournalPort } from './journal/journal.js';
import { WAL_CHECKPOINT_MS } from './store/sqlite/checkpointer.js';
import { createMetrics } from './metrics.js';
import { eventsForChanges, WebhookDispatcher } from './outbound/webhook.js';
import { Pipeline } from './pipeline/pipeline.js';
import { loadRulesConfigFile, watchRulesConfig } from './pipeline/rules-config.js';
import { RulesRunner } from './pipeline/rules-runner.js';
import { PromptFanout } from './prompts/fanout.js';
import { ChangeRecorder, recordingStores } from './prompts/recorder.js';
import { HmiDelivery } from './prompts/hmi.js';
import { connectInflux } from './store/influx/connect.js';
import { openPostgresStores, openSqliteStores } from './stores.js';

export interface IngestHandle {
  httpPort: number;
  mqttPort: number | null;
  stop(): Promise<void>;
}

const DAY = 86_400_000;

/** docs/contract.md#health: what /healthz says of the cluster (cluster mode). */
const clusterChecks = (h: { nats: boolean; partitionsHeld: number; members: number }) => ({
  nats: h.nats,
  partitionsHeld: String(h.partitionsHeld),
  clusterMembers: String(h.members),
});

export async function startIngest(cfg: IngestConfig): Promise<IngestHandle> {
  const log = pino({ level: cfg.ODOPULSE_LOG_LEVEL, base: { svc: 'ingest' } });
  const clock = createClock(cfg.ODOPULSE_CLOCK);
  const rulesConfig = loadRulesConfigFile(cfg.ODOPULSE_RULES_CONFIG);

  // Cluster mode (docs/architecture.md#cluster-mode): shared state in PostgreSQL, the journal in JetStream.
  const cluster = cfg.ODOPULSE_NATS_URL
    ? await openCluster(
        {
          natsServers: natsServers(cfg),
          databaseUrl: cfg.ODOPULSE_DATABASE_URL!,
          instanceId: instanceId(cfg),
          partitions: cfg.ODOPULSE_PARTITIONS,
          replicas: cfg.ODOPULSE_NATS_REPLICAS,
          maxPacketBytes: cfg.ODOPULSE_MQTT_MAX_PACKET_BYTES,
        },
        log.child({ part: 'cluster' }),
      )
    : null;
  const stores =
    cluster?.stores ??
    (cfg.ODOPULSE_DATABASE_URL
      ? await openPostgresStores(cfg.ODOPULSE_DATABASE_URL, { instanceId: instanceId(cfg) })
      : openSqliteStores(cfg.ODOPULSE_DATA_DIR, {
          walCheckpointMs: WAL_CHECKPOINT_MS,
          onCheckpointError: (err) => log.warn({ part: 'store', err }, 'store WAL checkpoint failed'),
        }));
  const metrics = createMetrics({ outboxCount: (state) => stores.outbox.count(state) });
  // Nobody is connected yet (the embedded broker's clients went with the last process; an external
  // broker replays each vehicle's retained birth): every vehicle is online again at its birth. Not in
  // a cluster: the other instances' vehicles are still connected.
  const wasOnline = cluster ? 0 : await stores.vehicles.resetOnline(Date.now());
  if (wasOnline > 0) log.info({ vehicles: wasOnline }, 'vehicles marked offline until their birth message');
  const journal: JournalPort =
    cluster?.journal ?? new Journal(cfg.ODOPULSE_DATA_DIR, { log: log.child({ part: 'journal' }), walCheckpointMs: WAL_CHECKPOINT_MS });
  const decoded = cluster?.edge ?? new DecodedCache();
  // Start-up does not wait for InfluxDB (docs/architecture.md#start-up): bad settings throw here,
  // the connection is made in the background; once made, the InfluxDB loop writes the journal at once.
  const telemetry = connectInflux({
    url: cfg.INFLUX_URL,
    token: cfg.INFLUX_TOKEN,
    org: cfg.INFLUX_ORG,
    bucket: cfg.INFLUX_BUCKET,
    log,
    onConnected: () => pipeline.retryInfluxNow(),
  });
  const pool = new RulesPool({ threads: cfg.ODOPULSE_WORKERS, config: rulesConfig });
  const stopWatch = cfg.ODOPULSE_RULES_CONFIG
    ? watchRulesConfig(
        cfg.ODOPULSE_RULES_CONFIG,
        (c) => {
          pool.setConfig(c);
          log.info({ file: cfg.ODOPULSE_RULES_CONFIG }, 'rule configuration reloaded');
        },
        (msg) => log.error(msg),
      )
    : () => {};

  const urls = webhookUrls(cfg);
  const positionPurpose = cfg.ODOPULSE_EVENTS_POSITION_PURPOSE;
  // campaign messages follow the segments in the rules commit and every prompt change of theirs in its own
  const campaignDeliveries = new CampaignDeliveries({ stores, events: { urls, positionPurpose } });
  const rules = await RulesRunner.open({
    pool,
    stores,
    clock,
    metrics,
    webhookUrls: urls,
    eventPositionPurpose: positionPurpose,
    campaigns: campaignDeliveries,
    cluster: cluster?.rules,
    log,
  });
  const pipeline = new Pipeline({ journal, decoded, stores, telemetry, rules, clock, metrics, log });
  // Prompt changes outside the rules commit get their outbox rows in their own transaction: through
  // `recorder` (the API, expiry) or a store whose changing calls do it (HMI sent, HMI acks).
  const recorder = new ChangeRecorder({
    transaction: (fn) => stores.transaction(fn),
    outbox: stores.outbox,
    eventsFor: (c) => eventsForChanges(c, { urls, positionPurpose }),
    track: (c) => campaignDeliveries.track(c),
    clock,
  });
  const recording = recordingStores(stores, recorder);

  // The broker adapters and HMI delivery need the fan-out, which needs both: late-bound here.
  const late: { fanout?: PromptFanout; hmi?: HmiDelivery } = {};
  const handlers = createInboundHandlers({
    journal,
    decoded,
    stores: recording,
    metrics,
    clock,
    limits: { maxClockSkewS: cfg.ODOPULSE_MAX_CLOCK_SKEW_S, telemetryRetentionDays: cfg.ODOPULSE_TELEMETRY_RETENTION_DAYS },
    onJournalled: () => pipeline.wake(),
    gate: cluster ? undefined : backlogGate(cfg.ODOPULSE_BACKLOG_READINGS, pipeline, metrics),
    onOnline: (vin) => late.fanout?.deliver([vin], { resend: true }),
    // never rejects: a failure to record goes to onConfirmFailed
    onDelivered: (vin, promptId) => void late.hmi?.confirmed(vin, promptId),
    onPromptsSubscribed: (vin) => late.fanout?.deliver([vin], { resend: true }),
    onAcks: (changes) => late.fanout?.published(changes, false),
  });
  const link: BrokerLink = cfg.ODOPULSE_MQTT_URL
    ? await connectExternalBroker(
        {
          url: cfg.ODOPULSE_MQTT_URL,
          prefix: cfg.ODOPULSE_MQTT_PREFIX,
          username: cfg.ODOPULSE_MQTT_USERNAME,
          passwordFile: cfg.ODOPULSE_MQTT_PASSWORD_FILE,
          ca: cfg.ODOPULSE_MQTT_TLS_CA,
          onError: (err) => log.warn({ err: err.message }, 'external broker error'),
        },
        handlers,
      )
    : await startEmbeddedBroker(
        {
          prefix: cfg.ODOPULSE_MQTT_PREFIX,
          host: cfg.ODOPULSE_MQTT_HOST,
          port: cfg.ODOPULSE_MQTT_PORT,
          tls:
            cfg.ODOPULSE_MQTT_TLS_CERT && cfg.ODOPULSE_MQTT_TLS_KEY
              ? {
                  port: cfg.ODOPULSE_MQTT_TLS_PORT,
                  cert: cfg.ODOPULSE_MQTT_TLS_CERT,
                  key: cfg.ODOPULSE_MQTT_TLS_KEY,
                  ca: cfg.ODOPULSE_MQTT_TLS_CA,
                }
              : undefined,
          credentials: cfg.ODOPULSE_MQTT_CREDENTIALS ? loadCredentials(cfg.ODOPULSE_MQTT_CREDENTIALS, (w) => log.warn(w)) : undefined,
          maxPacketBytes: cfg.ODOPULSE_MQTT_MAX_PACKET_BYTES,
          connectRate: { perSecond: cfg.ODOPULSE_MQTT_CONNECT_RATE, burst: cfg.ODOPULSE_MQTT_CONNECT_BURST },
          onDenied: (what, client) => {
            metrics.denied.inc();
            log.warn({ client, what }, 'MQTT ACL denied');
          },
        },
        handlers,
      );
  if (!cfg.ODOPULSE_MQTT_URL && !cfg.ODOPULSE_MQTT_CREDENTIALS) {
    log.warn(
      'no vehicle credentials configured (ODOPULSE_MQTT_CREDENTIALS): demo mode, any valid VIN may connect, confined to its own topics',
    );
  }

  const dispatcher = urls.length
    ? new WebhookDispatcher({
        outbox: stores.outbox,
        secret: cfg.ODOPULSE_WEBHOOK_SECRET!,
        baseBackoffMs: Math.min(1000, cfg.ODOPULSE_WEBHOOK_MAX_BACKOFF_MS),
        maxBackoffMs: cfg.ODOPULSE_WEBHOOK_MAX_BACKOFF_MS,
        giveUpMs: cfg.ODOPULSE_WEBHOOK_GIVE_UP_HOURS * 3_600_000,
        onError: (err: unknown) => log.warn({ err: String(err) }, 'webhook delivery failed; will retry'),
        onDead: (e, err) => {
          metrics.outboxDead.inc();
          log.error({ id: e.id, url: e.url, attempts: e.attempts, err }, 'webhook event given up (dead); POST /api/v1/outbox/{id}/retry');
        },
      })
    : null;
  const hmi = new HmiDelivery({
    stores: recording,
    link,
    prefix: cfg.ODOPULSE_MQTT_PREFIX,
    clock,
    dailyCap: cfg.ODOPULSE_HMI_DAILY_CAP,
    // in a cluster a vehicle's rules may run elsewhere: its timing comes from the telemetry this instance got, else the shared rule state
    latest: async (vin) => (cluster ? (cluster.edge.latest(vin) ?? (await stores.ruleStates.load(vin))?.latest) : rules.latest(vin)),
    isLocal: cluster ? (vin) => link.hasVehicle?.(vin) ?? false : undefined,
    onChanges: (changes) => late.fanout?.published(changes, false),
    onSent: (p) => metrics.hmiSent.inc({ urgent: String(p.urgent) }),
    onConfirmFailed: (err) => log.error({ err }, 'recording a confirmed HMI delivery failed; it is sent again at the next birth'),
    onInvalidTimeZone: (vin, tz) => {
      metrics.hmiInvalidTimeZones.inc();
      log.warn({ vin, timeZone: tz }, 'stored profile has an unknown time zone; HMI timing uses the locale default');
    },
  });
  const out = new PromptFanout({
    recorder,
    hmi,
    dispatcher,
    log,
    onError: (loop) => metrics.loopErrors.inc({ loop }),
    feed: cluster ? { kick: () => cluster.kick() } : undefined,
  });
  const campaigns = new CampaignService({ stores, delivery: campaignDeliveries, clock, record: (fn, deliver) => out.record(fn, deliver) });
  late.fanout = out;
  late.hmi = hmi;
  // HMI delivery: the step's changed vehicles at once, then those holding prompts back ('processed' follows 'changes')
  pipeline.on('changes', (c) => out.published(c, true));
  pipeline.on('processed', (vins) => out.stepApplied(vins));

  const applyServiceRecord = async (vin: string, rec: ServiceRecord) => {
    const { id, changes } = await rules.serviceRecord(vin, rec);
    out.published(changes);
    return id;
  };

  const oidc = cfg.ODOPULSE_OIDC_ISSUER
    ? createOidcVerifier({
        issuer: cfg.ODOPULSE_OIDC_ISSUER,
        audience: cfg.ODOPULSE_OIDC_AUDIENCE!,
        jwksUrl: cfg.ODOPULSE_OIDC_JWKS_URL,
        roleClaim: cfg.ODOPULSE_OIDC_ROLE_CLAIM,
        dealersClaim: cfg.ODOPULSE_OIDC_DEALERS_CLAIM,
        permissionsClaim: cfg.ODOPULSE_OIDC_PERMISSIONS_CLAIM,
      })
    : undefined;
  const authenticator = new Authenticator({ keys: stores.keys, oidc, now: Date.now });
  if ((await stores.keys.list()).every((k) => k.revokedAt !== null)) {
    log.warn('no API key exists yet: create one with `odopulse keys create --role operator --name NAME` (same ODOPULSE_DATA_DIR)');
  }

  const app = await buildApp({
    logger: log.child({ part: 'http' }),
    stores,
    authenticator,
    limits: {
      ratePerMinute: cfg.ODOPULSE_HTTP_RATE_LIMIT,
      authFailuresPerMinute: cfg.ODOPULSE_HTTP_AUTH_FAILURES,
      corsOrigins: cfg.ODOPULSE_HTTP_CORS_ORIGINS,
      maxHistoryPoints: cfg.ODOPULSE_HTTP_MAX_POINTS,
      sessionTtlMs: cfg.ODOPULSE_SESSION_HOURS * 3_600_000,
      secureCookies: cfg.ODOPULSE_HTTP_SECURE_COOKIES,
    },
    console: cfg.ODOPULSE_OIDC_CLIENT_ID
      ? { oidc: { issuer: cfg.ODOPULSE_OIDC_ISSUER!, clientId: cfg.ODOPULSE_OIDC_CLIENT_ID } }
      : undefined,
    telemetry,
    clock,
    changes: { subscribe: (fn) => out.subscribe(fn), record: (fn) => out.record(fn) },
    dispatcher: dispatcher ?? undefined,
    onServiceRecord: (vin, rec) => (cluster ? cluster.serviceRecord(vin, rec) : applyServiceRecord(vin, rec)),
    // not awaited by the route (as before: the profile is stored, targeting follows)
    onProfileChanged: (vin) => {
      campaigns.onProfileChanged(vin).catch((err: unknown) => {
        log.error({ err, vin }, 'campaign targeting after a profile change failed; the next segment change retries it');
      });
    },
    publishPolicy: (vin, policy) =>
      link.publish(topicFor(cfg.ODOPULSE_MQTT_PREFIX, vin, 'config'), encodeAgentConfig(policy), { qos: 1, retain: true }),
    health: async () => {
      const [influx, workers] = await Promise.all([
        telemetry.availability().catch((err: unknown) => ({ ok: false, error: String(err) })),
        pool.ping(clock.now()),
      ]);
      const lag = journal.lag();
      const storage = journal.storageState();
      const checks = {
        broker: link.ready(),
        journalWritable: storage.writable,
        ...(storage.writable
          ? {}
          : {
              journalError: `not writable since ${new Date(storage.since).toISOString()}: ${storage.reason ?? 'other'}: ${storage.error ?? ''}`,
            }),
        influxdb: influx.ok,
        ...(influx.error ? { influxdbError: influx.error } : {}),
        workers,
        journalPending: String(lag.rules),
        journalPendingInflux: String(lag.influx),
        rulesLaneFallbacks: String(pool.failures),
        ...(cluster ? clusterChecks(cluster.health()) : {}),
      };
      // docs/contract.md#health: without InfluxDB telemetry is still journalled (degraded, 200);
      // without the broker, a writable journal (disk full: publishes refused) or the rules workers
      // ingest cannot do its job (down, 503)
      const status = !checks.broker || !workers || !storage.writable ? 'down' : influx.ok ? 'ok' : 'degraded';
      return { ok: status === 'ok', status, checks };
    },
    metrics: { contentType: metrics.registry.contentType, render: () => metrics.registry.metrics() },
    campaigns,
  });

  await cluster?.start({
    evict: (which) => rules.evict(which),
    wake: () => pipeline.wake(),
    changes: (c) => out.fromFeed(c),
    telemetry: (vin) => {
      if (hmi.holdsBack(vin)) out.deliver([vin]);
    },
    applyServiceRecord,
  });
  pipeline.start();
  dispatcher?.start();
  // A sweep or prune slower than its interval is not stacked behind itself; stop() waits for the one running.
  let sweeping: Promise<void> | null = null;
  const sweep = setInterval(() => {
    sweeping ??= (async () => {
      const changes = await rules.sweep();
      out.published(changes, false);
      await out.record(() => stores.prompts.expire(clock.now()));
      try {
        await campaigns.sweep();
      } finally {
        out.deliver(new Set([...rules.knownVins(), ...hmi.heldBackVins()]));
      }
    })()
      .catch((err: unknown) => {
        metrics.loopErrors.inc({ loop: 'sweep' });
        log.error({ err }, 'sweep failed; retried at the next interval');
      })
      .finally(() => (sweeping = null));
  }, cfg.ODOPULSE_SWEEP_MS);
  let pruning: Promise<void> | null = null;
  const prune = setInterval(() => {
    pruning ??= (async () => {
      await stores.prune(Date.now() - cfg.ODOPULSE_RETENTION_DAYS * DAY);
      await stores.keys.pruneSessions(Date.now());
      journal.prune(Date.now() - 3 * DAY);
    })()
      .catch((err: unknown) => {
        metrics.loopErrors.inc({ loop: 'prune' });
        log.error({ err }, 'prune failed; retried at the next interval');
      })
      .finally(() => (pruning = null));
  }, 6 * 3600_000);
  prune.unref();

  await app.listen({ port: cfg.ODOPULSE_HTTP_PORT, host: cfg.ODOPULSE_HTTP_HOST });
  const httpPort = (app.server.address() as { port: number }).port;
  const mqttPort = 'port' in link ? (link as { port: number }).port : null;
  log.info(
    { httpPort, mqttPort, broker: link.kind, influx: cfg.INFLUX_URL, clock: clock.mode, workers: cfg.ODOPULSE_WORKERS },
    'odopulse ingest ready',
  );

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
        await handlers.drained(); // status, acks and dead letters the broker handed over before it closed
        await pipeline.stop();
        await cluster?.stop(); // nothing consumes any more: hand the partitions over at once
        await dispatcher?.stop();
        await Promise.all([sweeping, pruning]);
        await pool.close();
        await telemetry.flush().catch(() => undefined);
        await telemetry.close();
        await journal.close();
        await handlers.flushSequences();
        await stores.close(); // last: everything above may still write to them
        log.info('odopulse ingest stopped');
      })()),
  };
}
