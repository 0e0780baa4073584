// Back-pressure at the door (docs/architecture.md#back-pressure): while ingest's loops are further
// behind than the high-water mark, a journalled batch's PUBACK waits until they are back under the
// low-water mark. The broker then reads no more from that vehicle (aedes reads a client's next packets once
// its current ones are done; the external adapter's AckWindow stops reading at Receive Maximum), so
// the excess stays in the vehicles' spools instead of piling up here, where an overloaded process
// spent its time decoding again what its cache had to drop (measured: bench/README.md#back-pressure).
// What an InfluxDB outage left behind does not count (Pipeline.backlogReadings): the journal absorbs
// it, and new telemetry (and the alerts it carries) must not wait for InfluxDB to catch up.
import type { Metrics } from '../metrics.js';

export interface BacklogGateOptions {
  /** Readings the loops have still to take (Pipeline.backlogReadings). */
  backlog: () => number;
  /** Close at this backlog (readings); 0 = never. */
  high: number;
  /** Open again under this backlog (default 60 % of high). */
  low?: number;
  /**
   * Open after at most this long whatever the backlog (default 5 s): a PUBACK held longer would
   * cost the vehicle its connection (the broker reads none of its packets meanwhile, not even a
   * PINGREQ; the agent's keep-alive is 30 s) and a stuck loop must not stop the intake.
   */
  maxHoldMs?: number;
  /** How often a closed gate looks at the backlog again (default 5 ms). */
  pollMs?: number;
  /** A batch's PUBACK is held (counted). */
  onHold?: () => void;
  /** The gate closed or opened; `forced`: it opened because maxHoldMs was reached. */
  onChange?: (closed: boolean, forced: boolean) => void;
}

export class BacklogGate {
  private opened: Promise<void> | undefined;
  private readonly low: number;
  private readonly maxHoldMs: number;
  private readonly pollMs: number;

  constructor(private readonly o: BacklogGateOptions) {
    this.low = o.low ?? Math.floor(o.high * 0.6);
    this.maxHoldMs = o.maxHoldMs ?? 5000;
    this.pollMs = o.pollMs ?? 5;
  }

  get closed(): boolean {
    return this.opened !== undefined;
  }

  /**
   * Undefined when the batch may be acknowledged now (no promise in the common case); else a
   * promise that resolves once the gate opens. Every batch waiting shares that one promise.
   */
  hold(): Promise<void> | undefined {
    if (!this.opened) {
      if (this.o.high <= 0 || this.o.backlog() < this.o.high) return undefined;
      this.opened = this.waitForLowWater();
      this.o.onChange?.(true, false);
    }
    this.o.onHold?.();
    return this.opened;
  }

  private waitForLowWater(): Promise<void> {
    const since = Date.now();
    return new Promise<void>((resolve) => {
      const t = setInterval(() => {
        const forced = Date.now() - since >= this.maxHoldMs;
        if (!forced && this.o.backlog() >= this.low) return;
        clearInterval(t);
        this.opened = undefined;
        this.o.onChange?.(false, forced);
        resolve();
      }, this.pollMs);
      t.unref(); // a process that stops does not wait for its gate
    });
  }
}

/** The gate ingest runs with (ODOPULSE_BACKLOG_READINGS), counted in its metrics; undefined when off. */
export function backlogGate(
  high: number,
  loops: { backlogReadings(): number },
  metrics: Pick<Metrics, 'backpressureHolds' | 'backpressureClosed' | 'backpressureForced'>,
): BacklogGate | undefined {
  if (high <= 0) return undefined;
  return new BacklogGate({
    high,
    backlog: () => loops.backlogReadings(),
    onHold: () => metrics.backpressureHolds.inc(),
    onChange: (closed, forced) => {
      metrics.backpressureClosed.set(closed ? 1 : 0);
      if (forced) metrics.backpressureForced.inc();
    },
  });
}
