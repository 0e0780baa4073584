// Cluster mode's partition leases (ingest/cluster/leases.ts) against a real PostgreSQL: several
// PartitionLeases instances in this process, each with its own pool, on one database per case.
//
// Watched throughout every case (Cluster below), and asserted at its end:
//  - one consumer at a time: a partition's consuming interval at an instance runs from its
//    onAcquired call to the end of its onReleased (which takes a while here, like a consumer
//    finishing its step); no onAcquired may come while another instance's interval is open;
//  - every 20 ms, a snapshot of all instances' owned() maps (taken in one synchronous turn): no
//    partition in two of them;
//  - per partition, the epochs handed to onAcquired strictly increase.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureLeaseSchema, PartitionCountError } from '../../ingest/cluster/lease-schema.js';
import {
  assignPartitions,
  fencePartitions,
  LeaseLostError,
  PartitionLeases,
  type PartitionLeasesOptions,
  type ReleaseReason,
  type ResumePositions,
} from '../../ingest/cluster/leases.js';
import { postgresUnavailable, startPostgres, type PostgresHandle } from '../support/postgres.js';
import { waitFor } from '../support/wait.js';

const P = 64;
/** Short leases: crash and self-fencing cases. */
const FAST = { leaseMs: 1500, renewMs: 300 };
/** A lease far longer than any wait here: a hand-over that completes cannot have waited for an expiry. */
const NO_EXPIRY = { leaseMs: 120_000, renewMs: 300 };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Node {
  id: string;
  pool: pg.Pool;
  leases: PartitionLeases;
  /** Positions handed to the latest onAcquired of each partition. */
  from: Map<number, ResumePositions>;
  released: Array<{ p: number; reason: ReleaseReason }>;
  warnings: string[];
  stopped: boolean;
}

