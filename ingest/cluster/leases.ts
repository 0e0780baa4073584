// Cluster mode's partition leases (docs/architecture.md#cluster-mode): each telemetry partition is
// consumed by exactly one live instance at a time, decided in PostgreSQL (tables: lease-schema.ts).
// Every time is PostgreSQL's (now()); an instance's own clock only measures how long ago it last
// renewed, for self-fencing.
//
// Every renewMs, each instance (one tick at a time, never overlapping; a failed tick is logged,
// counted and retried at the next):
//   1. heartbeats its member row and reads the live members (heartbeat within leaseMs);
//   2. computes the preferred owner of every partition from the live members (assignPartitions:
//      rendezvous hashing with bounded loads, the same answer on every instance);
//   3. renews the leases it holds (guarded by owner and epoch; a partition whose row no longer has
//      its owner and epoch was lost: onReleased at once);
//   4. hands back the partitions now preferred by another member: onReleased first (the consumer
//      stops, finishing or aborting its in-flight step), then owner = NULL (still guarded by epoch);
//      until then the lease is renewed, so a graceful hand-over never overlaps;
//   5. claims the partitions it prefers that are free or whose lease expired (epoch + 1), then
//      reads the positions saved by the previous owner's commits, for onAcquired.
// A fenced commit share-locks its partitions' lease rows (FOR KEY SHARE, lease-schema.ts): renewals
// do not conflict with it, claims skip such a row (SKIP LOCKED): a slow commit delays no tick, and
// a partition is not claimed while its previous owner's commit is open (a later tick claims it and
// reads what that commit saved).
//
// The committers (docs/architecture.md#cluster-mode). Every transaction that records progress of a
// partition (the rules' results with the rules position; the InfluxDB position on its own) calls
// fence()/fenceMany() with the epoch onAcquired gave, as its first statement that reads a table
// (after LOCK TABLE prompt_write_lock, which takes no snapshot, when it takes that), listing every
// partition of its entries and the highest stream sequence of each. LeaseLostError: roll back, do
// not retry those partitions' entries (they are another owner's now; onReleased follows, if it has
// not come already); the other partitions' entries go again in a new transaction. A serialisation
// failure (40001) of the fence under REPEATABLE READ: run the transaction again, as any other.
//
// Self-fencing: a lease is valid until its renewal's PostgreSQL time + leaseMs, and that renewal ran
// after the instance sent it. So once leaseMs - renewMs/2 has passed since the sending of a lease's
// last successful renewal, the instance stops consuming the partition (onReleased) on its own,
// before anyone else can claim it, whatever PostgreSQL's reachability (a watchdog timer, not the
// tick, which may be stuck on a query). The guarantee against a stale owner is the fence, though:
// a commit carries the lease's epoch and rolls back once that epoch is no longer current.
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Pool, QueryConfig, QueryResult, QueryResultRow } from 'pg';
import { ensureLeaseSchema, MEMBERS_TABLE, PARTITIONS_TABLE, POSITIONS_TABLE } from './lease-schema.js';

// ---------------------------------------------------------------------------------------------
// Assignment: which live member should own each partition.
// ---------------------------------------------------------------------------------------------

const fmix32 = (x: number): number => {
  let h = x;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
};

/** Two 32-bit words from SHA-256 of the member id: its seed for the per-partition scores. */
function memberSeed(member: string): [number, number] {
  const d = createHash('sha256').update(member, 'utf8').digest();
  return [d.readUInt32LE(0), d.readUInt32LE(4)];
}

/** Rendezvous score of (member, partition): a well-mixed 32-bit number, the same on every instance. */
export function rendezvousScore(member: string, partition: number): number {
  return scoreOf(memberSeed(member), partition);
}

const scoreOf = (seed: [number, number], p: number): number => fmix32(fmix32(seed[0] ^ Math.imul(p + 1, 0x9e3779b1)) ^ seed[1]);

