// Cluster mode's commit fencing (docs/architecture.md#cluster-mode): a transaction that records
// progress of a partition only goes through while the lease it was consumed under (its epoch) is
// still current, checked and held in PostgreSQL (the lease rows of lease-schema.ts); PartitionLeases
// (leases.ts) wraps it as fence()/fenceMany().
//
// The committers (docs/architecture.md#cluster-mode). Every transaction that records progress of a
// partition (the rules' results with the rules position; the InfluxDB position on its own) calls
// fence()/fenceMany() with the epoch onAcquired gave, as its first statement that reads a table
// (after LOCK TABLE prompt_write_lock, which takes no snapshot, when it takes that), listing every
// partition of its entries and the highest stream sequence of each. LeaseLostError: roll back, do
// not retry those partitions' entries (they are another owner's now; onReleased follows, if it has
// not come already); the other partitions' entries go again in a new transaction. A serialisation
// failure (40001) of the fence under REPEATABLE READ: run the transaction again, as any other.
import type { QueryResult, QueryResultRow } from 'pg';
import { PARTITIONS_TABLE, POSITIONS_TABLE } from './lease-schema.js';

/** The partition's lease is no longer this instance's at this epoch: the caller's transaction must roll back. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
  constructor(
    /** The partitions whose lease (at the epoch given) is gone. */
    readonly partitions: number[],
    detail = 'taken over, released or expired',
  ) {
    super(`partition lease lost (${detail}): ${partitions.join(', ')}`);
  }
}

/** What runs a query: the caller's transaction client (a PoolClient inside BEGIN), or a pool for a one-statement commit. */
export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
}

export interface FenceItem {
  partition: number;
  /** The epoch onAcquired gave for this holding of the partition. */
  epoch: number;
  /** The last stream sequence the rules applied in this transaction (kept if lower than the saved one). */
  rulesSeq?: number;
  /** The last stream sequence written to InfluxDB. */
  influxSeq?: number;
}

/**
 * Inside the caller's transaction: check that `owner` still holds every listed partition at its
 * epoch, keep that so until the transaction ends (FOR KEY SHARE on the lease rows: a claim or a
 * release waits for the transaction, or skips the partition, and the next owner reads what it
 * saved), and raise the saved positions (GREATEST: never backwards). Throws LeaseLostError naming
 * the partitions no longer held; nothing is written then (all or nothing, also outside a
 * transaction), and the caller rolls its transaction back.
 *
 * Under REPEATABLE READ (the store's transactions), a takeover committed after the transaction's
 * snapshot makes this fail with PostgreSQL's serialisation failure (40001) instead: run the
 * transaction again, and the fence then answers LeaseLostError. Renewals never do that, nor
 * does the other loop's fence (a row per loop). Lease rows are locked in partition order, so
 * fences never deadlock each other.
 */
export async function fencePartitions(client: Queryable, owner: string, items: readonly FenceItem[]): Promise<void> {
  if (items.length === 0) return;
  const merged = new Map<number, FenceItem>();
  for (const it of items) {
    const had = merged.get(it.partition);
    if (!had) {
      merged.set(it.partition, { ...it });
      continue;
    }
    if (had.epoch !== it.epoch) throw new Error(`fence: partition ${it.partition} listed with epochs ${had.epoch} and ${it.epoch}`);
    had.rulesSeq = maxDefined(had.rulesSeq, it.rulesSeq);
    had.influxSeq = maxDefined(had.influxSeq, it.influxSeq);
  }
  const list = [...merged.values()].sort((a, b) => a.partition - b.partition);
  // held: the listed lease rows still at owner and epoch, share-locked in partition order; the
  // positions are raised only if that is all of them; the rows returned are the held ones, so a
  // refusal names the others
  const res = await client.query<{ p: number }>(
    `WITH w AS (
       SELECT * FROM unnest($2::int[], $3::bigint[], $4::bigint[], $5::bigint[]) AS w(p, epoch, rules_seq, influx_seq)
     ), held AS (
       SELECT t.p FROM ${PARTITIONS_TABLE} t JOIN w ON w.p = t.p
        WHERE t.owner = $1 AND t.epoch = w.epoch
        ORDER BY t.p
        FOR KEY SHARE OF t
     ), raised AS (
       UPDATE ${POSITIONS_TABLE} s SET seq = GREATEST(s.seq, v.seq)
         FROM (SELECT p, 'rules' AS loop, rules_seq AS seq FROM w WHERE rules_seq IS NOT NULL
               UNION ALL
               SELECT p, 'influx', influx_seq FROM w WHERE influx_seq IS NOT NULL) v
        WHERE s.p = v.p AND s.loop = v.loop AND (SELECT count(*) FROM held) = $6
     )
     SELECT p FROM held`,
    [
      owner,
      list.map((i) => i.partition),
      list.map((i) => i.epoch),
      list.map((i) => i.rulesSeq ?? null),
      list.map((i) => i.influxSeq ?? null),
      list.length,
    ],
  );
  if (res.rows.length === list.length) return;
  const ok = new Set(res.rows.map((r) => Number(r.p)));
  throw new LeaseLostError(list.filter((i) => !ok.has(i.partition)).map((i) => i.partition));
}

const maxDefined = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined ? b : b === undefined ? a : Math.max(a, b);
