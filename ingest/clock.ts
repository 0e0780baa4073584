// The fleet clock. 'wall' in production; 'event' follows the newest event time seen, so a replay or an
// accelerated simulation drives time-based rules (dormant, lapsed, ...) months in minutes.
import type { FleetClock } from '../rules/types.js';

export interface IngestClock extends FleetClock {
  /** Tell the clock about a reading's event time. */
  observe(ts: number): void;
  readonly mode: 'wall' | 'event';
}

export function createClock(mode: 'wall' | 'event', wall: () => number = Date.now): IngestClock {
  let newest = 0;
  return {
    mode,
    observe(ts) {
      if (ts > newest) newest = ts;
    },
    now: () => (mode === 'wall' ? wall() : newest || wall()),
  };
}