const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The preferred owner of every partition 0..partitions-1 among `members` (index = partition; empty
 * when there are no members). Rendezvous hashing with bounded loads: all (member, partition) pairs
 * are taken in order of their score, highest first, and a pair is assigned while its partition is
 * free and its member below its share, which is floor(P/n) or, for the first P mod n members to
 * reach it, one more. So the loads are within one of each other (plain rendezvous hashing leaves
 * 10..33 partitions per member for P = 64 over 3 members), a partition keeps its owner as long as its
 * top pairs do, and a member joining or leaving moves only a little more than the 1/n it must.
 * Deterministic: the same members in any order give the same answer (ties broken by id, partition).
 */
export function assignPartitions(members: Iterable<string>, partitions: number): string[] {
  const ms = [...new Set(members)].sort(byId);
  const n = ms.length;
  if (n === 0) return [];
  if (n === 1) return Array.from({ length: partitions }, () => ms[0]);
  const total = n * partitions;
  const scores = new Float64Array(total);
  const order = new Uint32Array(total);
  for (let i = 0; i < n; i++) {
    const seed = memberSeed(ms[i]);
    for (let p = 0; p < partitions; p++) {
      const k = i * partitions + p;
      scores[k] = scoreOf(seed, p);
      order[k] = k;
    }
  }
  // highest score first; ties: member id order (ms is sorted, so member index), then partition
  order.sort((a, b) => scores[b] - scores[a] || a - b);
  const owner = new Array<string>(partitions);
  const load = new Uint32Array(n);
  const base = Math.floor(partitions / n);
  const extra = partitions % n;
  let atExtra = 0;
  let left = partitions;
  for (let j = 0; j < total && left > 0; j++) {
    const k = order[j];
    const i = Math.floor(k / partitions);
    const p = k - i * partitions;
    if (owner[p] !== undefined) continue;
    const cap = atExtra < extra ? base + 1 : base;
    if (load[i] >= cap) continue;
    owner[p] = ms[i];
    load[i]++;
    if (load[i] === base + 1) atExtra++;
    left--;
  }
  return owner;
}

// ---------------------------------------------------------------------------------------------
// Fencing: a commit only goes through while its lease's epoch is current.
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// The leases of one instance.
// ---------------------------------------------------------------------------------------------

/** Where the next owner resumes: the last stream sequences applied (0: nothing yet). */
export interface ResumePositions {
  rules: number;
  influx: number;
}

/** Why onReleased is called. */
export type ReleaseReason =
  /** another live member is now the partition's preferred owner: handed over gracefully */
  | 'rebalance'
  /** stop(): this instance leaves the cluster */
  | 'stopping'
  /** the renewal found the lease gone (another owner's epoch, or released): the partition may already be consumed elsewhere */
  | 'lost'
  /** the lease was not renewed in time (PostgreSQL unreachable or too slow): stopped before it can expire */
  | 'self-fenced'
  /** onAcquired threw (or did not settle in time): handed back so it is claimed again */
  | 'acquire-failed';

