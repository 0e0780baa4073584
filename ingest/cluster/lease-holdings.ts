// The partitions one instance holds, for PartitionLeases (leases.ts): each holding's steps in order
// (onAcquired once its positions are read, then onReleased and the hand-back), the callbacks' time
// bound, and self-fencing.
//
// Self-fencing: a lease is valid until its renewal's PostgreSQL time + leaseMs, and that renewal ran
// after the instance sent it. So once leaseMs - renewMs/2 has passed since the sending of a lease's
// last successful renewal, the instance stops consuming the partition (onReleased) on its own,
// before anyone else can claim it, whatever PostgreSQL's reachability (a watchdog timer, not the
// tick, which may be stuck on a query). The guarantee against a stale owner is the fence, though:
// a commit carries the lease's epoch and rolls back once that epoch is no longer current.
import { performance } from 'node:perf_hooks';
import { within, type LeaseSql } from './lease-sql.js';
import type { LeaseStats, PartitionLeasesOptions, ReleaseReason, ResumePositions } from './lease-types.js';

export type Phase = 'acquiring' | 'owned' | 'releasing';

export interface Holding {
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

export class Holdings {
  readonly held = new Map<number, Holding>();
  private watchdog: NodeJS.Timeout | null = null;

  constructor(
    private readonly sql: LeaseSql,
    private readonly opts: Pick<PartitionLeasesOptions, 'onAcquired' | 'onReleased' | 'log'>,
    /** PartitionLeases' counters (acquired, released, selfFenced, callbackErrors are counted here). */
    private readonly counters: LeaseStats,
    private readonly callbackTimeoutMs: number,
    /** Self-fence this long after a lease's last successful renewal was sent. */
    private readonly fenceAfterMs: number,
    /** A hand-back statement failed: the row may still name this instance. */
    private readonly onHandBackFailed: () => void,
  ) {}

  /**
   * Hold p at `epoch`, claimed with the statement sent at `sentAt`; its first step (onAcquired)
   * waits for the gate returned: the positions to resume from, or undefined (not to be started).
   */
  add(p: number, epoch: number, sentAt: number): (from: ResumePositions | undefined) => void {
    let gate!: (from: ResumePositions | undefined) => void;
    const h: Holding = {
      epoch,
      phase: 'acquiring',
      valid: true,
      renewedAt: sentAt,
      handedBack: false,
      started: false,
      op: Promise.resolve(),
    };
    h.op = new Promise<ResumePositions | undefined>((open) => (gate = open)).then(async (from) => {
      if (from === undefined || h.phase === 'releasing') return;
      h.started = true;
      if (await this.callback(() => this.opts.onAcquired(p, epoch, from), 'onAcquired', p)) {
        if (h.phase === 'acquiring') h.phase = 'owned';
      } else void this.relinquish(p, 'acquire-failed');
    });
    this.held.set(p, h);
    this.counters.acquired++;
    return gate;
  }

  /**
   * Stop consuming p and hand it back: after the holding's earlier steps, onReleased (if onAcquired was called), then (unless
   * lost) owner = NULL guarded by the epoch; the holding is renewed until then (while valid).
   */
  relinquish(p: number, reason: ReleaseReason): Promise<void> {
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
          await this.sql.release(p, h.epoch);
        } catch (err) {
          // the lease expires on its own (and is not renewed any more), or the next tick frees it
          this.onHandBackFailed();
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
    try {
      await within(
        Promise.resolve().then(fn),
        this.callbackTimeoutMs,
        () => new CallbackTimeout(`${what} did not settle within ${this.callbackTimeoutMs} ms`),
      );
      return true;
    } catch (err) {
      this.counters.callbackErrors++;
      this.opts.log.error({ partition: p, err: errText(err) }, `partition leases: ${what} failed`);
      return false;
    }
  }

  /** Arm the self-fencing timer for the valid holding renewed longest ago. */
  armWatchdog(): void {
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

  /** Stop the self-fencing timer (the instance has left). */
  disarm(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
  }
}

const errText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