class Cluster {
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

const unavailable = postgresUnavailable();

describe.skipIf(unavailable)('partition leases on PostgreSQL', () => {
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

  it('the schema is created once by instances starting together; another partition count is refused', async () => {
    const c = await cluster();
    await Promise.all(Array.from({ length: 4 }, () => ensureLeaseSchema(c.admin, P)));
    expect(await c.rows()).toHaveLength(P);
    await ensureLeaseSchema(c.admin, P); // again: nothing changes
    expect((await c.rows()).map((r) => r.p)).toEqual(Array.from({ length: P }, (_, p) => p));
    await expect(ensureLeaseSchema(c.admin, 32)).rejects.toBeInstanceOf(PartitionCountError);
    await expect(ensureLeaseSchema(c.admin, 128)).rejects.toBeInstanceOf(PartitionCountError);
    const wrong = new PartitionLeases({
      pool: c.admin,
      instanceId: 'x',
      partitions: 32,
      onAcquired: async () => {},
      onReleased: async () => {},
      log: { warn: () => {}, error: () => {} },
    });
    await expect(wrong.start()).rejects.toBeInstanceOf(PartitionCountError);
    await done(c);
  });

  it('three instances: every partition owned by exactly one, balanced, as PostgreSQL records it', async () => {
    const c = await cluster();
    await Promise.all(['a', 'b', 'c'].map((id) => c.add(id, FAST)));
    await c.settled(['a', 'b', 'c']);
    const sizes = ['a', 'b', 'c'].map((id) => c.node(id).leases.owned().size).sort();
    expect(sizes).toEqual([21, 21, 22]);
    for (const r of await c.rows()) {
      expect(r.owner).not.toBeNull();
      expect(c.node(r.owner!).leases.owned().get(r.p)).toBe(r.epoch);
      expect(r.leased).toBe(true);
    }
    const members = await c.admin.query<{ instance_id: string }>('SELECT instance_id FROM cluster_members ORDER BY 1');
    expect(members.rows.map((m) => m.instance_id)).toEqual(['a', 'b', 'c']);
    expect(c.node('a').leases.members()).toEqual(['a', 'b', 'c']);
    await done(c);
  });

  it('an instance that stops hands its partitions over at once, not by expiry; the last one leaves them all free', async () => {
    const c = await cluster();
    for (const id of ['a', 'b', 'c']) await c.add(id, NO_EXPIRY);
    await c.settled(['a', 'b', 'c']);
    const before = new Map((await c.rows()).map((r) => [r.p, r.epoch]));
    const leaving = [...c.node('c').leases.owned().keys()];

    await c.stop('c');
    expect(c.node('c').leases.owned().size).toBe(0);
    expect(c.node('c').released.map((r) => r.reason)).toEqual(leaving.map(() => 'stopping'));
    const members = await c.admin.query('SELECT 1 FROM cluster_members WHERE instance_id = $1', ['c']);
    expect(members.rowCount).toBe(0);
    // a lease of 120 s: settling within 30 s means hand-overs, not expiries
    await c.settled(['a', 'b']);
    for (const r of await c.rows()) if (leaving.includes(r.p)) expect(r.epoch).toBeGreaterThan(before.get(r.p)!);

    await c.stop('a');
    await c.stop('b');
    for (const r of await c.rows()) {
      expect(r.owner).toBeNull();
      expect(r.leased).toBe(false);
    }
    expect((await c.admin.query('SELECT 1 FROM cluster_members')).rowCount).toBe(0);
    for (const id of ['a', 'b', 'c']) expect(c.node(id).warnings).toEqual([]);
    await done(c);
  });

  it('a joining instance gets its share; the others hand theirs over first, one consumer at a time', async ({ annotate }) => {
    const c = await cluster();
    await c.add('a', NO_EXPIRY);
    await c.add('b', NO_EXPIRY);
    await c.settled(['a', 'b']);
    const epochs = new Map((await c.rows()).map((r) => [r.p, r.epoch]));
    await c.add('c', NO_EXPIRY);
    await c.settled(['a', 'b', 'c']);
    const after = await c.rows();
    const moved = after.filter((r) => r.epoch !== epochs.get(r.p));
    // what moved is what the assignment moves (the joiner's share and a few more), nothing else
    const was = assignPartitions(['a', 'b'], P);
    const now = assignPartitions(['a', 'b', 'c'], P);
    expect(moved.map((r) => r.p).sort((x, y) => x - y)).toEqual(now.flatMap((o, p) => (o !== was[p] ? [p] : [])));
    expect(after.filter((r) => r.owner === 'c')).toHaveLength(c.node('c').leases.owned().size);
    for (const r of c.node('a').released.concat(c.node('b').released)) expect(r.reason).toBe('rebalance');
    await annotate(`${moved.length} of ${P} partitions moved; the joiner's share: ${c.node('c').leases.owned().size}`);
    await done(c);
  });

  it('an instance cut off from PostgreSQL, as a crash leaves it, stops consuming on its own before the others take over', async ({
    annotate,
  }) => {
    const c = await cluster();
    for (const id of ['a', 'b', 'c']) await c.add(id, FAST);
    await c.settled(['a', 'b', 'c']);
    const lost = new Map(c.node('c').leases.owned());
    const t0 = performance.now();
    await c.cutOff('c');
    await waitFor(() => c.node('c').leases.owned().size === 0, { timeoutMs: 20_000, what: 'the cut-off instance to stop consuming' });
    const selfFencedAfter = performance.now() - t0;
    await c.settled(['a', 'b']);
    const takenOverAfter = performance.now() - t0;
    const s = c.node('c').leases.stats();
    expect(s.selfFenced).toBe(lost.size);
    expect(c.node('c').released.map((r) => r.reason)).toEqual([...lost.keys()].map(() => 'self-fenced'));
    for (const r of await c.rows()) if (lost.has(r.p)) expect(r.epoch).toBeGreaterThan(lost.get(r.p)!);
    await annotate(
      `self-fenced after ${Math.round(selfFencedAfter)} ms, taken over after ${Math.round(takenOverAfter)} ms (leaseMs ${FAST.leaseMs}, renewMs ${FAST.renewMs})`,
    );
    await done(c);
  });

  it('an onAcquired that fails hands the partition back, to be claimed again; an onReleased that hangs is given up on after its time', async () => {
    const c = await cluster();
    let failures = 0;
    const a = await c.add('a', FAST, {
      callbackTimeoutMs: 500,
      onAcquired: async (p) => {
        if (p === 3 && failures++ === 0) throw new Error('consumer could not start');
      },
      onReleased: async (p) => {
        if (p === 9) await new Promise(() => {}); // never settles
      },
    });
    await waitFor(() => a.leases.owned().size === P, { what: 'every partition, 3 on the second try' });
    expect(failures).toBe(2);
    expect(a.leases.owned().get(3)).toBe(2); // the first claim's epoch was 1
    expect(a.warnings).toEqual(['partition leases: onAcquired failed']);
    const stopped = a.leases.stop().then(() => 'stopped');
    a.stopped = true;
    expect(await stopped).toBe('stopped'); // after callbackTimeoutMs for partition 9
    expect(a.warnings).toContain('partition leases: onReleased failed');
    expect((await c.rows()).filter((r) => r.owner !== null)).toEqual([]);
    expect(a.leases.stats().callbackErrors).toBe(2);
    await done(c);
  });

  it('a lease taken behind its back is found by the next fence: LeaseLostError, and the partition released at once', async () => {
    const c = await cluster();
    const a = await c.add('a', { leaseMs: 120_000, renewMs: 60_000 }); // no tick during the case: only the fence can find out
    await c.settled(['a']);
    const p = 11;
    const epoch = a.leases.owned().get(p)!;
    await c.admin.query(
      "UPDATE cluster_partitions SET owner = 'intruder', epoch = epoch + 1, lease_until = now() + interval '1 hour' WHERE p = $1",
      [p],
    );
    await expect(a.leases.fence(c.admin, p, epoch, { rulesSeq: 5 })).rejects.toBeInstanceOf(LeaseLostError);
    expect(a.leases.owned().has(p)).toBe(false);
    expect(a.leases.owned().size).toBe(P - 1);
    await waitFor(() => a.released.some((r) => r.p === p && r.reason === 'lost'), { what: 'onReleased(p, lost)' });
    expect(a.warnings).toEqual(['partition leases: lease lost (found by a commit)']);
    expect((await c.rows())[p]).toMatchObject({ owner: 'intruder', rules: 0 });
    await done(c);
  });

  it('sessions terminated under a running instance: it reconnects and keeps its partitions at the same epochs', async () => {
    const c = await cluster();
    await c.add('a', FAST);
    await c.add('b', FAST);
    await c.settled(['a', 'b']);
    const before = await c.rows();
    const releasedBefore = ['a', 'b'].map((id) => c.node(id).released.length);
    for (let i = 0; i < 3; i++) {
      const ticks = c.node('a').leases.stats().ticks;
      expect(await c.terminate('a')).toBeGreaterThan(0);
      await waitFor(() => c.node('a').leases.stats().ticks >= ticks + 3, { what: 'three more ticks' });
    }
    await waitFor(() => c.node('a').leases.stats().consecutiveFailures === 0, { what: 'a tick that got through' });
    expect(await c.rows()).toEqual(before.map((r) => ({ ...r })));
    ['a', 'b'].forEach((id, i) => {
      const s = c.node(id).leases.stats();
      expect(s.lost + s.selfFenced).toBe(0);
      expect(c.node(id).released).toHaveLength(releasedBefore[i]);
    });
    await done(c);
  });

  it("fencing: an open fenced commit holds the takeover back and the next owner resumes from it; a stale owner's commit rolls back", async () => {
    const c = await cluster();
    const a = await c.add('a', FAST);
    await c.settled(['a']);
    await c.admin.query('CREATE TABLE results (p int, v text)');
    const committer = new pg.Client({ connectionString: c.url, application_name: 'committer' });
    committer.on('error', () => {});
    await committer.connect();
    try {
      const p = 5;
      const epochA = a.leases.owned().get(p)!;
      expect(a.from.get(p)).toEqual({ rules: 0, influx: 0 });

      // a's step on p: fence first, then its writes; the transaction stays open across the takeover
      await committer.query('BEGIN');
      await a.leases.fence(committer, p, epochA, { rulesSeq: 42 });
      await committer.query("INSERT INTO results VALUES ($1, 'kept')", [p]);

      await c.cutOff('a');
      const b = await c.add('b', FAST);
      await waitFor(() => a.leases.owned().size === 0 && b.leases.owned().size === P - 1, {
        timeoutMs: 20_000,
        what: 'b to own every partition but the one whose commit is open',
      });
      const ticks = b.leases.stats().ticks;
      await waitFor(() => b.leases.stats().ticks >= ticks + 3, { what: 'three more ticks of b' });
      expect(b.leases.owned().has(p)).toBe(false);
      expect((await c.rows())[p]).toMatchObject({ owner: 'a', epoch: epochA, rules: 0 });

      await committer.query('COMMIT'); // the epoch was still current: it goes through
      await waitFor(() => b.leases.owned().has(p), { timeoutMs: 20_000, what: 'b to take the partition once the commit is done' });
      expect(b.from.get(p)).toEqual({ rules: 42, influx: 0 });
      const epochB = b.leases.owned().get(p)!;
      expect(epochB).toBeGreaterThan(epochA);

      // a, still believing in its old epoch, tries another step: the fence refuses, its writes roll back
      await committer.query('BEGIN');
      await expect(fencePartitions(committer, 'a', [{ partition: p, epoch: epochA, rulesSeq: 99 }])).rejects.toBeInstanceOf(LeaseLostError);
      await committer.query("INSERT INTO results VALUES ($1, 'stale')", [p]).catch(() => undefined);
      await committer.query('ROLLBACK');
      // the instance itself knows it self-fenced: refused without a query
      await expect(a.leases.fence(committer, p, epochA, { rulesSeq: 99 })).rejects.toBeInstanceOf(LeaseLostError);
      const results = await c.admin.query<{ v: string }>('SELECT v FROM results');
      expect(results.rows.map((r) => r.v)).toEqual(['kept']);
      expect((await c.rows())[p]).toMatchObject({ owner: 'b', epoch: epochB, rules: 42 });

      // the current owner's positions only go forward; several partitions in one fence
      const q = 6;
      const epochQ = b.leases.owned().get(q)!;
      await committer.query('BEGIN');
      await b.leases.fenceMany(committer, [
        { partition: q, epoch: epochQ, rulesSeq: 10 },
        { partition: p, epoch: epochB, rulesSeq: 50, influxSeq: 7 },
      ]);
      await committer.query('COMMIT');
      await b.leases.fence(c.admin, p, epochB, { rulesSeq: 45 });
      await b.leases.fence(c.admin, p, epochB, { influxSeq: 9 });
      const rows = await c.rows();
      expect(rows[p]).toMatchObject({ rules: 50, influx: 9 });
      expect(rows[q]).toMatchObject({ rules: 10, influx: 0 });
      // one partition of the batch lost: nothing of it is written
      await committer.query('BEGIN');
      const err = await b.leases
        .fenceMany(committer, [
          { partition: q, epoch: epochQ, rulesSeq: 11 },
          { partition: p, epoch: epochA, rulesSeq: 60 },
        ])
        .catch((e: unknown) => e);
      await committer.query('ROLLBACK');
      expect(err).toBeInstanceOf(LeaseLostError);
      expect((err as LeaseLostError).partitions).toEqual([p]);
      const err2 = await fencePartitions(committer, 'b', [
        { partition: q, epoch: epochQ, rulesSeq: 11 },
        { partition: p, epoch: epochA, rulesSeq: 60 },
      ]).catch((e: unknown) => e);
      expect((err2 as LeaseLostError).partitions).toEqual([p]);
      expect((await c.rows())[q]).toMatchObject({ rules: 10 });
    } finally {
      await committer.end();
    }
    await done(c);
  });

  it("under REPEATABLE READ (the store's transactions): renewals neither wait for a fenced commit nor fail it; a takeover after the snapshot fails the fence as a serialisation failure, and run again it answers LeaseLostError", async () => {
    const c = await cluster();
    const a = await c.add('a', FAST);
    await c.settled(['a']);
    const p = 7;
    const epoch = a.leases.owned().get(p)!;
    const leaseUntil = async () =>
      (await c.admin.query<{ t: Date }>('SELECT lease_until AS t FROM cluster_partitions WHERE p = $1', [p])).rows[0].t.getTime();
    const tx = new pg.Client({ connectionString: c.url, application_name: 'committer' });
    tx.on('error', () => {});
    await tx.connect();
    try {
      await tx.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await tx.query('SELECT 1 FROM cluster_members LIMIT 1'); // the snapshot
      const ticks = a.leases.stats().ticks;
      await waitFor(() => a.leases.stats().ticks >= ticks + 2, { what: 'renewals after the snapshot' });
      await a.leases.fence(tx, p, epoch, { rulesSeq: 3 });
      // the commit is open, its lease row share-locked: the renewals go on
      const until = await leaseUntil();
      const ticks2 = a.leases.stats().ticks;
      await waitFor(() => a.leases.stats().ticks >= ticks2 + 2, { what: 'renewals while the commit is open' });
      expect(await leaseUntil()).toBeGreaterThan(until);
      expect(a.leases.stats().consecutiveFailures).toBe(0);
      await tx.query('COMMIT');
      expect((await c.rows())[p]).toMatchObject({ owner: 'a', epoch, rules: 3 });

      await tx.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await tx.query('SELECT 1 FROM cluster_members LIMIT 1');
      await c.cutOff('a');
      const b = await c.add('b', FAST);
      await waitFor(() => b.leases.owned().has(p), { timeoutMs: 20_000, what: 'b to take the partition over' });
      expect(b.from.get(p)).toEqual({ rules: 3, influx: 0 });
      const err = await fencePartitions(tx, 'a', [{ partition: p, epoch, rulesSeq: 4 }]).catch((e: unknown) => e);
      expect((err as { code?: string }).code).toBe('40001');
      await tx.query('ROLLBACK');
      await tx.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await expect(fencePartitions(tx, 'a', [{ partition: p, epoch, rulesSeq: 4 }])).rejects.toBeInstanceOf(LeaseLostError);
      await tx.query('ROLLBACK');
      expect((await c.rows())[p]).toMatchObject({ owner: 'b', rules: 3 });
    } finally {
      await tx.end();
    }
    await done(c);
  });

  // last: it restarts the file's server
  it('PostgreSQL down for longer than a lease: every instance stops consuming on its own, and the cluster recovers once it is back', async () => {
    const c = await cluster();
    await c.add('a', FAST);
    await c.add('b', FAST);
    await c.settled(['a', 'b']);
    const before = new Map((await c.rows()).map((r) => [r.p, r.epoch]));
    server.kill();
    await waitFor(() => c.node('a').leases.owned().size + c.node('b').leases.owned().size === 0, {
      timeoutMs: 20_000,
      what: 'both instances to stop consuming',
    });
    await server.restart();
    await c.settled(['a', 'b'], 60_000);
    for (const r of await c.rows()) expect(r.epoch).toBeGreaterThan(before.get(r.p)!);
    const [sa, sb] = [c.node('a').leases.stats(), c.node('b').leases.stats()];
    expect(sa.selfFenced + sb.selfFenced).toBe(P);
    expect(sa.tickFailures).toBeGreaterThan(0);
    await waitFor(() => c.node('a').leases.stats().consecutiveFailures === 0, { what: 'a tick of a that got through' });
    await done(c);
  });
});
