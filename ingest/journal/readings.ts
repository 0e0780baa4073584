// A journal entry's readings: the batch as the rules and the InfluxDB writer take it.
import { decodeTelemetryBatch } from '../../proto/codec.js';
import type { Reading, TelemetryBatch } from '../../proto/domain.js';
import type { JournalEntry } from './journal.js';

export function readingsOf(entry: JournalEntry): Reading[] {
  return readingsOfBatch(decodeTelemetryBatch(entry.payload));
}

export function readingsOfBatch(batch: TelemetryBatch): Reading[] {
  return batch.samples.map((s) =>
    s.dtcs ? { vin: batch.vin, ts: s.ts, signals: s.signals, dtcs: s.dtcs } : { vin: batch.vin, ts: s.ts, signals: s.signals },
  );
}
