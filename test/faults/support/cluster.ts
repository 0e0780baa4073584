// The cluster-mode fault case's rig (test/faults/cluster.test.ts): a 3-node NATS JetStream cluster,
// a database on a shared PostgreSQL server, a database on the shared influxd, one webhook receiver
// for every instance, and ingest processes in cluster mode (ODOPULSE_NATS_URL + ODOPULSE_DATABASE_URL,
// their own instance id, ports and data dir), each one's output written to a log file under the
// rig's temp dir (the tails are printed when a case fails). Read-backs straight from the shared
// state: the partition leases (cluster_partitions) and the rule states (rule_states); those from
// the telemetry stream are in cluster-stream.ts, the checks in cluster-checks.ts.
import { createWriteStream, mkdtempSync, readFileSync, rmSync, type WriteStream } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createApiKey } from '../../../ingest/auth/keys.js';
import type { CloudEvent } from '../../../ingest/outbound/cloudevents.js';
import { verifySignature } from '../../../ingest/outbound/webhook.js';
import { openPostgresBackend } from '../../../ingest/store/index.js';
import type { VehicleRuleState } from '../../../rules/types.js';
import { startIngestProcess, type IngestProcess } from '../../support/ingest.js';
import { freePort } from '../../support/ports.js';

export const WEBHOOK_SECRET = 'fault-suite-cluster-webhook-secret';

/** The lifecycle system every instance posts to: verifies each signature, answers 204, keeps when it answered each webhook-id. */
export class WebhookReceiver {
  private server: http.Server | undefined;
  /** When each 2xx answer to a webhook-id was given. */
  private readonly acceptedAt = new Map<string, number[]>();
  /**
   * An instance killed at this time: an event it had sent (answered 2xx) but not yet marked
   * delivered is sent again by a survivor once its claim runs out (the outbox claim TTL, 60 s):
   * at least once, the same id (docs/contract.md#signature: receivers de-duplicate on it).
   */
  private killedAt: number | undefined;
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
        this.acceptedAt.set(id, [...(this.acceptedAt.get(id) ?? []), Date.now()]);
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

  /** An instance was killed now (see killedAt). */
  instanceKilled(at = Date.now()): void {
    this.killedAt = at;
  }

  /** Ids answered 2xx more than once, but for those a dead instance's claim explains (takenOver). */
  duplicates(): string[] {
    return [...this.acceptedAt].filter(([id, at]) => at.length > 1 && !this.isTakeOver(id)).map(([id, at]) => `${id} ×${at.length}`);
  }

  /** Ids answered twice because a killed instance sent them just before its kill and a survivor took its claim over. */
  takenOver(): string[] {
    return [...this.acceptedAt.keys()].filter((id) => this.isTakeOver(id));
  }

  /** Answered exactly twice: first before the kill, again at least 55 s later (the 60 s claim, less the time its send took). */
  private isTakeOver(id: string): boolean {
    const at = this.acceptedAt.get(id) ?? [];
    return this.killedAt !== undefined && at.length === 2 && at[0] <= this.killedAt && at[1] - at[0] >= 55_000;
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
