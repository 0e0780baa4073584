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
// The committers fence every commit with the epoch onAcquired gave (fence()/fenceMany(); the rules
// for them: lease-fence.ts). An instance that cannot renew its leases in time stops consuming
// them on its own (self-fencing: lease-holdings.ts).
//
// Split by responsibility: lease-assignment.ts (who should own what), lease-fence.ts (the commits'
// fence), lease-holdings.ts (each held partition's steps, self-fencing), lease-sql.ts (the
// statements), lease-types.ts (options, callbacks, stats); this file holds the joining, leaving and
// ticks, and re-exports the others' names for the importers.
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { assignPartitions, byId } from './lease-assignment.js';
import { fencePartitions, LeaseLostError, type FenceItem, type Queryable } from './lease-fence.js';
import { ensureLeaseSchema } from './lease-schema.js';
import { Holdings, type Holding } from './lease-holdings.js';
import { LeaseSql } from './lease-sql.js';
import type { LeaseStats, PartitionLeasesOptions, ResumePositions } from './lease-types.js';

export { assignPartitions, rendezvousScore } from './lease-assignment.js';
export { fencePartitions, LeaseLostError, type FenceItem, type Queryable } from './lease-fence.js';
export type { LeaseLog, LeaseStats, PartitionLeasesOptions, ReleaseReason, ResumePositions } from './lease-types.js';

const DEAD_MEMBER_ROWS_KEPT_MS = 24 * 3600_000;

export class PartitionLeases {
  readonly instanceId: string;
  readonly partitions: number;
  readonly leaseMs: number;
  readonly renewMs: number;
  private readonly queryTimeoutMs: number;
  private readonly incarnation = randomBytes(8).toString('hex');
  private readonly sql: LeaseSql;

  private readonly holdings: Holdings;
  private readonly held: Map<number, Holding>;
  private running = false;
  private stopping = false;
  private starting: Promise<void> | null = null;
  private leaving: Promise<void> | null = null;
  /** Heartbeats written since start(): the first may find an earlier process's incarnation. */
  private heartbeats = 0;
  /** Rows may name this instance without it holding them (start, or a claim whose answer was lost). */
  private orphansSuspected = true;
  private timer: NodeJS.Timeout | null = null;
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
    if (!opts.instanceId) throw new RangeError('instanceId must not be empty');
    if (!Number.isInteger(this.partitions) || this.partitions < 1)
      throw new RangeError(`partitions must be a positive integer, got ${this.partitions}`);
    if (!(this.renewMs > 0) || !(this.leaseMs >= 2 * this.renewMs))
      throw new RangeError(`leaseMs (${this.leaseMs}) must be at least twice renewMs (${this.renewMs}), and renewMs positive`);
    this.sql = new LeaseSql(opts.pool, this.instanceId, this.leaseMs, this.queryTimeoutMs);
    const callbackTimeoutMs = opts.callbackTimeoutMs ?? 30_000;
    const fenceAfterMs = this.leaseMs - this.renewMs / 2;
    this.holdings = new Holdings(this.sql, opts, this.counters, callbackTimeoutMs, fenceAfterMs, () => (this.orphansSuspected = true));
    this.held = this.holdings.held;
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
    await this.sql.deleteMembersSilentFor(DEAD_MEMBER_ROWS_KEPT_MS).catch(() => undefined);
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
      await this.sql.deleteMember(this.incarnation);
    } catch (err) {
      this.opts.log.warn({ err: errText(err) }, 'partition leases: removing the member row failed (the others see it expire)');
    }
    const ops = [...this.held.keys()].map((p) => this.holdings.relinquish(p, 'stopping'));
    await Promise.all(ops);
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.ticking) await this.ticking;
    this.holdings.disarm();
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
          void this.holdings.relinquish(p, 'lost');
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
      if (h.phase !== 'releasing' && h.valid && owners[p] !== this.instanceId) void this.holdings.relinquish(p, 'rebalance');
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
    const prev = await this.sql.heartbeat(this.incarnation);
    const first = this.heartbeats++ === 0;
    if (prev !== null && prev !== this.incarnation && !first && this.counters.duplicateId++ % 100 === 0) {
      this.opts.log.error(
        { instanceId: this.instanceId, times: this.counters.duplicateId },
        'partition leases: another live process uses this instance id (ODOPULSE_INSTANCE_ID must be unique): the two take partitions from each other',
      );
    }
    const ms = new Set(await this.sql.liveMembers());
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
    const renewed = await this.sql.renew(
      mine.map(([p]) => p),
      mine.map(([, h]) => h.epoch),
    );
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
      void this.holdings.relinquish(p, 'lost');
    }
    this.holdings.armWatchdog();
  }

  /**
   * Rows naming this instance that it does not hold were left by an earlier process under the same
   * id (first tick after start) or by a claim whose answer was lost: free those it is not about to
   * claim again itself.
   */
  private async releaseOrphans(wanted: number[]): Promise<void> {
    const keep = [...new Set([...this.held.keys(), ...wanted])];
    await this.sql.releaseOrphans(keep);
  }

  private async claim(wanted: number[]): Promise<void> {
    const sentAt = performance.now();
    const claimed = await this.sql.claim(wanted);
    if (claimed.length === 0) return;
    // each holding's first step waits for its positions (undefined: not to be started)
    const gates = new Map<number, (from: ResumePositions | undefined) => void>();
    for (const { p, epoch } of claimed) gates.set(p, this.holdings.add(p, epoch, sentAt));
    this.holdings.armWatchdog();
    // Read after the claim: its own snapshot sees every commit of the previous owner (each ended
    // before the claim could lock the row; any later one fails its fence).
    let positions: Map<number, ResumePositions>;
    try {
      positions = await this.sql.positions(claimed.map((c) => c.p));
    } catch (err) {
      // held in PostgreSQL but not started: hand them back (the next tick claims them again)
      this.opts.log.warn({ err: errText(err), partitions: claimed.length }, 'partition leases: reading the claimed positions failed');
      for (const { p } of claimed) {
        gates.get(p)?.(undefined);
        void this.holdings.relinquish(p, 'acquire-failed');
      }
      throw err;
    }
    for (const { p } of claimed) gates.get(p)?.(positions.get(p) ?? { rules: 0, influx: 0 });
  }
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
