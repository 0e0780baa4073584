// Per-vehicle sequence bookkeeping of the journal: which boot a vehicle's batches come from, the
// highest seq of that boot, and how many seqs are missing (docs/contract.md#telemetry-batch).
//
// A boot id is a sequence space of its own. Within the current boot, the seqs between the lowest and
// the highest journalled one that were never journalled are missing: a batch that skipped ahead adds
// to it, a late batch that fills a hole takes one off. A batch of another boot id starts a new range
// (the jump between boots is no gap) and the old boot's count stays as it was; a late batch of the
// previous boot changes nothing. `gaps` = what is missing right now, summed over the vehicle's boots.

/** The stored state (journal.db `sequences`, one row per VIN). */
export interface SequenceRow {
  bootId: string;
  firstSeq: number;
  lastSeq: number;
  /** Batches of this boot journalled (each seq once). */
  received: number;
  /** Seqs still missing in the vehicle's earlier boots. */
  earlierMissing: number;
  prevBootId: string | null;
}

/** What the API shows of it (GET /api/v1/vehicles/{vin} `sequence`). */
export interface SequenceView {
  bootId: string;
  lastSeq: number;
  gaps: number;
}

export interface SequenceStep {
  row: SequenceRow;
  /** Seqs found missing by this batch (it skipped ahead, or below the boot's lowest seq). */
  missingAdded: number;
  /** The batch filled a hole of its boot. */
  filled: boolean;
  /** false: a late batch of the previous boot, nothing to store. */
  changed: boolean;
}

const missing = (r: SequenceRow): number => r.lastSeq - r.firstSeq + 1 - r.received;

export function sequenceView(r: SequenceRow): SequenceView {
  return { bootId: r.bootId, lastSeq: r.lastSeq, gaps: r.earlierMissing + missing(r) };
}

/** The state after a batch (`bootId`, `seq`) the journal took as new. */
export function advanceSequence(prev: SequenceRow | undefined, bootId: string, seq: number): SequenceStep {
  const start = (earlierMissing: number, prevBootId: string | null): SequenceStep => ({
    row: { bootId, firstSeq: seq, lastSeq: seq, received: 1, earlierMissing, prevBootId },
    missingAdded: 0,
    filled: false,
    changed: true,
  });
  if (!prev) return start(0, null);
  if (prev.bootId !== bootId) {
    if (prev.prevBootId === bootId) return { row: prev, missingAdded: 0, filled: false, changed: false };
    return start(prev.earlierMissing + missing(prev), prev.bootId);
  }
  const row = { ...prev, received: prev.received + 1 };
  let missingAdded = 0;
  if (seq > prev.lastSeq) {
    missingAdded = seq - prev.lastSeq - 1;
    row.lastSeq = seq;
  } else if (seq < prev.firstSeq) {
    missingAdded = prev.firstSeq - seq - 1;
    row.firstSeq = seq;
  }
  const filled = seq > prev.firstSeq && seq < prev.lastSeq;
  return { row, missingAdded, filled, changed: true };
}
