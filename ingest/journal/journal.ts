// The durable journal: a telemetry batch is PUBACKed only after it is here (or was already here).
// Group commit: appends arriving within a few milliseconds share one transaction, i.e. one fsync,
// and their acks are released together (docs/architecture.md#guarantees; ~230 µs per fsync on these machines).
// Dedup key (vin, boot id, seq): a new boot id is a new sequence space (docs/contract.md#telemetry-batch).
// A commit that fails (a full disk: SQLITE_FULL, an I/O error) is rolled back and rejects its appends
// with a StorageWriteError, so none of them is acknowledged; the next commit simply tries again, and
// storageState() says whether the last write worked (docs/architecture.md#disk-full).
import { WalCheckpointer } from '../store/sqlite/checkpointer.js';
import { Database } from '../store/sqlite/driver.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { migrateJournal } from './schema.js';
import { advanceSequence, sequenceView, type SequenceRow, type SequenceView } from './sequence.js';
import {
  StoredEntry,
  type AppendOutcome,
  type AppendResult,
  type BatchToAppend,
  type EntryRow,
  type Held,
  type JournalEntry,
} from './port.js';
import { StorageStateTracker, type JournalStorageState, type StorageLog } from './storage-state.js';

export type { JournalStorageState } from './storage-state.js';
export type { AppendOutcome, AppendResult, BatchToAppend, Held, HeldEntry, JournalEntry, JournalPort } from './port.js';

export interface JournalOptions {
  /** How long appends wait for others to share their commit (default 2 ms). */
  groupCommitMs?: number;
  /** Told once per change of state (not writable, writable again), never per batch. */
  log?: StorageLog;
  /**
   * WAL checkpoints on a thread of their own, this often (ms; ingest/store/sqlite/checkpointer.ts);
   * unset: SQLite checkpoints in the commit that crosses its threshold, on this thread.
   */
  walCheckpointMs?: number;
}

interface Pending {
  vin: string;
  bootId: string;
  seq: number;
  payload: Buffer | null;
  receivedAt: number;
  resolve(r: AppendOutcome): void;
  reject(e: Error): void;
}

interface SequenceDbRow {
  boot_id: string;
  first_seq: number;
  last_seq: number;
  received: number;
  earlier_missing: number;
  prev_boot_id: string | null;
}

const DUPLICATE: AppendOutcome = { result: 'duplicate', missingAdded: 0, filled: false };
const DAY = 86_400_000;
/** High-water marks of a boot are kept this long after its last pruned batch (the agent's spool holds 7 days). */
export const PRUNED_MARK_KEEP_MS = 30 * DAY;
const ENTRY_COLUMNS = 'id, vin, boot_id AS bootId, seq, received_at AS receivedAt, influx_done AS influxDone';

const toRow = (r: SequenceDbRow): SequenceRow => ({
  bootId: r.boot_id,
  firstSeq: r.first_seq,
  lastSeq: r.last_seq,
  received: r.received,
  earlierMissing: r.earlier_missing,
  prevBootId: r.prev_boot_id,
});

export class Journal {
  private readonly db: Database;
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly stmts;
  /** Appends answered as duplicates (already journalled, or below a pruned high-water mark). */
  duplicates = 0;
  /** The sequences table as committed, per VIN seen since the start (fleet-sized). */
  private readonly sequenceCache = new Map<string, SequenceRow>();
  private readonly groupCommitMs: number;
  private readonly storage: StorageStateTracker;
  private closed = false;
  /** Checkpoints the WAL off this thread, when asked for (JournalOptions.walCheckpointMs). */
  readonly checkpointer: WalCheckpointer | undefined;
  /**
   * Entries in all and still to do per loop: counted once at open, then kept by each committed
   * write (this process owns the journal), so lag() costs nothing on every loop step and /healthz.
   */
  private readonly counts: { total: number; influx: number; rules: number };
  /** Inserted by the commit under way (applied to `counts` only once it commits). */
  private inserted = { total: 0, pending: 0 };

