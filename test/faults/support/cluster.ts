// The cluster-mode fault case's rig (test/faults/cluster.test.ts): a 3-node NATS JetStream cluster,
// a database on a shared PostgreSQL server, a database on the shared influxd, one webhook receiver
// for every instance, and ingest processes in cluster mode (ODOPULSE_NATS_URL + ODOPULSE_DATABASE_URL,
// their own instance id, ports and data dir), each one's output written to a log file under the
// rig's temp dir (the tails are printed when a case fails). Read-backs straight from the shared
// state: the partition leases (cluster_partitions), the rule states (rule_states) and, per vehicle,
// the stream sequence of its last message in the telemetry stream.
import { createWriteStream, mkdtempSync, readFileSync, rmSync, type WriteStream } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { createApiKey } from '../../../ingest/auth/keys.js';
import { partitionOf } from '../../../ingest/cluster/partition.js';
import type { CloudEvent } from '../../../ingest/outbound/cloudevents.js';
import { verifySignature } from '../../../ingest/outbound/webhook.js';
import { openPostgresBackend } from '../../../ingest/store/index.js';
import type { VehicleRuleState } from '../../../rules/types.js';
import { VSS } from '../../../proto/signals.js';
import { startIngestProcess, type IngestProcess } from '../../support/ingest.js';
import { influxQuery } from '../../support/influxd.js';
import type { NatsCluster } from '../../support/nats.js';
import { freePort } from '../../support/ports.js';
import { SAMPLES_PER_BATCH, type Ledger } from './ledger.js';

/** The telemetry stream and its subjects (ingest/cluster/telemetry-log.ts): odopulse.telemetry.<partition>.<vin>. */
const TELEMETRY_STREAM = 'ODOPULSE_TELEMETRY';
const SUBJECT_PREFIX = 'odopulse.telemetry';

export const WEBHOOK_SECRET = 'fault-suite-cluster-webhook-secret';

