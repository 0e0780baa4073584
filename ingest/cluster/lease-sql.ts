// The statements of cluster mode's partition leases (leases.ts) on the tables of lease-schema.ts: the
// heartbeat and the member list, renewals, claims, hand-backs and the positions a new owner resumes
// from. One statement each, on the leases' own pool, every one bounded in time (within). Every time
// is PostgreSQL's (now()). What to do with the answers (the ticks, the holdings) is leases.ts's.
import type { Pool, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { MEMBERS_TABLE, PARTITIONS_TABLE, POSITIONS_TABLE } from './lease-schema.js';
import type { ResumePositions } from './lease-types.js';

/** `work`, or the error `timeout()` makes if it has not settled after `ms` (the timer is cleared either way). */
export async function within<T>(work: Promise<T>, ms: number, timeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(timeout()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export class LeaseSql {
  constructor(
    private readonly pool: Pool,
    private readonly instanceId: string,
    /** How long a lease, and a heartbeat, is good for. */
    private readonly leaseMs: number,
    /** A statement not answered after this long counts as failed. */
    private readonly queryTimeoutMs: number,
  ) {}

  /** Remove the member rows whose heartbeat is older than `ms` (instances gone for good). */
  async deleteMembersSilentFor(ms: number): Promise<void> {
    await this.q(`DELETE FROM ${MEMBERS_TABLE} WHERE heartbeat_at < now() - $1::double precision * interval '1 millisecond'`, [ms]);
  }

  /** Remove this process's member row (another incarnation's under the same id stays). */
  async deleteMember(incarnation: string): Promise<void> {
    await this.q(`DELETE FROM ${MEMBERS_TABLE} WHERE instance_id = $1 AND incarnation = $2`, [this.instanceId, incarnation]);
  }

  /** Write this instance's heartbeat; the incarnation the row had before (null: a new row). */
  async heartbeat(incarnation: string): Promise<string | null> {
    const hb = await this.q<{ prev: string | null }>(
      `WITH prev AS (SELECT incarnation FROM ${MEMBERS_TABLE} WHERE instance_id = $1)
       INSERT INTO ${MEMBERS_TABLE} AS m (instance_id, incarnation, started_at, heartbeat_at)
       VALUES ($1, $2, now(), now())
       ON CONFLICT (instance_id) DO UPDATE
         SET heartbeat_at = now(),
             incarnation = EXCLUDED.incarnation,
             started_at = CASE WHEN m.incarnation = EXCLUDED.incarnation THEN m.started_at ELSE now() END
       RETURNING (SELECT incarnation FROM prev) AS prev`,
      [this.instanceId, incarnation],
    );
    return hb.rows[0]?.prev ?? null;
  }

  /** The members with a heartbeat within leaseMs. */
  async liveMembers(): Promise<string[]> {
    const live = await this.q<{ instance_id: string }>(
      `SELECT instance_id FROM ${MEMBERS_TABLE} WHERE heartbeat_at > now() - $1::double precision * interval '1 millisecond'`,
      [this.leaseMs],
    );
    return live.rows.map((r) => r.instance_id);
  }

  /**
   * Extend the leases of `partitions` (each at its epoch in `epochs`) by leaseMs: a plain update of
   * lease_until, guarded by owner and epoch. The partitions renewed.
   */
  async renew(partitions: number[], epochs: number[]): Promise<Set<number>> {
    const res = await this.q<{ p: number }>(
      `UPDATE ${PARTITIONS_TABLE} t SET lease_until = now() + $4::double precision * interval '1 millisecond'
         FROM unnest($2::int[], $3::bigint[]) AS w(p, epoch)
        WHERE t.p = w.p AND t.owner = $1 AND t.epoch = w.epoch
        RETURNING t.p`,
      [this.instanceId, partitions, epochs, this.leaseMs],
    );
    return new Set(res.rows.map((r) => Number(r.p)));
  }

  /** Free the rows naming this instance except those in `keep` (rows locked by a fenced commit are skipped). */
  async releaseOrphans(keep: number[]): Promise<void> {
    await this.q(
      `UPDATE ${PARTITIONS_TABLE} t SET owner = NULL, lease_until = NULL
         FROM (SELECT p FROM ${PARTITIONS_TABLE} WHERE owner = $1 AND NOT (p = ANY($2::int[])) FOR UPDATE SKIP LOCKED) o
        WHERE t.p = o.p`,
      [this.instanceId, keep],
    );
  }

  /** Take those of `wanted` that are free or expired (epoch + 1): the partitions claimed, with their new epochs. */
  async claim(wanted: number[]): Promise<{ p: number; epoch: number }[]> {
    // owner = $1: left by an earlier process under this id (not held here, so not consumed here);
    // SKIP LOCKED: a row share-locked by a fenced commit still open is claimed at a later tick
    const res = await this.q<{ p: number; epoch: string }>(
      `UPDATE ${PARTITIONS_TABLE} t
          SET owner = $1, epoch = t.epoch + 1, acquired_at = now(),
              lease_until = now() + $3::double precision * interval '1 millisecond'
         FROM (SELECT p FROM ${PARTITIONS_TABLE}
                WHERE p = ANY($2::int[]) AND (owner IS NULL OR lease_until < now() OR owner = $1)
                FOR UPDATE SKIP LOCKED) c
        WHERE t.p = c.p
        RETURNING t.p, t.epoch`,
      [this.instanceId, wanted, this.leaseMs],
    );
    return res.rows.map((r) => ({ p: Number(r.p), epoch: Number(r.epoch) }));
  }

  /** The saved positions of `ps` (a partition or loop without a row is left out: 0). */
  async positions(ps: number[]): Promise<Map<number, ResumePositions>> {
    const res = await this.q<{ p: number; loop: string; seq: string }>(
      `SELECT p, loop, seq FROM ${POSITIONS_TABLE} WHERE p = ANY($1::int[])`,
      [ps],
    );
    const out = new Map<number, ResumePositions>();
    for (const r of res.rows) {
      const p = Number(r.p);
      const pos = out.get(p) ?? { rules: 0, influx: 0 };
      if (r.loop === 'rules') pos.rules = Number(r.seq);
      else if (r.loop === 'influx') pos.influx = Number(r.seq);
      out.set(p, pos);
    }
    return out;
  }

  /** Hand p back (owner = NULL), guarded by owner and epoch. */
  async release(p: number, epoch: number): Promise<void> {
    await this.q(`UPDATE ${PARTITIONS_TABLE} SET owner = NULL, lease_until = NULL WHERE p = $1 AND owner = $2 AND epoch = $3::bigint`, [
      p,
      this.instanceId,
      epoch,
    ]);
  }

  /** One statement on the pool, bounded in time (waiting for a connection included). */
  private async q<R extends QueryResultRow = QueryResultRow>(text: string, values: unknown[]): Promise<QueryResult<R>> {
    const config: QueryConfig & { query_timeout: number } = { text, values, query_timeout: this.queryTimeoutMs };
    return within(
      this.pool.query<R>(config),
      this.queryTimeoutMs + 50,
      () => new Error(`PostgreSQL did not answer within ${this.queryTimeoutMs} ms`),
    );
  }
}
