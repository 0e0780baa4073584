// The accelerated fleet clock: simulated time = start + wall time elapsed x speed-up.
// Rules evaluate time-based prompts against this clock when a simulation runs (docs/contract.md#time).

export interface FleetClock {
  readonly start: number;
  readonly speedup: number;
  /** Current simulated time, epoch ms. */
  now(): number;
  /** Wall milliseconds elapsed since the clock started. */
  wallElapsed(): number;
  /** Wall milliseconds until simulated time reaches `simTs` (0 if already past). */
  wallUntil(simTs: number): number;
}

export function createFleetClock(opts: { start: number; speedup: number; wallNow?: () => number }): FleetClock {
  const { start, speedup } = opts;
  if (!Number.isFinite(start)) throw new RangeError('clock start must be a finite epoch-millisecond time');
  if (!Number.isFinite(speedup) || speedup <= 0) throw new RangeError(`speed-up must be a positive number, got ${speedup}`);
  const wallNow = opts.wallNow ?? (() => performance.now());
  const wall0 = wallNow();
  return {
    start,
    speedup,
    now: () => Math.floor(start + (wallNow() - wall0) * speedup),
    wallElapsed: () => wallNow() - wall0,
    wallUntil: (simTs) => Math.max(0, (simTs - start) / speedup - (wallNow() - wall0)),
  };
}
