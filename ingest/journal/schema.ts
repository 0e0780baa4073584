// journal.db's schema and its migrations. PRAGMA user_version records the version: 0 is the first
// layout (created with CREATE TABLE IF NOT EXISTS, dedup on (vin, seq), one pruned high-water mark
// per VIN), 1 dedups on (vin, boot_id, seq) and keeps per-vehicle sequence bookkeeping, 2 keeps the
// payloads in a table of their own.
import { decodeTelemetryBatch } from '../../proto/codec.js';
import type { Database } from '../store/sqlite/driver.js';

export const JOURNAL_VERSION = 2;

const V2 = `
  CREATE TABLE entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    vin TEXT NOT NULL, boot_id TEXT NOT NULL DEFAULT '', seq INTEGER NOT NULL, received_at INTEGER NOT NULL,
    influx_done INTEGER NOT NULL DEFAULT 0, rules_done INTEGER NOT NULL DEFAULT 0,
    UNIQUE (vin, boot_id, seq));
  CREATE INDEX entries_influx ON entries (influx_done, id);
  CREATE INDEX entries_rules ON entries (rules_done, id);
  -- a batch's bytes, apart: each loop's done mark then rewrites the small row above, not a page of
  -- payload (~3 KB a batch; a mark cost 4x as much with it inline). None for an entry journalled done.
  CREATE TABLE payloads (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);
  -- after pruning, a seq at or below max_seq of its boot is still recognised as a duplicate;
  -- at_ms (the newest receipt pruned) lets marks of boots long gone be dropped
  CREATE TABLE pruned (
    vin TEXT NOT NULL, boot_id TEXT NOT NULL, max_seq INTEGER NOT NULL, at_ms INTEGER NOT NULL,
    PRIMARY KEY (vin, boot_id)) WITHOUT ROWID;
  CREATE INDEX pruned_at ON pruned (at_ms);
  -- journal/sequence.ts: the current boot, its seq range, how many of it arrived
  CREATE TABLE sequences (
    vin TEXT PRIMARY KEY, boot_id TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    received INTEGER NOT NULL, earlier_missing INTEGER NOT NULL, prev_boot_id TEXT, at_ms INTEGER NOT NULL) WITHOUT ROWID;`;

/** Bring journal.db to JOURNAL_VERSION, in one transaction. */
export function migrateJournal(db: Database, now: number): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > JOURNAL_VERSION) {
    throw new Error(`journal.db has schema version ${version}, newer than this build knows (${JOURNAL_VERSION}); upgrade odopulse`);
  }
  if (version === JOURNAL_VERSION) return;
  const hasTable = (name: string) => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) !== undefined;
  db.transaction(() => {
    if (!hasTable('entries')) db.exec(V2);
    else if (version === 0) fromV0(db, now, hasTable('pruned'));
    else fromV1(db);
    db.pragma(`user_version = ${JOURNAL_VERSION}`);
  })();
}

/** The boot id inside a journalled payload ('' if it does not decode: only tests journal such). */
function bootIdOf(payload: Buffer): string {
  try {
    return decodeTelemetryBatch(payload).bootId;
  } catch {
    return '';
  }
}

// Version 1 -> 2: the payloads move to their table, ids kept (empty ones, of entries journalled done, are dropped).
function fromV1(db: Database): void {
  db.exec(`
    CREATE TABLE payloads (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);
    INSERT INTO payloads (id, payload) SELECT id, payload FROM entries WHERE length(payload) > 0 ORDER BY id;
    ALTER TABLE entries DROP COLUMN payload;`);
}

// Version 0 -> 2. SQLite cannot drop the old UNIQUE (vin, seq), so the table is rebuilt: every row is
// kept with its id, its done flags and the boot id read from its payload (a batch journalled before
// the upgrade and resent after it is still a duplicate), and the id counter carries on where it was
// (rule states remember journal ids: a reused id would be skipped as already applied). The old
// per-VIN high-water marks are kept under boot id '', which no batch has: they match nothing and are
// dropped with the other old marks (Journal.prune). A batch pruned before the upgrade (received more
// than 3 days earlier) that comes back after it would be journalled again; by then its PUBACK is long
// sent, so the agent has forgotten it.
function fromV0(db: Database, now: number, hasPruned: boolean): void {
  const counter = db.prepare<[], { seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'entries'").get()?.seq ?? 0;
  db.function('odopulse_boot_id_of', { deterministic: true }, (payload: unknown) => bootIdOf(payload as Buffer));
  db.exec(`
    DROP INDEX IF EXISTS entries_influx;
    DROP INDEX IF EXISTS entries_rules;
    ALTER TABLE entries RENAME TO entries_v0;
    ${hasPruned ? 'ALTER TABLE pruned RENAME TO pruned_v0;' : ''}
    ${V2}
    INSERT INTO entries (id, vin, boot_id, seq, received_at, influx_done, rules_done)
      SELECT id, vin, odopulse_boot_id_of(payload), seq, received_at, influx_done, rules_done FROM entries_v0 ORDER BY id;
    INSERT INTO payloads (id, payload) SELECT id, payload FROM entries_v0 WHERE length(payload) > 0 ORDER BY id;
    DROP TABLE entries_v0;`);
  if (hasPruned) {
    db.prepare("INSERT INTO pruned (vin, boot_id, max_seq, at_ms) SELECT vin, '', max_seq, ? FROM pruned_v0").run(now);
    db.exec('DROP TABLE pruned_v0');
  }
  const set = db.prepare("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'entries'").run(counter);
  if (set.changes === 0 && counter > 0) db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('entries', ?)").run(counter);
}