  /** `opts` as a number: groupCommitMs. */
  constructor(dataDir: string, opts: JournalOptions | number = {}) {
    const o = typeof opts === 'number' ? { groupCommitMs: opts } : opts;
    this.groupCommitMs = o.groupCommitMs ?? 2;
    this.storage = new StorageStateTracker(o.log);
    mkdirSync(dataDir, { recursive: true });
    this.db = new Database(join(dataDir, 'journal.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    // another connection may share the file (the checkpointer's): wait out a lock, do not fail an append on it
    this.db.pragma('busy_timeout = 5000');
    migrateJournal(this.db, Date.now());
    if (o.walCheckpointMs !== undefined)
      this.checkpointer = new WalCheckpointer(this.db, {
        everyMs: o.walCheckpointMs,
        onError: (message) => o.log?.warn({ err: message }, 'journal WAL checkpoint failed'),
      });
    const db = this.db;
    this.stmts = {
      insert: db.prepare(
        'INSERT OR IGNORE INTO entries (vin, boot_id, seq, received_at, influx_done, rules_done) VALUES (?, ?, ?, ?, ?, ?)',
      ),
      insertPayload: db.prepare('INSERT INTO payloads (id, payload) VALUES (?, ?)'),
      has: db.prepare<[string, string, number], { x: number }>('SELECT 1 AS x FROM entries WHERE vin = ? AND boot_id = ? AND seq = ?'),
      pruned: db.prepare<[string, string], { max_seq: number }>('SELECT max_seq FROM pruned WHERE vin = ? AND boot_id = ?'),
      sequence: db.prepare<[string], SequenceDbRow>('SELECT * FROM sequences WHERE vin = ?'),
      sequences: db.prepare<[], SequenceDbRow & { vin: string }>('SELECT * FROM sequences'),
      setSequence: db.prepare(
        `INSERT INTO sequences (vin, boot_id, first_seq, last_seq, received, earlier_missing, prev_boot_id, at_ms)
         VALUES (@vin, @bootId, @firstSeq, @lastSeq, @received, @earlierMissing, @prevBootId, @at)
         ON CONFLICT (vin) DO UPDATE SET boot_id = excluded.boot_id, first_seq = excluded.first_seq, last_seq = excluded.last_seq,
         received = excluded.received, earlier_missing = excluded.earlier_missing, prev_boot_id = excluded.prev_boot_id, at_ms = excluded.at_ms`,
      ),
      influxPending: db.prepare(`SELECT ${ENTRY_COLUMNS} FROM entries WHERE influx_done = 0 AND id > ? ORDER BY id LIMIT ?`),
      rulesPending: db.prepare(`SELECT ${ENTRY_COLUMNS} FROM entries WHERE rules_done = 0 AND id > ? ORDER BY id LIMIT ?`),
      payload: db.prepare<[number], { payload: Buffer }>('SELECT payload FROM payloads WHERE id = ?'),
      // `AND … = 0`: a mark that changes a row is one fewer to do (the counts below)
      markInflux: db.prepare('UPDATE entries SET influx_done = 1 WHERE id = ? AND influx_done = 0'),
      markRules: db.prepare('UPDATE entries SET rules_done = 1 WHERE id = ? AND rules_done = 0'),
      syncNormal: db.prepare('PRAGMA synchronous = NORMAL'),
      syncFull: db.prepare('PRAGMA synchronous = FULL'),
      counts: db.prepare<[], { total: number; influx: number; rules: number }>(
        'SELECT count(*) AS total, coalesce(sum(influx_done = 0), 0) AS influx, coalesce(sum(rules_done = 0), 0) AS rules FROM entries',
      ),
    };
    this.counts = { ...this.stmts.counts.get()! };
  }

  /** Resolves once the batch is durable (fsynced), or known as a duplicate. */
  append(vin: string, seq: number, payload: Uint8Array, receivedAt: number, bootId = ''): Promise<AppendResult> {
    return this.appendBatch({ vin, bootId, seq, payload, receivedAt }).then((o) => o.result);
  }

  /** append, with what the batch told about the vehicle's sequence. */
  appendBatch(b: BatchToAppend): Promise<AppendOutcome> {
    if (this.closed) return Promise.reject(new Error('journal closed'));
    return new Promise((resolve, reject) => {
      const p = b.payload;
      this.queue.push({
        vin: b.vin,
        bootId: b.bootId,
        seq: b.seq,
        payload: p ? Buffer.from(p.buffer, p.byteOffset, p.byteLength) : null,
        receivedAt: b.receivedAt,
        resolve,
        reject,
      });
      if (!this.timer) this.timer = setTimeout(() => this.commit(), this.groupCommitMs);
    });
  }

  /** Already journalled (or below its boot's pruned high-water mark)? */
  has(vin: string, bootId: string, seq: number): boolean {
    const hw = this.stmts.pruned.get(vin, bootId);
    return (hw !== undefined && seq <= hw.max_seq) || this.stmts.has.get(vin, bootId, seq) !== undefined;
  }

  /** A vehicle's boot, last seq and missing seqs (journal/sequence.ts); undefined before its first batch. */
  sequence(vin: string): SequenceView | undefined {
    const r = this.stmts.sequence.get(vin);
    return r && sequenceView(toRow(r));
  }

  /** Every vehicle's sequence state. */
  *sequences(): Iterable<SequenceView & { vin: string }> {
    for (const r of this.stmts.sequences.iterate()) yield { vin: r.vin, ...sequenceView(toRow(r)) };
  }

  private commit(): void {
    this.timer = null;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    let results: AppendOutcome[];
    const touched = new Map<string, { row: SequenceRow; at: number }>();
    this.inserted = { total: 0, pending: 0 };
    try {
      results = this.db.transaction(() => {
        const out = batch.map((p) => this.insert(p, touched));
        // one write per vehicle and commit, of its final state
        for (const [vin, t] of touched) this.stmts.setSequence.run({ vin, ...t.row, at: t.at });
        return out;
      })();
    } catch (err) {
      this.sequenceCache.clear(); // rolled back: it may be ahead of the table
      this.rollback();
      const e = this.storage.failed(err, 'append', batch.length);
      for (const p of batch) p.reject(e);
      return;
    }
    this.storage.wrote('append');
    this.counts.total += this.inserted.total;
    this.counts.influx += this.inserted.pending;
    this.counts.rules += this.inserted.pending;
    for (const [vin, t] of touched) this.sequenceCache.set(vin, t.row);
    for (let i = 0; i < batch.length; i++) {
      if (results[i].result === 'duplicate') this.duplicates++;
      batch[i].resolve(results[i]);
    }
  }

  /** One append inside the commit transaction; `touched`: sequence states this commit changed. */
  private insert(p: Pending, touched: Map<string, { row: SequenceRow; at: number }>): AppendOutcome {
    const { stmts } = this;
    const hw = stmts.pruned.get(p.vin, p.bootId);
    if (hw && p.seq <= hw.max_seq) return DUPLICATE;
    const done = p.payload ? 0 : 1;
    const row = stmts.insert.run(p.vin, p.bootId, p.seq, p.receivedAt, done, done);
    if (row.changes !== 1) return DUPLICATE;
    if (p.payload) stmts.insertPayload.run(row.lastInsertRowid, p.payload);
    this.inserted.total++;
    if (!done) this.inserted.pending++;
    const step = advanceSequence(touched.get(p.vin)?.row ?? this.storedSequence(p.vin), p.bootId, p.seq);
    if (step.changed) touched.set(p.vin, { row: step.row, at: p.receivedAt });
    return { result: 'new', sequence: sequenceView(step.row), missingAdded: step.missingAdded, filled: step.filled };
  }

  private storedSequence(vin: string): SequenceRow | undefined {
    let row = this.sequenceCache.get(vin);
    if (row === undefined) {
      const r = this.stmts.sequence.get(vin);
      if (r) this.sequenceCache.set(vin, (row = toRow(r)));
    }
    return row;
  }

  /** Entries InfluxDB has not confirmed yet, in id order. `held`: entries the caller has in memory. */
  pendingForInflux(afterId: number, limit: number, held?: Held): JournalEntry[] {
    return this.withPayloads(this.stmts.influxPending.all(afterId, limit) as EntryRow[], held);
  }

  /** Entries the rules have not applied yet, in id order. */
  pendingForRules(afterId: number, limit: number, held?: Held): JournalEntry[] {
    return this.withPayloads(this.stmts.rulesPending.all(afterId, limit) as EntryRow[], held);
  }

  // A held entry's payload is read only if asked for (dead-lettering): reading every blob twice,
  // once per loop, was most of the loops' allocation.
  private withPayloads(rows: EntryRow[], held?: Held): JournalEntry[] {
    const payloadOf = this.stmts.payload;
    return rows.map((r) => {
      const h = held?.(r.vin, r.seq, r.bootId);
      const e = new StoredEntry(r, payloadOf);
      if (h) e.readings = h.readings;
      return e;
    });
  }

  /** Throws a StorageWriteError if the write fails (the entries stay pending; retried by the loop). */
  markInfluxDone(ids: number[]): void {
    if (ids.length > 0) this.counts.influx -= this.write('influx_done', () => this.markAll(this.stmts.markInflux, ids));
  }

  markRulesDone(ids: number[]): void {
    if (ids.length > 0) this.counts.rules -= this.write('rules_done', () => this.markAll(this.stmts.markRules, ids));
  }

  /**
   * Rows changed (marked now, not before), in one transaction with no fsync of its own: a mark lost
   * in a power cut only means the entry is taken again, which both loops take in their stride (the
   * rules skip what a vehicle's committed state already includes, InfluxDB overwrites the same
   * points); the next append's fsync makes it durable anyway (WAL frames are synced in order).
   */
  private markAll(stmt: { run(id: number): { changes: number } }, ids: number[]): number {
    this.stmts.syncNormal.run();
    try {
      return this.db.transaction(() => ids.reduce((n, id) => n + stmt.run(id).changes, 0))();
    } finally {
      this.stmts.syncFull.run();
    }
  }

  /** Whether the last write worked (docs/architecture.md#disk-full); what /healthz and the logs report. */
  storageState(): Readonly<JournalStorageState> {
    return this.storage.state;
  }

  /** storageState().writable */
  journalWritable(): boolean {
    return this.storage.writable;
  }

  private write<T>(what: string, fn: () => T): T {
    let r: T;
    try {
      r = fn();
    } catch (err) {
      this.rollback();
      throw this.storage.failed(err, what, 0);
    }
    this.storage.wrote(what);
    return r;
  }

  /** Nothing of a failed write stays open (better-sqlite3 rolls back; after SQLITE_FULL SQLite may already have). */
  private rollback(): void {
    if (!this.db.inTransaction) return;
    try {
      this.db.exec('ROLLBACK');
    } catch {
      // already rolled back
    }
  }

  lag(): { total: number; influx: number; rules: number } {
    return { ...this.counts };
  }

  /**
   * Drop fully processed entries received before `before`, remembering each boot's highest seq;
   * forget the marks of boots with nothing pruned for PRUNED_MARK_KEEP_MS before `before`.
   */
  prune(before: number): number {
    const removed = this.write('prune', () => this.pruneTx(before));
    this.counts.total -= removed; // only entries done by both loops are pruned
    return removed;
  }

  private pruneTx(before: number): number {
    return this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO pruned (vin, boot_id, max_seq, at_ms)
          SELECT vin, boot_id, max(seq), max(received_at) FROM entries WHERE influx_done = 1 AND rules_done = 1 AND received_at < ?
          GROUP BY vin, boot_id
          ON CONFLICT (vin, boot_id) DO UPDATE SET max_seq = max(max_seq, excluded.max_seq), at_ms = max(at_ms, excluded.at_ms)`,
        )
        .run(before);
      this.db.prepare('DELETE FROM pruned WHERE at_ms < ?').run(before - PRUNED_MARK_KEEP_MS);
      this.db
        .prepare('DELETE FROM payloads WHERE id IN (SELECT id FROM entries WHERE influx_done = 1 AND rules_done = 1 AND received_at < ?)')
        .run(before);
      return this.db.prepare('DELETE FROM entries WHERE influx_done = 1 AND rules_done = 1 AND received_at < ?').run(before).changes;
    })();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.commit();
    // whichever connection closes last checkpoints what is left and removes the WAL
    void this.checkpointer?.close();
    this.db.close();
  }
}
