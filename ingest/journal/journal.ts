// The durable journal: a telemetry batch is PUBACKed only after it is here (or was already here).
// Group commit: appends arriving within a few milliseconds share one transaction, i.e. one fsync,
// and their acks are released together (docs/architecture.md#guarantees; ~230 µs per fsync on these machines).
import { Database } from '../store/sqlite/driver.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Reading } from '../../proto/domain.js';

export interface JournalEntry {
  id: number;
  vin: string;
  seq: number;
  receivedAt: number;
  payload: Buffer;
  influxDone: boolean;
  /** The payload's readings when the pipeline still holds them decoded (saves decoding it again). */
  readings?: Reading[];
}

export type AppendResult = 'new' | 'duplicate';

/** What a caller already holds of an entry (the pipeline's decoded batches). */
export type HeldEntry = { readings: Reading[] } | undefined;

/** A journal row without its payload (the loops read payloads only when needed). */
interface EntryRow {
  id: number;
  vin: string;
  seq: number;
  receivedAt: number;
  influxDone: number;
}

interface Pending {
  vin: string;
  seq: number;
  payload: Buffer;
  receivedAt: number;
  resolve(r: AppendResult): void;
  reject(e: Error): void;
}

export class Journal {
  private readonly db: Database;
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly stmts;
  /** Appends answered as duplicates (already journalled, or below a pruned high-water mark). */
  duplicates = 0;

  constructor(
    dataDir: string,
    private readonly groupCommitMs = 2,
  ) {
    mkdirSync(dataDir, { recursive: true });
    this.db = new Database(join(dataDir, 'journal.db'));
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        vin TEXT NOT NULL, seq INTEGER NOT NULL, received_at INTEGER NOT NULL, payload BLOB NOT NULL,
        influx_done INTEGER NOT NULL DEFAULT 0, rules_done INTEGER NOT NULL DEFAULT 0,
        UNIQUE (vin, seq));
      CREATE INDEX IF NOT EXISTS entries_influx ON entries (influx_done, id);
      CREATE INDEX IF NOT EXISTS entries_rules ON entries (rules_done, id);
      -- after pruning, a seq at or below this is still recognised as a duplicate
      CREATE TABLE IF NOT EXISTS pruned (vin TEXT PRIMARY KEY, max_seq INTEGER NOT NULL);`);
    this.stmts = {
      insert: this.db.prepare('INSERT OR IGNORE INTO entries (vin, seq, received_at, payload) VALUES (?, ?, ?, ?)'),
      pruned: this.db.prepare<[string], { max_seq: number }>('SELECT max_seq FROM pruned WHERE vin = ?'),
      influxPending: this.db.prepare(
        'SELECT id, vin, seq, received_at AS receivedAt, influx_done AS influxDone FROM entries WHERE influx_done = 0 AND id > ? ORDER BY id LIMIT ?',
      ),
      rulesPending: this.db.prepare(
        'SELECT id, vin, seq, received_at AS receivedAt, influx_done AS influxDone FROM entries WHERE rules_done = 0 AND id > ? ORDER BY id LIMIT ?',
      ),
      payload: this.db.prepare<[number], { payload: Buffer }>('SELECT payload FROM entries WHERE id = ?'),
      markInflux: this.db.prepare('UPDATE entries SET influx_done = 1 WHERE id = ?'),
      markRules: this.db.prepare('UPDATE entries SET rules_done = 1 WHERE id = ?'),
      counts: this.db.prepare<[], { total: number; influx: number; rules: number }>(
        'SELECT count(*) AS total, coalesce(sum(influx_done = 0), 0) AS influx, coalesce(sum(rules_done = 0), 0) AS rules FROM entries',
      ),
    };
  }

  /** Resolves once the batch is durable (fsynced), or known as a duplicate. */
  append(vin: string, seq: number, payload: Uint8Array, receivedAt: number): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({
        vin,
        seq,
        payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
        receivedAt,
        resolve,
        reject,
      });
      if (!this.timer) this.timer = setTimeout(() => this.commit(), this.groupCommitMs);
    });
  }

  private commit(): void {
    this.timer = null;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    let results: AppendResult[];
    try {
      results = this.db.transaction(() =>
        batch.map((p) => {
          const hw = this.stmts.pruned.get(p.vin);
          if (hw && p.seq <= hw.max_seq) return 'duplicate' as const;
          return this.stmts.insert.run(p.vin, p.seq, p.receivedAt, p.payload).changes === 1 ? ('new' as const) : ('duplicate' as const);
        }),
      )();
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
      return;
    }
    for (let i = 0; i < batch.length; i++) {
      if (results[i] === 'duplicate') this.duplicates++;
      batch[i].resolve(results[i]);
    }
  }

  /** Entries InfluxDB has not confirmed yet, in id order. `held`: entries the caller has in memory. */
  pendingForInflux(afterId: number, limit: number, held?: (vin: string, seq: number) => HeldEntry): JournalEntry[] {
    return this.withPayloads(this.stmts.influxPending.all(afterId, limit) as EntryRow[], held);
  }

  /** Entries the rules have not applied yet, in id order. */
  pendingForRules(afterId: number, limit: number, held?: (vin: string, seq: number) => HeldEntry): JournalEntry[] {
    return this.withPayloads(this.stmts.rulesPending.all(afterId, limit) as EntryRow[], held);
  }

  // A held entry's payload is read only if asked for (dead-lettering): reading every blob twice,
  // once per loop, was most of the loops' allocation.
  private withPayloads(rows: EntryRow[], held?: (vin: string, seq: number) => HeldEntry): JournalEntry[] {
    const payloadOf = this.stmts.payload;
    return rows.map((r) => {
      const h = held?.(r.vin, r.seq);
      if (!h)
        return {
          id: r.id,
          vin: r.vin,
          seq: r.seq,
          receivedAt: r.receivedAt,
          payload: payloadOf.get(r.id)!.payload,
          influxDone: r.influxDone === 1,
        };
      let payload: Buffer | undefined;
      return {
        id: r.id,
        vin: r.vin,
        seq: r.seq,
        receivedAt: r.receivedAt,
        influxDone: r.influxDone === 1,
        readings: h.readings,
        get payload(): Buffer {
          return (payload ??= payloadOf.get(r.id)!.payload);
        },
      };
    });
  }

  markInfluxDone(ids: number[]): void {
    this.db.transaction(() => ids.forEach((id) => this.stmts.markInflux.run(id)))();
  }

  markRulesDone(ids: number[]): void {
    this.db.transaction(() => ids.forEach((id) => this.stmts.markRules.run(id)))();
  }

  lag(): { total: number; influx: number; rules: number } {
    return this.stmts.counts.get()!;
  }

  /** Drop fully processed entries received before `before`, remembering each VIN's highest seq. */
  prune(before: number): number {
    return this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO pruned (vin, max_seq)
          SELECT vin, max(seq) FROM entries WHERE influx_done = 1 AND rules_done = 1 AND received_at < ? GROUP BY vin
          ON CONFLICT (vin) DO UPDATE SET max_seq = max(max_seq, excluded.max_seq)`,
        )
        .run(before);
      return this.db.prepare('DELETE FROM entries WHERE influx_done = 1 AND rules_done = 1 AND received_at < ?').run(before).changes;
    })();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.commit();
    this.db.close();
  }
}
