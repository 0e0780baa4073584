// Readings decoded at the broker, held for the two journal loops.
import type { Reading } from '../../proto/domain.js';
import type { HeldEntry, JournalEntry } from './journal.js';

const INFLUX = 1;
const keyOf = (vin: string, bootId: string, seq: number): string => `${vin}\u0000${bootId}\u0000${seq}`;
const RULES = 2;

/**
 * Readings decoded at the broker, kept for the two journal loops so a batch is decoded once, not
 * three times. Only an optimisation: an entry missing here (evicted, or journalled before a
 * restart) is decoded again from its journalled payload, which stays the source of truth.
 */
export class DecodedCache {
  private readonly map = new Map<string, { readings: Reading[]; pending: number }>();
  private heldReadings = 0;

  /** `maxReadings` bounds memory while a loop is behind (e.g. InfluxDB down): oldest go first. 400,000 (~95 MB of 11-signal readings) is four times back-pressure's default high-water mark (ODOPULSE_BACKLOG_READINGS, docs/architecture.md#back-pressure), room for what vehicles had in flight when it closed, so under overload a batch is still decoded once. */
  constructor(private readonly maxReadings = 400_000) {}

  /** A batch the journal took as new: both loops will want it. Keyed like the journal: (vin, boot id, seq). */
  put(vin: string, seq: number, readings: Reading[], bootId = ''): void {
    const key = keyOf(vin, bootId, seq);
    this.drop(key);
    this.map.set(key, { readings, pending: INFLUX | RULES });
    this.heldReadings += readings.length;
    while (this.heldReadings > this.maxReadings) {
      const first = this.map.keys().next();
      if (first.done) break;
      this.drop(first.value);
    }
  }

  /** For Journal.pendingFor*: the batch's readings when held here. */
  readonly held = (vin: string, seq: number, bootId = ''): HeldEntry => this.map.get(keyOf(vin, bootId, seq));

  /** The loop is done with these entries for good (marked done in the journal). */
  done(loop: 'influx' | 'rules', entries: JournalEntry[]): void {
    const bit = loop === 'influx' ? INFLUX : RULES;
    for (const e of entries) {
      const key = keyOf(e.vin, e.bootId ?? '', e.seq);
      const c = this.map.get(key);
      if (!c) continue;
      c.pending &= ~bit;
      if (c.pending === 0) this.drop(key);
    }
  }

  get size(): { batches: number; readings: number } {
    return { batches: this.map.size, readings: this.heldReadings };
  }

  private drop(key: string): void {
    const c = this.map.get(key);
    if (!c) return;
    this.heldReadings -= c.readings.length;
    this.map.delete(key);
  }
}