export interface LeaseLog {
  info?(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  error(o: object, msg: string): void;
}

export interface PartitionLeasesOptions {
  /** Preferably a pool of its own (max 2 is enough), so that a busy store pool never delays a heartbeat. */
  pool: Pool;
  /** Unique among the live instances (ODOPULSE_INSTANCE_ID, else host name and pid). */
  instanceId: string;
  /** ODOPULSE_PARTITIONS: the same on every instance of the cluster. */
  partitions: number;
  /** How long a lease, and a heartbeat, is good for (default 6000 ms); at least 2 x renewMs. */
  leaseMs?: number;
  /** The tick period: heartbeat, renewals, hand-overs, claims (default 2000 ms). */
  renewMs?: number;
  /** A statement not answered after this long counts as failed (default leaseMs / 2). */
  queryTimeoutMs?: number;
  /** onAcquired/onReleased not settled after this long are given up on, logged as errors (default 30 s). */
  callbackTimeoutMs?: number;
  /** Start consuming partition p from `from` (the last sequences applied); the epoch goes with every fence. */
  onAcquired(p: number, epoch: number, from: ResumePositions): Promise<void>;
  /** Stop consuming p: finish or abort the in-flight step first. Called once after every onAcquired, also a failed one. */
  onReleased(p: number, reason: ReleaseReason): Promise<void>;
  log: LeaseLog;
}

export interface LeaseStats {
  ticks: number;
  tickFailures: number;
  /** Failed ticks in a row (0 after a tick that got through). */
  consecutiveFailures: number;
  acquired: number;
  released: number;
  lost: number;
  selfFenced: number;
  /** onAcquired/onReleased that threw or timed out. */
  callbackErrors: number;
  /** Ticks that found another process writing this instance id's member row. */
  duplicateId: number;
  /** Live members seen by the last tick that read them (this instance included). */
  members: number;
}

type Phase = 'acquiring' | 'owned' | 'releasing';

interface Holding {
  epoch: number;
  phase: Phase;
  /** Whether a commit at this epoch may still go through (false once lost or self-fenced). */
  valid: boolean;
  /** performance.now() when the last successful claim/renewal of this lease was sent. */
  renewedAt: number;
  /** The release statement was sent: no more renewals (they would find the row released and call it lost). */
  handedBack: boolean;
  /** onAcquired was called (then onReleased will be). */
  started: boolean;
  /** The hand-over steps of this holding, in order (onAcquired, then onReleased and the release). */
  op: Promise<void>;
}

class CallbackTimeout extends Error {}

const DEAD_MEMBER_ROWS_KEPT_MS = 24 * 3600_000;

export class PartitionLeases {
  readonly instanceId: string;
  readonly partitions: number;
  readonly leaseMs: number;
  readonly renewMs: number;
  private readonly queryTimeoutMs: number;
  private readonly callbackTimeoutMs: number;
  /** Self-fence this long after a lease's last successful renewal was sent. */
  private readonly fenceAfterMs: number;
  private readonly incarnation = randomBytes(8).toString('hex');

  private readonly held = new Map<number, Holding>();
  private running = false;
  private stopping = false;
  private starting: Promise<void> | null = null;
  private leaving: Promise<void> | null = null;
  /** Heartbeats written since start(): the first may find an earlier process's incarnation. */
  private heartbeats = 0;
  /** Rows may name this instance without it holding them (start, or a claim whose answer was lost). */
  private orphansSuspected = true;
  private timer: NodeJS.Timeout | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private assignment: { key: string; owners: string[] } = { key: '', owners: [] };
  private liveMembers: string[] = [];
  private readonly counters: LeaseStats = {
    ticks: 0,
    tickFailures: 0,
    consecutiveFailures: 0,
    acquired: 0,
    released: 0,
    lost: 0,
    selfFenced: 0,
    callbackErrors: 0,
    duplicateId: 0,
    members: 0,
  };

  constructor(private readonly opts: PartitionLeasesOptions) {
    this.instanceId = opts.instanceId;
    this.partitions = opts.partitions;
    this.leaseMs = opts.leaseMs ?? 6000;
    this.renewMs = opts.renewMs ?? 2000;
    this.queryTimeoutMs = opts.queryTimeoutMs ?? Math.floor(this.leaseMs / 2);
    this.callbackTimeoutMs = opts.callbackTimeoutMs ?? 30_000;
    this.fenceAfterMs = this.leaseMs - this.renewMs / 2;
    if (!opts.instanceId) throw new RangeError('instanceId must not be empty');
    if (!Number.isInteger(this.partitions) || this.partitions < 1)
      throw new RangeError(`partitions must be a positive integer, got ${this.partitions}`);
    if (!(this.renewMs > 0) || !(this.leaseMs >= 2 * this.renewMs))
      throw new RangeError(`leaseMs (${this.leaseMs}) must be at least twice renewMs (${this.renewMs}), and renewMs positive`);
  }

