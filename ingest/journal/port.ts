// The journal's port (what ingest uses of a journal: the SQLite one, journal.ts, or cluster mode's,
// ingest/cluster/cluster-journal.ts) and its entries, apart from either implementation.
import type { Reading } from '../../proto/domain.js';
import type { SequenceView } from './sequence.js';
import type { JournalStorageState } from './storage-state.js';

export interface JournalEntry {
  id: number;
  vin: string;
  /** The batch's boot id; '' (or absent) for entries made without one. */
  bootId?: string;
  seq: number;
  receivedAt: number;
  payload: Buffer;
  influxDone: boolean;
  /** The payload's readings when the pipeline still holds them decoded (saves decoding it again). */
  readings?: Reading[];
}

export type AppendResult = 'new' | 'duplicate';

export interface AppendOutcome {
  result: AppendResult;
  /** The vehicle's sequence state after a new batch (undefined for a duplicate). */
  sequence?: SequenceView;
  /** Seqs this batch found missing in its boot (it skipped ahead). */
  missingAdded: number;
  /** The batch filled a hole of its boot (it arrived late). */
  filled: boolean;
}

export interface BatchToAppend {
  vin: string;
  bootId: string;
  seq: number;
  /** null: nothing of the batch is kept (every sample dead-lettered): journalled as done, for dedup and gaps. */
  payload: Uint8Array | null;
  receivedAt: number;
}

/** What a caller already holds of an entry (the pipeline's decoded batches). */
export type HeldEntry = { readings: Reading[] } | undefined;
export type Held = (vin: string, seq: number, bootId: string) => HeldEntry;

/** A journal row without its payload (the loops read payloads only when needed). */
export interface EntryRow {
  id: number;
  vin: string;
  bootId: string;
  seq: number;
  receivedAt: number;
  influxDone: number;
}

const NOTHING = Buffer.alloc(0);

/** A journal row; its payload is read from the journal when first asked for. */
export class StoredEntry implements JournalEntry {
  readonly id: number;
  readonly vin: string;
  readonly bootId: string;
  readonly seq: number;
  readonly receivedAt: number;
  readonly influxDone: boolean;
  readings?: Reading[];
  private blob: Buffer | undefined;

  constructor(
    r: EntryRow,
    private readonly payloadOf: { get(id: number): { payload: Buffer } | undefined },
  ) {
    this.id = r.id;
    this.vin = r.vin;
    this.bootId = r.bootId;
    this.seq = r.seq;
    this.receivedAt = r.receivedAt;
    this.influxDone = r.influxDone === 1;
  }

  get payload(): Buffer {
    // an entry journalled done (every sample dead-lettered) has no payload row
    return (this.blob ??= this.payloadOf.get(this.id)?.payload ?? NOTHING);
  }
}

/**
 * What the inbound handlers, the pipeline and main use of a journal: the SQLite one above, or
 * cluster mode's over the JetStream partitions (ingest/cluster/cluster-journal.ts).
 */
export interface JournalPort {
  appendBatch(b: BatchToAppend): Promise<AppendOutcome>;
  has(vin: string, bootId: string, seq: number): boolean;
  sequences(): Iterable<SequenceView & { vin: string }>;
  pendingForRules(afterId: number, limit: number, held?: Held): JournalEntry[];
  pendingForInflux(afterId: number, limit: number, held?: Held): JournalEntry[];
  markRulesDone(ids: number[]): void;
  markInfluxDone(ids: number[]): void;
  lag(): { total: number; influx: number; rules: number };
  storageState(): Readonly<JournalStorageState>;
  journalWritable(): boolean;
  prune(before: number): number;
  close(): void | Promise<void>;
}