/** The lifecycle system every instance posts to: verifies each signature, answers 204, counts 2xx per webhook-id. */
export class WebhookReceiver {
  private server: http.Server | undefined;
  readonly accepted = new Map<string, number>();
  readonly events = new Map<string, CloudEvent<{ id?: string; vin?: string }>>();
  badSignatures = 0;
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}/events`;
  }

  async start(): Promise<this> {
    this.port = await freePort();
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        if (!verifySignature(WEBHOOK_SECRET, req.headers as Record<string, string>, body, 300)) {
          this.badSignatures++;
          res.writeHead(401).end();
          return;
        }
        const id = String(req.headers['webhook-id']);
        this.accepted.set(id, (this.accepted.get(id) ?? 0) + 1);
        this.events.set(id, JSON.parse(body) as CloudEvent<{ id?: string; vin?: string }>);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(this.port, '127.0.0.1', () => r()));
    this.server = server;
    return this;
  }

  async stop(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }

  /** Ids answered 2xx more than once. */
  duplicates(): string[] {
    return [...this.accepted].filter(([, n]) => n > 1).map(([id, n]) => `${id} ×${n}`);
  }

  /** The prompt ids of the events of one type (e.g. com.odopulse.prompt.created). */
  promptIds(type: string): string[] {
    return [...this.events.values()].filter((e) => e.type === type).map((e) => e.data.id!);
  }
}

/** An operator key (with location:read) in the cluster's PostgreSQL database; also runs the migrations. */
export async function createClusterOperatorKey(databaseUrl: string): Promise<string> {
  const b = await openPostgresBackend(databaseUrl, { instanceId: 'fault-suite', poolSize: 2 });
  try {
    const { token } = await createApiKey(
      b.keys,
      { name: 'fault suite operator', role: 'operator', dealers: [], permissions: ['location:read'], expiresAt: null, createdBy: 'cli' },
      Date.now(),
    );
    return token;
  } finally {
    await b.close();
  }
}

export interface ClusterMember {
  id: string;
  proc: IngestProcess;
  /** The cluster's operator key (PostgreSQL), not the data dir's. */
  api: string;
  auth: { authorization: string };
  mqttUrl: string;
  log: string;
  alive: boolean;
  /** Wall time of its kill -9. */
  killedAt?: number;
}

export interface ClusterRigOptions {
  name: string;
  natsUrls: string[];
  databaseUrl: string;
  influxUrl: string;
  influxDb: string;
  webhookUrl: string;
  partitions: number;
  env?: Record<string, string>;
}

/** The ingest instances of one case: started, killed and logged. */
export class ClusterRig {
  readonly dir: string;
  readonly members: ClusterMember[] = [];
  private readonly streams: WriteStream[] = [];
  token = '';
  private readonly pool: pg.Pool;

  constructor(readonly o: ClusterRigOptions) {
    this.dir = mkdtempSync(join(tmpdir(), `odopulse-${o.name}-`));
    this.pool = new pg.Pool({ connectionString: o.databaseUrl, max: 2 });
    this.pool.on('error', () => {});
  }

  async init(): Promise<this> {
    this.token = await createClusterOperatorKey(this.o.databaseUrl);
    return this;
  }

  env(id: string): Record<string, string> {
    return {
      INFLUX_URL: this.o.influxUrl,
      INFLUX_BUCKET: this.o.influxDb,
      ODOPULSE_NATS_URL: this.o.natsUrls.join(','),
      ODOPULSE_DATABASE_URL: this.o.databaseUrl,
      ODOPULSE_INSTANCE_ID: id,
      ODOPULSE_PARTITIONS: String(this.o.partitions),
      ODOPULSE_WORKERS: '1',
      ODOPULSE_WEBHOOK_URL: this.o.webhookUrl,
      ODOPULSE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      ODOPULSE_WEBHOOK_MAX_BACKOFF_MS: '2000',
      ODOPULSE_HTTP_RATE_LIMIT: '100000',
      ODOPULSE_LOG_LEVEL: 'info',
      ...this.o.env,
    };
  }

  /** Start instance `id` (its own free ports and temp data dir); resolves once its /healthz is ok. */
  async start(id: string): Promise<ClusterMember> {
    const log = join(this.dir, `${id}.log`);
    let proc: IngestProcess;
    try {
      proc = await startIngestProcess(this.env(id));
    } catch (err) {
      // the start-up's output is in the message
      const f = createWriteStream(log, { flags: 'a' });
      f.end(String((err as Error).message));
      throw err;
    }
    const f = createWriteStream(log, { flags: 'a' });
    this.streams.push(f);
    f.write(proc.output());
    proc.proc.stdout!.on('data', (d: Buffer) => f.write(d));
    proc.proc.stderr!.on('data', (d: Buffer) => f.write(d));
    const m: ClusterMember = {
      id,
      proc,
      api: proc.api,
      auth: { authorization: `Bearer ${this.token}` },
      mqttUrl: proc.mqttUrl,
      log,
      alive: true,
    };
    proc.proc.once('exit', () => (m.alive = false));
    this.members.push(m);
    this.members.sort((a, b) => a.id.localeCompare(b.id)); // started together, finished in any order
    return m;
  }

  member(id: string): ClusterMember {
    const m = this.members.find((x) => x.id === id);
    if (!m) throw new Error(`no instance ${id}`);
    return m;
  }

  live(): ClusterMember[] {
    return this.members.filter((m) => m.alive);
  }

  /** The MQTT URL for vehicles homed on instance `i`: its own while it runs, else the next live one's. */
  mqttUrlFor(i: number): string {
    for (let k = 0; k < this.members.length; k++) {
      const m = this.members[(i + k) % this.members.length];
      if (m.alive) return m.mqttUrl;
    }
    return this.members[i % this.members.length].mqttUrl;
  }

  async kill(id: string): Promise<void> {
    const m = this.member(id);
    m.killedAt = Date.now();
    await m.proc.stop('SIGKILL');
    m.alive = false;
  }

  /** The partition leases as the database holds them now; `live` = lease_until still ahead on its clock. */
  async partitions(): Promise<{ p: number; owner: string | null; epoch: number; live: boolean }[]> {
    const { rows } = await this.pool.query<{ p: number; owner: string | null; epoch: string; live: boolean | null }>(
      'SELECT p, owner, epoch, lease_until > now() AS live FROM cluster_partitions ORDER BY p',
    );
    return rows.map((r) => ({ p: r.p, owner: r.owner, epoch: Number(r.epoch), live: r.live === true }));
  }

  /** Partitions per owner among the live leases. */
  async owners(): Promise<Map<string, number[]>> {
    const out = new Map<string, number[]>();
    for (const r of await this.partitions()) if (r.owner && r.live) out.set(r.owner, [...(out.get(r.owner) ?? []), r.p]);
    return out;
  }

  /** Every vehicle's stored rule state (rule_states). */
  async ruleStates(): Promise<Map<string, VehicleRuleState>> {
    const { rows } = await this.pool.query<{ vin: string; state: string }>('SELECT vin, state FROM rule_states');
    return new Map(rows.map((r) => [r.vin, JSON.parse(r.state) as VehicleRuleState]));
  }

  /** The tail of each instance's log. */
  tails(chars = 4000): string {
    return this.members
      .map((m) => {
        let text = '';
        try {
          text = readFileSync(m.log, 'utf8');
        } catch {
          text = m.proc.output();
        }
        return `--- ${m.id} (${m.alive ? 'running' : 'exited'}) ${m.log}\n${text.slice(-chars)}`;
      })
      .join('\n');
  }

  /** Kill what still runs; the log dir is removed unless `keepLogs`. */
  async close(keepLogs: boolean): Promise<void> {
    for (const m of this.members) await m.proc.stop('SIGKILL');
    await Promise.all(this.streams.map((s) => new Promise((r) => s.end(r))));
    await this.pool.end().catch(() => {});
    for (const m of this.members) rmSync(m.proc.dataDir, { recursive: true, force: true });
    if (!keepLogs) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * For each VIN, the stream sequence of its last message in the telemetry stream (a last_by_subj
 * get on odopulse.telemetry.<partition>.<vin>); absent when it has none.
 */
export async function lastStreamSeqs(natsUrls: string[], vins: string[], partitions: number): Promise<Map<string, number>> {
  const nc = await connect({ servers: natsUrls, timeout: 5000 });
  try {
    const jsm = await jetstreamManager(nc);
    const out = new Map<string, number>();
    for (const vin of vins) {
      const m = await jsm.streams.getMessage(TELEMETRY_STREAM, {
        last_by_subj: `${SUBJECT_PREFIX}.${partitionOf(vin, partitions)}.${vin}`,
      });
      if (m) out.set(vin, m.seq);
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** One vehicle's batches in the telemetry stream, in stream order. */
export interface StreamBatch {
  streamSeq: number;
  seq: number;
}

/**
 * Every message of the telemetry stream, by VIN, in stream order (the order its partition's owner
 * applies them in), read with an ordered consumer from the first sequence to the last one there now.
 */
export async function streamOrder(natsUrls: string[], timeoutMs = 60_000): Promise<Map<string, StreamBatch[]>> {
  const nc = await connect({ servers: natsUrls, timeout: 5000 });
  const out = new Map<string, StreamBatch[]>();
  try {
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info(TELEMETRY_STREAM)).state.last_seq;
    if (last === 0) return out;
    const consumer = await jetstream(nc).consumers.get(TELEMETRY_STREAM, { filter_subjects: `${SUBJECT_PREFIX}.>` });
    const msgs = await consumer.consume({ max_messages: 1000 });
    const timer = setTimeout(() => void msgs.stop(), timeoutMs);
    try {
      for await (const m of msgs) {
        const vin = m.subject.split('.')[3] ?? '';
        const list = out.get(vin) ?? [];
        list.push({ streamSeq: m.seq, seq: Number(m.headers?.get('Odopulse-Seq')) });
        out.set(vin, list);
        if (m.seq >= last) break;
      }
    } finally {
      clearTimeout(timer);
      await msgs.close().catch(() => {});
    }
    return out;
  } finally {
    await nc.close();
  }
}

/**
 * Batches that came after a newer one of the same vehicle in the stream (a seq not seen before,
 * below the highest seen so far): the rules apply them as stale (latest only, no detector runs).
 */
export function lateBatches(order: Map<string, StreamBatch[]>): { vin: string; seq: number; streamSeq: number; after: StreamBatch }[] {
  const late: { vin: string; seq: number; streamSeq: number; after: StreamBatch }[] = [];
  for (const [vin, list] of order) {
    const seen = new Set<number>();
    let top: StreamBatch | undefined;
    for (const b of list) {
      if (!seen.has(b.seq) && top && b.seq < top.seq) late.push({ vin, seq: b.seq, streamSeq: b.streamSeq, after: top });
      seen.add(b.seq);
      if (!top || b.seq > top.seq) top = b;
    }
  }
  return late;
}

/** The telemetry stream's last sequence now (0 if unreachable): marks a fault's moment in the stream. */
export async function streamLastSeq(nats: NatsCluster): Promise<number> {
  const nc = await connect({ servers: nats.urls.filter((_, i) => nats.running(i)), timeout: 5000 });
  try {
    return (await (await jetstreamManager(nc)).streams.info(TELEMETRY_STREAM)).state.last_seq;
  } catch {
    return 0;
  } finally {
    await nc.close();
  }
}

/** Index (0-based) of the node that leads the telemetry stream's RAFT group, or undefined. */
export async function streamLeader(nats: NatsCluster): Promise<number | undefined> {
  const nc = await connect({ servers: nats.urls.filter((_, i) => nats.running(i)), timeout: 5000 });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(TELEMETRY_STREAM);
    const i = nats.nodes.findIndex((n) => n.name === info.cluster?.leader);
    return i >= 0 ? i : undefined;
  } catch {
    return undefined;
  } finally {
    await nc.close();
  }
}

/**
 * The batches found in InfluxDB, by `${vin}/${boot}/${seq}`, with their point count: a batch is
 * stored once when it has exactly SAMPLES_PER_BATCH points; more means a sample was written twice
 * under different tags (a write with the same series and time overwrites: InfluxDB's own dedup).
 */
export async function influxBatches(ledger: Ledger, influxUrl: string, db: string): Promise<Map<string, number>> {
  const step = ledger.sampleTs(0, 1, 0) - ledger.sampleTs(0, 0, 0);
  const perBoot = (ledger.sampleTs(1, 0, 0) - ledger.t0) / step;
  const res = await influxQuery(influxUrl, db, `SELECT "${VSS.soc}" FROM "telemetry" WHERE time >= ${ledger.t0}ms GROUP BY *`);
  const out = new Map<string, number>();
  for (const s of res.results?.[0]?.series ?? []) {
    const vin = s.tags?.vin ?? '';
    for (const [t] of s.values) {
      const slot = Math.floor((Number(t) - ledger.t0) / step);
      const boot = Math.floor(slot / perBoot);
      const k = `${vin}/${ledger.boots[boot] ?? `boot#${boot}`}/${slot % perBoot}`;
      out.set(k, (out.get(k) ?? 0) + 1);
    }
  }
  return out;
}

export interface StoredCheck {
  /** Acked batches with all their samples in InfluxDB (exactly once). */
  stored: number;
  /** Acked, not (fully) stored. */
  lost: string[];
  /** Batches with more points than samples. */
  duplicated: string[];
  /** Batches stored that no vehicle got a PUBACK for. */
  unexpected: string[];
}

export function checkStored(ledger: Ledger, found: Map<string, number>): StoredCheck {
  const lost: string[] = [];
  let stored = 0;
  for (const k of ledger.acked) {
    if ((found.get(k) ?? 0) >= SAMPLES_PER_BATCH) stored++;
    else lost.push(k);
  }
  const duplicated = [...found].filter(([, n]) => n > SAMPLES_PER_BATCH).map(([k, n]) => `${k} ×${n}/${SAMPLES_PER_BATCH}`);
  const unexpected = [...found.keys()].filter((k) => !ledger.acked.has(k));
  return { stored, lost: lost.sort(), duplicated: duplicated.sort(), unexpected: unexpected.sort() };
}

/** The newest seq each vehicle got a PUBACK for (boot 0), from the ledger's keys. */
export function newestAcked(ledger: Ledger): Map<string, number> {
  const out = new Map<string, number>();
  for (const k of ledger.acked) {
    const [vin, , seq] = k.split('/');
    out.set(vin, Math.max(out.get(vin) ?? 0, Number(seq)));
  }
  return out;
}
