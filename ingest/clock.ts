// The fleet clock. 'wall' in production; 'event' follows the fleet's event times, so a replay or an
// accelerated simulation drives time-based rules (dormant, lapsed, ...) months in minutes.
//
// Event mode (docs/domain.md#time) follows a high quantile of the vehicles' newest event times, not
// the maximum: the p90 by nearest rank, so with fewer than 10 vehicles it is the newest of them (a
// fleet of one is its own clock) and with 200 the 20 most advanced vehicles cannot move it on their
// own. It never goes back. The quantile is recomputed lazily (when asked and something changed) by a
// selection, not a sort: on every change for fleets up to 256 vehicles, otherwise at most every
// 100 ms or once per fleet-size observations, so an observation stays O(1).
//
// horizon(): the newest event time a sample arriving now may carry. Wall mode: arrival + skew. Event
// mode: the skew is wall time, converted into event time at the fastest pace the fleet clock has
// been seen to run (event ms per wall ms, measured over spans of at least 1 s, at least 1): a
// simulation at 20,000x may be 20,000 x 600 s ahead of the fleet clock, a replay at 1x only 600 s.
// Until the pace has been measured once (the first second after the first sample, or a fleet that
// has not moved yet) there is nothing to measure against and every time is accepted.
import type { FleetClock } from '../rules/types.js';

export interface IngestClock extends FleetClock {
  /** Tell the clock about a vehicle's newest accepted event time (`vin` omitted: one anonymous vehicle). */
  observe(ts: number, vin?: string): void;
  /** The newest event time a sample may carry that arrived at `arrival` (wall ms); Infinity = no bound yet. */
  horizon(maxSkewMs: number, arrival: number): number;
  readonly mode: 'wall' | 'event';
}

/** Fleets up to this size get their quantile recomputed on every change. */
const SMALL_FLEET = 256;
const RECOMPUTE_MS = 100;
const PACE_SPAN_MS = 1000;
const QUANTILE = 0.9;

export function createClock(mode: 'wall' | 'event', wall: () => number = Date.now): IngestClock {
  if (mode === 'wall') {
    return { mode, observe() {}, horizon: (maxSkewMs, arrival) => arrival + maxSkewMs, now: wall };
  }
  const latest = new Map<string, number>();
  let buf = new Float64Array(0);
  let fleet = 0;
  let dirty = false;
  let sinceRecompute = 0;
  let lastRecompute = -Infinity;
  /** Pace checkpoint: the fleet clock at a wall time. */
  let cpWall = 0;
  let cpFleet = 0;
  /** Fastest measured pace (event ms per wall ms); 0 = not measured yet. */
  let pace = 0;

  function recompute(w: number): void {
    const n = latest.size;
    if (buf.length < n) buf = new Float64Array(Math.max(n, buf.length * 2));
    let i = 0;
    for (const ts of latest.values()) buf[i++] = ts;
    const q = select(buf, n, Math.ceil(QUANTILE * n) - 1);
    if (q > fleet) fleet = q;
    dirty = false;
    sinceRecompute = 0;
    lastRecompute = w;
  }

  function refresh(): number {
    const w = wall();
    if (dirty && (latest.size <= SMALL_FLEET || w - lastRecompute >= RECOMPUTE_MS || sinceRecompute >= latest.size)) recompute(w);
    if (fleet > 0) {
      if (cpFleet === 0) {
        cpWall = w;
        cpFleet = fleet;
      } else if (w - cpWall >= PACE_SPAN_MS && fleet > cpFleet) {
        // an idle span (the fleet clock did not move) is no measurement: the checkpoint stays
        pace = Math.max(pace, (fleet - cpFleet) / (w - cpWall));
        cpWall = w;
        cpFleet = fleet;
      }
    }
    return w;
  }

  return {
    mode,
    observe(ts, vin = '') {
      const prev = latest.get(vin);
      if (prev !== undefined && ts <= prev) return;
      latest.set(vin, ts);
      dirty = true;
      sinceRecompute++;
    },
    horizon(maxSkewMs) {
      refresh();
      if (fleet === 0 || pace === 0) return Infinity;
      return fleet + maxSkewMs * Math.max(1, pace);
    },
    now() {
      const w = refresh();
      return fleet || w;
    },
  };
}

/** The k-th smallest of a[0..n) (Hoare's selection; reorders a). */
export function select(a: Float64Array, n: number, k: number): number {
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const pivot = a[(lo + hi) >>> 1];
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}