  /** The partitions this instance holds and consumes (being acquired or acquired, not being released), with their epochs. */
  owned(): Map<number, number> {
    const out = new Map<number, number>();
    for (const [p, h] of this.held) if (h.valid && h.phase !== 'releasing') out.set(p, h.epoch);
    return out;
  }

  /** The live members the last tick saw (this instance included). */
  members(): string[] {
    return [...this.liveMembers];
  }

  stats(): LeaseStats {
    return { ...this.counters };
  }

  /**
   * Create the tables if needed (ensureLeaseSchema: throws on a partition count that does not match
   * the cluster's), join, and run the first tick; resolves after it (whether or not PostgreSQL
   * answered it: the ticks retry on their own).
   */
  start(): Promise<void> {
    if (this.running) return Promise.resolve();
    this.starting ??= this.join().finally(() => (this.starting = null));
    return this.starting;
  }

  private async join(): Promise<void> {
    await ensureLeaseSchema(this.opts.pool, this.partitions);
    await this.q(`DELETE FROM ${MEMBERS_TABLE} WHERE heartbeat_at < now() - $1::double precision * interval '1 millisecond'`, [
      DEAD_MEMBER_ROWS_KEPT_MS,
    ]).catch(() => undefined);
    this.running = true;
    this.stopping = false;
    this.leaving = null;
    this.heartbeats = 0;
    this.orphansSuspected = true;
    await this.runTick();
  }

  /**
   * Leave the cluster: remove the member row (the others stop counting this instance at their next
   * tick), hand back every partition (onReleased, then owner = NULL), renewing the leases until each
   * is handed back, and stop the ticks. Resolves when all of it is done.
   */
  stop(): Promise<void> {
    if (this.leaving) return this.leaving;
    if (!this.running) return this.starting ? this.starting.then(() => this.stop()) : Promise.resolve();
    this.leaving = this.leave();
    return this.leaving;
  }

  private async leave(): Promise<void> {
    this.stopping = true;
    // wait for a tick in progress: it may be claiming (its claims are then handed back below)
    if (this.ticking) await this.ticking;
    try {
      await this.q(`DELETE FROM ${MEMBERS_TABLE} WHERE instance_id = $1 AND incarnation = $2`, [this.instanceId, this.incarnation]);
    } catch (err) {
      this.opts.log.warn({ err: errText(err) }, 'partition leases: removing the member row failed (the others see it expire)');
    }
    const ops = [...this.held.keys()].map((p) => this.relinquish(p, 'stopping'));
    await Promise.all(ops);
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.ticking) await this.ticking;
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
  }

  /**
   * Fence a commit on partition p at `epoch` inside the caller's transaction (see fencePartitions);
   * rejects at once, without a query, a holding this instance already knows is lost or self-fenced.
   * A lease PostgreSQL finds gone is released here at once (onReleased(p, 'lost')).
   */
  async fence(client: Queryable, p: number, epoch: number, seqs: { rulesSeq?: number; influxSeq?: number } = {}): Promise<void> {
    await this.fenceMany(client, [{ partition: p, epoch, ...seqs }]);
  }

  /** fence() for the partitions of one transaction at once (a rules batch spans several). */
  async fenceMany(client: Queryable, items: readonly FenceItem[]): Promise<void> {
    const gone = items.filter((i) => {
      const h = this.held.get(i.partition);
      return !h || !h.valid || h.epoch !== i.epoch;
    });
    if (gone.length)
      throw new LeaseLostError(
        [...new Set(gone.map((i) => i.partition))].sort((a, b) => a - b),
        'no longer held here',
      );
    try {
      await fencePartitions(client, this.instanceId, items);
    } catch (err) {
      // PostgreSQL's answer is final for those epochs: stop consuming them now, not at the next renewal
      if (err instanceof LeaseLostError) {
        const epochOf = new Map(items.map((i) => [i.partition, i.epoch]));
        for (const p of err.partitions) {
          const h = this.held.get(p);
          if (!h || !h.valid || h.epoch !== epochOf.get(p)) continue;
          h.valid = false;
          this.counters.lost++;
          this.opts.log.warn({ partition: p, epoch: h.epoch }, 'partition leases: lease lost (found by a commit)');
          void this.relinquish(p, 'lost');
        }
      }
      throw err;
    }
  }

