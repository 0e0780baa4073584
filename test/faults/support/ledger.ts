// What the fault cases compare: the exact set of (vin, boot id, seq) the vehicles produced against
// the set found in InfluxDB. Each sample's timestamp encodes its batch (T0 + seq·STEP + i·1 s per
// boot slot), so the stored set is read back from the sample times alone, with no extra field.
import { encodeTelemetryBatch } from '../../../proto/codec.js';
import { VSS } from '../../../proto/signals.js';
import { influxQuery } from '../../support/influxd.js';

export const SAMPLES_PER_BATCH = 2;
/** Slot of one batch on the time axis: its samples are 1 s apart. */
const STEP_MS = SAMPLES_PER_BATCH * 1000;
/** Room for this many batches per boot id, so boots do not overlap in time. */
const SEQS_PER_BOOT = 1_000_000;

export interface LedgerOptions {
  /** Start of the time axis: a few hours back, inside retention and never in the future. */
  t0?: number;
  /** Boot ids in the order used; a batch's boot is its index here. */
  boots?: string[];
}

export class Ledger {
  readonly t0: number;
  readonly boots: string[];
  /** `${vin}/${boot}/${seq}` of every batch some vehicle got a PUBACK for. */
  readonly acked = new Set<string>();

  constructor(o: LedgerOptions = {}) {
    this.t0 = o.t0 ?? Date.now() - 12 * 3600_000;
    this.boots = o.boots ?? ['boot-a'];
    // 1,000,000 batches × 2 s = 23 days per boot: keep the axis in the past
    if (this.t0 + this.boots.length * SEQS_PER_BOOT * STEP_MS > Date.now() + 365 * 86_400_000)
      throw new Error('ledger time axis would run into the future');
  }

  sampleTs(bootIndex: number, seq: number, i: number): number {
    return this.t0 + (bootIndex * SEQS_PER_BOOT + seq) * STEP_MS + i * 1000;
  }

  /** The encoded TelemetryBatch of (vin, boot, seq), always the same bytes. */
  batch(vin: string, bootIndex: number, seq: number, extra: { dtcs?: string[]; soc?: number } = {}): Buffer {
    const samples = Array.from({ length: SAMPLES_PER_BATCH }, (_, i) => ({
      ts: this.sampleTs(bootIndex, seq, i),
      signals: { [VSS.soc]: extra.soc ?? 60 + (seq % 30), [VSS.speed]: 0 },
      dtcs: i === 0 ? extra.dtcs : undefined,
    }));
    return Buffer.from(encodeTelemetryBatch({ vin, bootId: this.boots[bootIndex], seq, dropped: 0, samples }));
  }

  key(vin: string, bootIndex: number, seq: number): string {
    return `${vin}/${this.boots[bootIndex]}/${seq}`;
  }

  /** Batches whose every sample is in InfluxDB, as `${vin}/${boot}/${seq}` (a partly stored batch is not counted). */
  async stored(influxUrl: string, db: string): Promise<Set<string>> {
    const res = await influxQuery(influxUrl, db, `SELECT "${VSS.soc}" FROM "telemetry" WHERE time >= ${this.t0}ms GROUP BY "vin"`);
    const perBatch = new Map<string, number>();
    for (const s of res.results?.[0]?.series ?? []) {
      const vin = s.tags?.vin ?? '';
      for (const [t] of s.values) {
        const slot = Math.floor((Number(t) - this.t0) / STEP_MS);
        const boot = Math.floor(slot / SEQS_PER_BOOT);
        const k = `${vin}/${this.boots[boot] ?? `boot#${boot}`}/${slot % SEQS_PER_BOOT}`;
        perBatch.set(k, (perBatch.get(k) ?? 0) + 1);
      }
    }
    return new Set([...perBatch].filter(([, n]) => n === SAMPLES_PER_BATCH).map(([k]) => k));
  }

  /** Produced (acked) but not stored. */
  lost(stored: Set<string>): string[] {
    return [...this.acked].filter((k) => !stored.has(k)).sort();
  }
}

/** Keys of a set that are in `a` but not in `b`, for a readable assertion message (first 20). */
export function sample(keys: string[]): string {
  return keys.length <= 20 ? keys.join(', ') : `${keys.slice(0, 20).join(', ')} … (${keys.length} in all)`;
}
