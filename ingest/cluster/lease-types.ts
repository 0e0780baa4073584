// The public shapes of cluster mode's partition leases (leases.ts, which re-exports them): the
// options and callbacks of PartitionLeases, where the next owner resumes, why a partition is let go,
// and the counters stats() reports.
import type { Pool } from 'pg';

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
