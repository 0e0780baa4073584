// Points InfluxDB refuses as input, found without reading its messages (docs/architecture.md#influxdb-refusals):
// a chunk whose flush was refused (TelemetryRefusedError) is split in halves, each written and
// flushed on its own, recursively down to single readings; a single reading the server still
// refuses is dead-lettered with the server's reason, everything else is written. This relies on
// two facts: re-writing an identical point is idempotent, and a refusal of one point never hides
// the others (1.x writes the good points of a 400 partial write; they are simply written again).
// An outage while narrowing down (no answer, 5xx, 429, 401, 404) stays an outage: it propagates,
// the caller backs off and retries the whole chunk later, and nothing has been dead-lettered.
import { encodeTelemetryBatch } from '../../proto/codec.js';
import type { Reading } from '../../proto/domain.js';
import type { JournalEntry } from '../journal/journal.js';
import type { Metrics } from '../metrics.js';
import type { Stores } from '../store/ports.js';
import { TelemetryRefusedError } from '../store/telemetry-errors.js';

/** A reading with the journal entry it came from. */
export interface EntryReading {
  entry: JournalEntry;
  reading: Reading;
}

export interface RefusedReading extends EntryReading {
  status: number;
  message: string;
}

type Tags = (vin: string) => Record<string, string>;

/** Write these readings and flush exactly them; rejects as TelemetryStore.flush does. */
export type Submit = (readings: Reading[], tags: Tags) => Promise<void>;

/**
 * Write `items` around what InfluxDB refuses. `refused`: the whole list was just refused (so the
 * first step is to split it). Resolves with the readings written and the ones refused; rejects
 * on anything but a refusal.
 */
export async function writeAroundRefusals(
  submit: Submit,
  items: EntryReading[],
  tags: Tags,
  refused?: TelemetryRefusedError,
): Promise<{ written: number; refused: RefusedReading[] }> {
  const out: RefusedReading[] = [];
  let written = 0;
  const leaf = (item: EntryReading, err: TelemetryRefusedError): void => {
    out.push({ ...item, status: err.status, message: err.serverMessage });
  };
  const visit = async (part: EntryReading[], known?: TelemetryRefusedError): Promise<void> => {
    if (part.length === 0) return;
    let err = known;
    if (!err) {
      try {
        await submit(
          part.map((i) => i.reading),
          tags,
        );
        written += part.length;
        return;
      } catch (e) {
        if (!(e instanceof TelemetryRefusedError)) throw e;
        err = e;
      }
    }
    if (part.length === 1) return leaf(part[0], err);
    const mid = Math.ceil(part.length / 2);
    await visit(part.slice(0, mid));
    await visit(part.slice(mid));
  };
  await visit(items, refused);
  return { written, refused: out };
}

/**
 * The dead letters for refused readings: one per journal entry and reason (topic `telemetry/<vin>`,
 * reason `influx: <server message> (HTTP <status>; ...)`, payload the entry's batch re-encoded with
 * just those samples, as the inbound time screen stores its refusals), counted as `influx_refused`.
 * Written before the caller marks the entries done, so a crash in between repeats a dead letter at
 * worst and never loses one.
 */
export async function deadLetterRefused(stores: Stores, metrics: Metrics, refused: RefusedReading[]): Promise<number> {
  const groups = new Map<string, RefusedReading[]>();
  for (const r of refused) {
    const k = `${r.entry.id}\u0000${r.status}\u0000${r.message}`;
    (groups.get(k) ?? groups.set(k, []).get(k)!).push(r);
  }
  await stores.transaction(async () => {
    for (const rs of groups.values()) {
      const { entry, status, message } = rs[0];
      const samples = rs.map(({ reading: r }) =>
        r.dtcs ? { ts: r.ts, signals: r.signals, dtcs: r.dtcs } : { ts: r.ts, signals: r.signals },
      );
      let payload: Buffer;
      try {
        payload = Buffer.from(encodeTelemetryBatch({ vin: entry.vin, bootId: entry.bootId ?? '', seq: entry.seq, samples, dropped: 0 }));
      } catch {
        // an entry journalled without a boot id cannot be re-encoded as a batch: keep the whole one
        payload = entry.payload;
      }
      const when = rs.map((r) => new Date(r.reading.ts).toISOString());
      await stores.deadLetters.add({
        topic: `telemetry/${entry.vin}`,
        clientId: null,
        reason: `influx: ${message} (HTTP ${status}; ${rs.length} sample(s) of seq ${entry.seq}, boot ${entry.bootId || '-'}: ${when.slice(0, 3).join(', ')}${when.length > 3 ? ', ...' : ''})`,
        payload,
        at: Date.now(),
      });
    }
  });
  metrics.deadLetters.inc({ reason: 'influx_refused' }, groups.size);
  return groups.size;
}
