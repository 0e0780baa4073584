// Shared by the partition lease tests (test/integration/partition-leases*.test.ts): several
// PartitionLeases instances in this process, each with its own pool, on one database per case.
//
// Watched throughout every case (Cluster below), and asserted at its end (done):
//  - one consumer at a time: a partition's consuming interval at an instance runs from its
//    onAcquired call to the end of its onReleased (which takes a while here, like a consumer
//    finishing its step); no onAcquired may come while another instance's interval is open;
//  - every 20 ms, a snapshot of all instances' owned() maps (taken in one synchronous turn): no
//    partition in two of them;
//  - per partition, the epochs handed to onAcquired strictly increase.
import pg from 'pg';
import { afterAll, beforeAll, expect } from 'vitest';
import {
  assignPartitions,
  PartitionLeases,
  type PartitionLeasesOptions,
  type ReleaseReason,
  type ResumePositions,
} from '../../ingest/cluster/leases.js';
import { startPostgres, type PostgresHandle } from './postgres.js';
import { waitFor } from './wait.js';

export const P = 64;
/** Short leases: crash and self-fencing cases. */
export const FAST = { leaseMs: 1500, renewMs: 300 };
/** A lease far longer than any wait here: a hand-over that completes cannot have waited for an expiry. */
export const NO_EXPIRY = { leaseMs: 120_000, renewMs: 300 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Node {
  id: string;
  pool: pg.Pool;
  leases: PartitionLeases;
  /** Positions handed to the latest onAcquired of each partition. */
  from: Map<number, ResumePositions>;
  released: Array<{ p: number; reason: ReleaseReason }>;
  warnings: string[];
  stopped: boolean;
}

export class Cluster {
  readonly nodes = new Map<string, Node>();
  readonly violations: string[] = [];
  /** partition -> the instance consuming it (from onAcquired to the end of onReleased) */
  private readonly consuming = new Map<number, string>();
  private readonly lastEpoch = new Map<number, number>();
  private readonly poller: NodeJS.Timeout;
  readonly admin: pg.Pool;

  constructor(readonly url: string) {
    this.admin = new pg.Pool({ connectionString: url, max: 2, application_name: 'test-admin' });
    this.admin.on('error', () => {});
    this.poller = setInterval(() => this.sample(), 20);
  }

  private sample(): void {
    const seen = new Map<number, string>();
    for (const n of this.nodes.values()) {
      for (const p of n.leases.owned().keys()) {
        const other = seen.get(p);
        if (other !== undefined) this.violations.push(`partition ${p} in the owned() of both ${other} and ${n.id}`);
        seen.set(p, n.id);
      }
    }
  }

  async add(id: string, timing: { leaseMs: number; renewMs: number }, extra: Partial<PartitionLeasesOptions> = {}): Promise<Node> {
    const pool = new pg.Pool({ connectionString: this.url, max: 3, application_name: id });
    pool.on('error', () => {}); // idle connections terminated by the cases
    const node: Node = {
      id,
      pool,
      leases: undefined as unknown as PartitionLeases,
      from: new Map(),
      released: [],
      warnings: [],
      stopped: false,
    };
    node.leases = new PartitionLeases({
      pool,
      instanceId: id,
      partitions: P,
      ...timing,
      onAcquired: async (p, epoch, from) => {
        const other = this.consuming.get(p);
        if (other !== undefined && other !== id) this.violations.push(`${id} acquired partition ${p} while ${other} still consumed it`);
        const last = this.lastEpoch.get(p) ?? 0;
        if (epoch <= last) this.violations.push(`partition ${p}: epoch ${epoch} after ${last}`);
        this.lastEpoch.set(p, epoch);
        this.consuming.set(p, id);
        node.from.set(p, from);
      },
      onReleased: async (p, reason) => {
        node.released.push({ p, reason });
        await sleep(30); // the consumer finishing its in-flight step
        if (this.consuming.get(p) === id) this.consuming.delete(p);
      },
      log: {
        info: () => {},
        warn: (_o, m) => node.warnings.push(m),
        error: (_o, m) => node.warnings.push(m),
      },
      ...extra,
    });
    this.nodes.set(id, node);
    await node.leases.start();
    return node;
  }

  node(id: string): Node {
    const n = this.nodes.get(id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  }

  async stop(id: string): Promise<void> {
    const n = this.node(id);
    n.stopped = true;
    await n.leases.stop();
  }

  /** Cut an instance off from PostgreSQL as a crash would: its statements never answer, its sessions are terminated. */
  async cutOff(id: string): Promise<void> {
    const n = this.node(id);
    n.pool.query = (() => new Promise(() => {})) as unknown as pg.Pool['query'];
    await this.terminate(id);
  }

  /** pg_terminate_backend on every session of an instance's pool; how many there were. */
  async terminate(id: string): Promise<number> {
    const r = await this.admin.query<{ n: number }>(
      'SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1',
      [id],
    );
    return r.rows[0].n;
  }

  /** Wait until every partition is owned by exactly one instance: its preferred one among `ids`. */
  async settled(ids: string[], timeoutMs = 30_000): Promise<void> {
    const expected = assignPartitions(ids, P);
    await waitFor(
      () => {
        const wrong: string[] = [];
        for (let p = 0; p < P; p++) {
          const holders = [...this.nodes.values()].filter((n) => n.leases.owned().has(p)).map((n) => n.id);
          if (holders.length !== 1 || holders[0] !== expected[p]) wrong.push(`${p}: [${holders}] not ${expected[p]}`);
        }
        if (wrong.length) throw new Error(`${wrong.length} partitions not settled, e.g. ${wrong.slice(0, 4).join('; ')}`);
        return true;
      },
      { timeoutMs, what: `every partition owned by its preferred member among ${ids.join(', ')}` },
    );
  }

  /** The database's view of every partition: its lease and its positions. */
  async rows(): Promise<Array<{ p: number; owner: string | null; epoch: number; rules: number; influx: number; leased: boolean }>> {
    const r = await this.admin.query<{
      p: number;
      owner: string | null;
      epoch: string;
      rules_seq: string;
      influx_seq: string;
      leased: boolean;
    }>(
      `SELECT t.p, t.owner, t.epoch, r.seq AS rules_seq, i.seq AS influx_seq, t.lease_until IS NOT NULL AS leased
         FROM cluster_partitions t
         JOIN cluster_positions r ON r.p = t.p AND r.loop = 'rules'
         JOIN cluster_positions i ON i.p = t.p AND i.loop = 'influx'
        ORDER BY t.p`,
    );
    return r.rows.map((x) => ({
      p: x.p,
      owner: x.owner,
      epoch: Number(x.epoch),
      rules: Number(x.rules_seq),
      influx: Number(x.influx_seq),
      leased: x.leased,
    }));
  }

  async close(): Promise<void> {
    clearInterval(this.poller);
    await Promise.all([...this.nodes.values()].filter((n) => !n.stopped).map((n) => n.leases.stop()));
    await Promise.all([...this.nodes.values()].map((n) => n.pool.end().catch(() => undefined)));
    await this.admin.end();
  }
}

/**
 * Inside a describe: the file's PostgreSQL server (started before its cases, stopped after), a
 * fresh Cluster on a database of its own per case, and done(c) to close one and assert that
 * nothing was violated.
 */
export function leaseClusters() {
  let server: PostgresHandle;
  let dbSeq = 0;
  const clusters: Cluster[] = [];

  beforeAll(async () => {
    server = await startPostgres();
  }, 120_000);
  afterAll(async () => {
    await Promise.all(clusters.map((c) => c.close().catch(() => undefined)));
    await server?.stop();
  });

  async function cluster(): Promise<Cluster> {
    const c = new Cluster(await server.createDatabase(`leases_${process.pid}_${++dbSeq}`));
    clusters.push(c);
    return c;
  }

  async function done(c: Cluster): Promise<void> {
    clusters.splice(clusters.indexOf(c), 1);
    await c.close();
    expect(c.violations).toEqual([]);
  }

  return {
    cluster,
    done,
    get server(): PostgresHandle {
      return server;
    },
  };
}
