// Cluster mode's partition leases (ingest/cluster/leases.ts) against a real PostgreSQL, under
// faults: an instance cut off as a crash leaves it, failing and hanging callbacks, a lease taken
// behind an instance's back, terminated sessions, fencing (also under REPEATABLE READ), and
// PostgreSQL down. The invariants watched throughout every case (one consumer at a time, no
// partition owned twice, epochs increasing): test/support/leases.ts.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { fencePartitions, LeaseLostError } from '../../ingest/cluster/leases.js';
import { FAST, leaseClusters, P } from '../support/leases.js';
import { postgresUnavailable } from '../support/postgres.js';
import { waitFor } from '../support/wait.js';

const unavailable = postgresUnavailable();

describe.skipIf(unavailable)('partition leases on PostgreSQL, under faults', () => {
  const lc = leaseClusters();
  const { cluster, done } = lc;

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
    // owned() includes partitions still being acquired: partition 3 is in it again (epoch 2) before
    // its second onAcquired ran, so wait for that call too
    await waitFor(() => failures === 2 && a.leases.owned().size === P, { what: 'every partition, 3 on the second try' });
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
      await waitFor(() => b.leases.owned().has(p) && b.from.has(p), {
        timeoutMs: 20_000,
        what: 'b to take the partition once the commit is done',
      });
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
      await waitFor(() => b.leases.owned().has(p) && b.from.has(p), { timeoutMs: 20_000, what: 'b to take the partition over' });
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
    lc.server.kill();
    await waitFor(() => c.node('a').leases.owned().size + c.node('b').leases.owned().size === 0, {
      timeoutMs: 20_000,
      what: 'both instances to stop consuming',
    });
    await lc.server.restart();
    await c.settled(['a', 'b'], 60_000);
    for (const r of await c.rows()) expect(r.epoch).toBeGreaterThan(before.get(r.p)!);
    const [sa, sb] = [c.node('a').leases.stats(), c.node('b').leases.stats()];
    expect(sa.selfFenced + sb.selfFenced).toBe(P);
    expect(sa.tickFailures).toBeGreaterThan(0);
    await waitFor(() => c.node('a').leases.stats().consecutiveFailures === 0, { what: 'a tick of a that got through' });
    await done(c);
  });
});
