// Cluster mode's partition leases (ingest/cluster/leases.ts) against a real PostgreSQL: the schema,
// the assignment and ownership, hand-over on stop and on join. Crashes, PostgreSQL down, fencing and
// failing callbacks: partition-leases-faults.test.ts. The invariants watched throughout every case
// (one consumer at a time, no partition owned twice, epochs increasing): test/support/leases.ts.
import { describe, expect, it } from 'vitest';
import { ensureLeaseSchema, PartitionCountError } from '../../ingest/cluster/lease-schema.js';
import { assignPartitions, PartitionLeases } from '../../ingest/cluster/leases.js';
import { leaseClusters, NO_EXPIRY, FAST, P } from '../support/leases.js';
import { postgresUnavailable } from '../support/postgres.js';

const unavailable = postgresUnavailable();

describe.skipIf(unavailable)('partition leases on PostgreSQL', () => {
  const { cluster, done } = leaseClusters();

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
});