  // -------------------------------------------------------------------------------------------

  private schedule(delayMs: number): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.runTick();
    }, delayMs);
  }

  private async runTick(): Promise<void> {
    if (!this.running || this.ticking) return;
    const t0 = performance.now();
    this.ticking = this.tick().then(
      () => {
        if (this.counters.consecutiveFailures > 0)
          this.opts.log.info?.({ failures: this.counters.consecutiveFailures }, 'partition leases: PostgreSQL answers again');
        this.counters.consecutiveFailures = 0;
      },
      (err: unknown) => {
        this.counters.tickFailures++;
        if (this.counters.consecutiveFailures++ === 0)
          this.opts.log.warn(
            { err: errText(err), retryInMs: this.renewMs },
            'partition leases: a tick failed (heartbeat, renewals or claims); retrying every tick',
          );
      },
    );
    try {
      await this.ticking;
    } finally {
      this.ticking = null;
      this.counters.ticks++;
      this.schedule(Math.max(0, this.renewMs - (performance.now() - t0)));
    }
  }

  private async tick(): Promise<void> {
    if (this.stopping) {
      // leaving: only keep the leases being handed back alive
      await this.renew();
      return;
    }
    await this.heartbeat();
    const owners = this.owners(this.liveMembers);
    await this.renew();
    if (this.stopping) return;
    for (const [p, h] of this.held) {
      if (h.phase !== 'releasing' && h.valid && owners[p] !== this.instanceId) void this.relinquish(p, 'rebalance');
    }
    const wanted: number[] = [];
    for (let p = 0; p < this.partitions; p++) if (owners[p] === this.instanceId && !this.held.has(p)) wanted.push(p);
    if (this.orphansSuspected) {
      await this.releaseOrphans(wanted);
      this.orphansSuspected = false;
    }
    if (wanted.length) {
      try {
        await this.claim(wanted);
      } catch (err) {
        // it may have gone through without its answer: the rows then name this instance
        this.orphansSuspected = true;
        throw err;
      }
    }
  }

  private async heartbeat(): Promise<void> {
    const hb = await this.q<{ prev: string | null }>(
      `WITH prev AS (SELECT incarnation FROM ${MEMBERS_TABLE} WHERE instance_id = $1)
       INSERT INTO ${MEMBERS_TABLE} AS m (instance_id, incarnation, started_at, heartbeat_at)
       VALUES ($1, $2, now(), now())
       ON CONFLICT (instance_id) DO UPDATE
         SET heartbeat_at = now(),
             incarnation = EXCLUDED.incarnation,
             started_at = CASE WHEN m.incarnation = EXCLUDED.incarnation THEN m.started_at ELSE now() END
       RETURNING (SELECT incarnation FROM prev) AS prev`,
      [this.instanceId, this.incarnation],
    );
    const prev = hb.rows[0]?.prev ?? null;
    const first = this.heartbeats++ === 0;
    if (prev !== null && prev !== this.incarnation && !first && this.counters.duplicateId++ % 100 === 0) {
      this.opts.log.error(
        { instanceId: this.instanceId, times: this.counters.duplicateId },
        'partition leases: another live process uses this instance id (ODOPULSE_INSTANCE_ID must be unique): the two take partitions from each other',
      );
    }
    const live = await this.q<{ instance_id: string }>(
      `SELECT instance_id FROM ${MEMBERS_TABLE} WHERE heartbeat_at > now() - $1::double precision * interval '1 millisecond'`,
      [this.leaseMs],
    );
    const ms = new Set(live.rows.map((r) => r.instance_id));
    ms.add(this.instanceId);
    this.liveMembers = [...ms].sort(byId);
    this.counters.members = ms.size;
  }

  private owners(members: string[]): string[] {
    const key = members.join('\n');
    if (key !== this.assignment.key) this.assignment = { key, owners: assignPartitions(members, this.partitions) };
    return this.assignment.owners;
  }

  /**
   * Renew every valid holding (a plain update of lease_until: it never waits for a fenced commit,
   * whose lock it does not conflict with); a holding whose row has another owner or epoch is lost.
   */
  private async renew(): Promise<void> {
    const mine = [...this.held].filter(([, h]) => h.valid && !h.handedBack);
    if (mine.length === 0) return;
    const sentAt = performance.now();
    const res = await this.q<{ p: number }>(
      `UPDATE ${PARTITIONS_TABLE} t SET lease_until = now() + $4::double precision * interval '1 millisecond'
         FROM unnest($2::int[], $3::bigint[]) AS w(p, epoch)
        WHERE t.p = w.p AND t.owner = $1 AND t.epoch = w.epoch
        RETURNING t.p`,
      [this.instanceId, mine.map(([p]) => p), mine.map(([, h]) => h.epoch), this.leaseMs],
    );
    const renewed = new Set(res.rows.map((r) => Number(r.p)));
    for (const [p, h] of mine) {
      if (this.held.get(p) !== h) continue;
      if (renewed.has(p)) {
        h.renewedAt = sentAt;
        continue;
      }
      if (!h.valid || h.handedBack) continue;
      h.valid = false;
      this.counters.lost++;
      this.opts.log.warn({ partition: p, epoch: h.epoch }, 'partition leases: lease lost (another owner, or released)');
      void this.relinquish(p, 'lost');
    }
    this.armWatchdog();
  }

  /**
   * Rows naming this instance that it does not hold were left by an earlier process under the same
   * id (first tick after start) or by a claim whose answer was lost: free those it is not about to
   * claim again itself.
   */
  private async releaseOrphans(wanted: number[]): Promise<void> {
    const keep = [...new Set([...this.held.keys(), ...wanted])];
    await this.q(
      `UPDATE ${PARTITIONS_TABLE} t SET owner = NULL, lease_until = NULL
         FROM (SELECT p FROM ${PARTITIONS_TABLE} WHERE owner = $1 AND NOT (p = ANY($2::int[])) FOR UPDATE SKIP LOCKED) o
        WHERE t.p = o.p`,
      [this.instanceId, keep],
    );
  }

  private async claim(wanted: number[]): Promise<void> {
    const sentAt = performance.now();
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
    if (res.rows.length === 0) return;
    const claimed = res.rows.map((r) => ({ p: Number(r.p), epoch: Number(r.epoch) }));
    // each holding's first step waits for its positions (undefined: not to be started)
    const gates = new Map<number, (from: ResumePositions | undefined) => void>();
    for (const { p, epoch } of claimed) {
      const h: Holding = {
        epoch,
        phase: 'acquiring',
        valid: true,
        renewedAt: sentAt,
        handedBack: false,
        started: false,
        op: Promise.resolve(),
      };
      h.op = new Promise<ResumePositions | undefined>((open) => gates.set(p, open)).then(async (from) => {
        if (from === undefined || h.phase === 'releasing') return;
        h.started = true;
        if (await this.callback(() => this.opts.onAcquired(p, epoch, from), 'onAcquired', p)) {
          if (h.phase === 'acquiring') h.phase = 'owned';
        } else void this.relinquish(p, 'acquire-failed');
      });
      this.held.set(p, h);
      this.counters.acquired++;
    }
    this.armWatchdog();
    // Read after the claim: its own snapshot sees every commit of the previous owner (each ended
    // before the claim could lock the row; any later one fails its fence).
    let positions: Map<number, ResumePositions>;
    try {
      positions = await this.positions(claimed.map((c) => c.p));
    } catch (err) {
      // held in PostgreSQL but not started: hand them back (the next tick claims them again)
      this.opts.log.warn({ err: errText(err), partitions: claimed.length }, 'partition leases: reading the claimed positions failed');
      for (const { p } of claimed) {
        gates.get(p)?.(undefined);
        void this.relinquish(p, 'acquire-failed');
      }
      throw err;
    }
    for (const { p } of claimed) gates.get(p)?.(positions.get(p) ?? { rules: 0, influx: 0 });
  }

  private async positions(ps: number[]): Promise<Map<number, ResumePositions>> {
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

  /**
   * Stop consuming p and hand it back: after the holding's earlier steps, onReleased (if onAcquired was called), then (unless
   * lost) owner = NULL guarded by the epoch; the holding is renewed until then (while valid).
   */
  private relinquish(p: number, reason: ReleaseReason): Promise<void> {
    const h = this.held.get(p);
    if (!h) return Promise.resolve();
    if (h.phase === 'releasing') return h.op;
    h.phase = 'releasing';
    h.op = h.op
      .then(async () => {
        if (h.started) await this.callback(() => this.opts.onReleased(p, reason), 'onReleased', p);
        if (reason === 'lost') return;
        h.handedBack = true;
        try {
          await this.q(
            `UPDATE ${PARTITIONS_TABLE} SET owner = NULL, lease_until = NULL WHERE p = $1 AND owner = $2 AND epoch = $3::bigint`,
            [p, this.instanceId, h.epoch],
          );
        } catch (err) {
          // the lease expires on its own (and is not renewed any more), or the next tick frees it
          this.orphansSuspected = true;
          this.opts.log.warn({ partition: p, err: errText(err) }, 'partition leases: handing a partition back failed; it expires instead');
        }
      })
      .finally(() => {
        if (this.held.get(p) === h) this.held.delete(p);
        this.counters.released++;
        this.armWatchdog();
      });
    return h.op;
  }

  /** Run a callback with a time bound; false (logged, counted) when it threw or did not settle. */
  private async callback(fn: () => Promise<void>, what: string, p: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(fn),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new CallbackTimeout(`${what} did not settle within ${this.callbackTimeoutMs} ms`)),
            this.callbackTimeoutMs,
          );
        }),
      ]);
      return true;
    } catch (err) {
      this.counters.callbackErrors++;
      this.opts.log.error({ partition: p, err: errText(err) }, `partition leases: ${what} failed`);
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Arm the self-fencing timer for the valid holding renewed longest ago. */
  private armWatchdog(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
    let oldest = Infinity;
    for (const h of this.held.values()) if (h.valid && h.renewedAt < oldest) oldest = h.renewedAt;
    if (oldest === Infinity) return;
    const due = oldest + this.fenceAfterMs - performance.now();
    this.watchdog = setTimeout(() => this.selfFence(), Math.max(0, due));
    this.watchdog.unref?.();
  }

  private selfFence(): void {
    this.watchdog = null;
    const t = performance.now();
    const fenced: number[] = [];
    for (const [p, h] of this.held) {
      if (!h.valid || t - h.renewedAt < this.fenceAfterMs) continue;
      h.valid = false;
      fenced.push(p);
      this.counters.selfFenced++;
      void this.relinquish(p, 'self-fenced');
    }
    if (fenced.length)
      this.opts.log.error(
        { partitions: fenced, notRenewedForMs: Math.round(this.fenceAfterMs) },
        'partition leases: leases not renewed in time (PostgreSQL unreachable or too slow): stopped consuming these partitions',
      );
    this.armWatchdog();
  }

  /** One statement on the pool, bounded in time (waiting for a connection included). */
  private async q<R extends QueryResultRow = QueryResultRow>(text: string, values: unknown[]): Promise<QueryResult<R>> {
    const config: QueryConfig & { query_timeout: number } = { text, values, query_timeout: this.queryTimeoutMs };
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.opts.pool.query<R>(config),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`PostgreSQL did not answer within ${this.queryTimeoutMs} ms`)),
            this.queryTimeoutMs + 50,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
