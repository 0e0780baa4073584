// The two tables of cluster mode's partition leases (ingest/cluster/leases.ts), created by the
// instances themselves, idempotently, under a transaction-level advisory lock so that instances
// starting at the same moment neither race on CREATE TABLE nor insert the partition rows twice.
//
// cluster_members: one row per instance (ODOPULSE_INSTANCE_ID), its heartbeat in PostgreSQL's time.
//   `incarnation` is random per process start: a second live process under the same id shows up as
//   another incarnation overwriting the row (logged as an error by the leases).
// cluster_partitions: one row per partition 0..P-1, created with the cluster and never deleted:
//   the current lease (owner and lease_until both null when free); epoch grows by one at every
//   claim and is the fencing token. The unique index on (p, epoch, owner) is not there for
//   uniqueness (p alone is the key) but for the row locks: it makes owner and epoch key columns,
//   so a claim or a release (which change them) is a key update, which conflicts with the FOR KEY
//   SHARE lock a fenced commit holds on the row, while a renewal (lease_until only) is not and
//   does not: renewals never wait for commits, and, under REPEATABLE READ, a renewal after a
//   commit's snapshot does not fail that commit's fence (a takeover does: serialisation failure).
// cluster_positions: per partition and loop ('rules', 'influx'), the last stream sequence applied,
//   raised by the fenced commits (fencePartitions), read by the next owner after its claim. One row
//   per loop, so the two loops' commits never touch the same row.
import type { Pool } from 'pg';

export const MEMBERS_TABLE = 'cluster_members';
export const PARTITIONS_TABLE = 'cluster_partitions';
export const POSITIONS_TABLE = 'cluster_positions';
/** The loops whose positions are kept (cluster_positions.loop). */
export const LOOPS = ['rules', 'influx'] as const;

/** pg_advisory_xact_lock(LOCK_CLASS, LOCK_LEASE_SCHEMA): 'odop' and a number per purpose. */
export const LOCK_CLASS = 0x6f646f70;
export const LOCK_LEASE_SCHEMA = 1;

export const LEASE_SCHEMA_SQL: readonly string[] = [
  `CREATE TABLE IF NOT EXISTS ${MEMBERS_TABLE} (
    instance_id text PRIMARY KEY,
    incarnation text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
  )`,
  `CREATE TABLE IF NOT EXISTS ${PARTITIONS_TABLE} (
    p integer PRIMARY KEY CHECK (p >= 0),
    owner text NULL,
    epoch bigint NOT NULL DEFAULT 0,
    lease_until timestamptz NULL,
    acquired_at timestamptz NULL,
    CHECK ((owner IS NULL) = (lease_until IS NULL))
  )`,
  `CREATE UNIQUE INDEX IF NOT EXISTS ${PARTITIONS_TABLE}_lock_key ON ${PARTITIONS_TABLE} (p, epoch, owner)`,
  `CREATE TABLE IF NOT EXISTS ${POSITIONS_TABLE} (
    p integer NOT NULL REFERENCES ${PARTITIONS_TABLE} (p),
    loop text NOT NULL CHECK (loop IN (${LOOPS.map((l) => `'${l}'`).join(', ')})),
    seq bigint NOT NULL DEFAULT 0 CHECK (seq >= 0),
    PRIMARY KEY (p, loop)
  )`,
];

/** The database's partition rows do not match this instance's ODOPULSE_PARTITIONS. */
export class PartitionCountError extends Error {
  override readonly name = 'PartitionCountError';
  constructor(
    readonly configured: number,
    readonly rows: number,
    readonly highest: number,
  ) {
    super(
      `ODOPULSE_PARTITIONS is ${configured} but the cluster's ${PARTITIONS_TABLE} table has ${rows} partition rows (highest ${highest}): ` +
        'the partition count is fixed for the life of a cluster (a vehicle would move to another partition)',
    );
  }
}

/**
 * Create the lease tables if missing and, in a fresh table, the rows of partitions 0..partitions-1.
 * An existing table must hold exactly those rows (else PartitionCountError): the partition count
 * cannot change on a running cluster. Safe to run from every instance at every start, concurrently.
 */
export async function ensureLeaseSchema(pool: Pool, partitions: number): Promise<void> {
  if (!Number.isInteger(partitions) || partitions < 1) throw new RangeError(`partitions must be a positive integer, got ${partitions}`);
  const c = await pool.connect();
  let failed: unknown;
  try {
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, LOCK_LEASE_SCHEMA]);
    for (const sql of LEASE_SCHEMA_SQL) await c.query(sql);
    const { rows } = await c.query<{ n: number; top: number }>(
      `SELECT count(*)::int AS n, coalesce(max(p), -1)::int AS top FROM ${PARTITIONS_TABLE}`,
    );
    const { n, top } = rows[0];
    if (n === 0) {
      await c.query(`INSERT INTO ${PARTITIONS_TABLE} (p) SELECT generate_series(0, $1::int - 1)`, [partitions]);
      await c.query(`INSERT INTO ${POSITIONS_TABLE} (p, loop) SELECT p, loop FROM ${PARTITIONS_TABLE}, unnest($1::text[]) AS loop`, [
        LOOPS,
      ]);
    } else if (n !== partitions || top !== partitions - 1) {
      throw new PartitionCountError(partitions, n, top);
    }
    await c.query('COMMIT');
  } catch (err) {
    failed = err;
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    // a connection whose rollback may not have gone through is not handed out again
    c.release(failed instanceof PartitionCountError ? undefined : (failed as Error | undefined));
  }
}
