// The journal dedups on (vin, boot id, seq): an agent re-installed (spool wiped, seq back at 1) is
// stored, not dropped; repeats within a boot stay duplicates, also after pruning; an old journal.db
// (dedup on (vin, seq)) is migrated in place; the per-vehicle sequence counts missing seqs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DecodedCache } from '../../ingest/journal/decoded-cache.js';
import { Journal, PRUNED_MARK_KEEP_MS } from '../../ingest/journal/journal.js';
import { JOURNAL_VERSION } from '../../ingest/journal/schema.js';
import { advanceSequence, sequenceView, type SequenceRow } from '../../ingest/journal/sequence.js';
import { Database } from '../../ingest/store/sqlite/driver.js';
import { encodeTelemetryBatch } from '../../proto/codec.js';
import type { Reading } from '../../proto/domain.js';

const VIN = 'LSVAU2180N2183294';
const T = Date.parse('2026-03-01T08:00:00Z');
const dirs: string[] = [];
function dir() {
  const d = mkdtempSync(join(tmpdir(), 'journal-boot-'));
  dirs.push(d);
  return d;
}
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

const batch = (seq: number, bootId: string) =>
  Buffer.from(encodeTelemetryBatch({ vin: VIN, bootId, seq, samples: [{ ts: T + seq, signals: {} }], dropped: 0 }));
const add = (j: Journal, seq: number, bootId: string, at = T) => j.append(VIN, seq, batch(seq, bootId), at, bootId);

describe('journal dedup by (vin, boot id, seq)', () => {
  it('stores seq 1 of a new boot after seq 500 of the old one; the same boot repeating seq 1 is a duplicate', async () => {
    const j = new Journal(dir());
    expect(await add(j, 500, 'boot-a')).toBe('new');
    expect(await add(j, 1, 'boot-b')).toBe('new');
    expect(await add(j, 1, 'boot-b')).toBe('duplicate');
    expect(await add(j, 500, 'boot-a')).toBe('duplicate');
    // the same seq of two boots in one group commit: both new
    expect(await Promise.all([add(j, 7, 'boot-c'), add(j, 7, 'boot-d'), add(j, 7, 'boot-c')])).toEqual(['new', 'new', 'duplicate']);
    expect(j.pendingForRules(0, 10).map((e) => [e.bootId, e.seq])).toEqual([
      ['boot-a', 500],
      ['boot-b', 1],
      ['boot-c', 7],
      ['boot-d', 7],
    ]);
    expect(j.has(VIN, 'boot-b', 1)).toBe(true);
    expect(j.has(VIN, 'boot-b', 2)).toBe(false);
    j.close();
  });

  it('after pruning, the high-water mark of each boot still recognises its duplicates, and old marks are forgotten', async () => {
    const j = new Journal(dir());
    for (let seq = 1; seq <= 3; seq++) await add(j, seq, 'boot-a', 100);
    await add(j, 9, 'boot-b', 100);
    const ids = j.pendingForRules(0, 10).map((e) => e.id);
    j.markInfluxDone(ids);
    j.markRulesDone(ids);
    expect(j.prune(200)).toBe(4);
    expect(await add(j, 2, 'boot-a', 300)).toBe('duplicate');
    expect(j.has(VIN, 'boot-a', 3)).toBe(true);
    expect(await add(j, 4, 'boot-a', 300)).toBe('new');
    expect(await add(j, 9, 'boot-b', 300)).toBe('duplicate');
    expect(await add(j, 2, 'boot-c', 300)).toBe('new'); // another boot: its own sequence space
    // a mark with nothing pruned for PRUNED_MARK_KEEP_MS goes (the agent's spool holds 7 days)
    j.prune(200 + PRUNED_MARK_KEEP_MS + 1);
    expect(await add(j, 8, 'boot-b', 400)).toBe('new');
    j.close();
  });

  it('a batch with nothing left to process is journalled as done: dedup and sequence, no work for the loops', async () => {
    const j = new Journal(dir());
    const out = await j.appendBatch({ vin: VIN, bootId: 'b', seq: 1, payload: null, receivedAt: T });
    expect(out).toMatchObject({ result: 'new', sequence: { bootId: 'b', lastSeq: 1, gaps: 0 } });
    expect(j.lag()).toEqual({ total: 1, influx: 0, rules: 0 });
    expect((await j.appendBatch({ vin: VIN, bootId: 'b', seq: 1, payload: null, receivedAt: T })).result).toBe('duplicate');
    j.close();
  });

  it('the decoded cache keeps batches of the same seq from two boots apart', () => {
    const c = new DecodedCache();
    const r = (n: number): Reading[] => [{ vin: VIN, ts: n, signals: {} }];
    const a = r(1);
    const b = r(2);
    c.put(VIN, 1, a, 'boot-a');
    c.put(VIN, 1, b, 'boot-b');
    expect(c.held(VIN, 1, 'boot-a')?.readings).toBe(a);
    expect(c.held(VIN, 1, 'boot-b')?.readings).toBe(b);
    c.done('rules', [{ id: 1, vin: VIN, bootId: 'boot-a', seq: 1, receivedAt: 0, payload: Buffer.alloc(0), influxDone: true }]);
    c.done('influx', [{ id: 1, vin: VIN, bootId: 'boot-a', seq: 1, receivedAt: 0, payload: Buffer.alloc(0), influxDone: true }]);
    expect(c.held(VIN, 1, 'boot-a')).toBeUndefined();
    expect(c.held(VIN, 1, 'boot-b')?.readings).toBe(b);
  });
});

describe('sequence and gaps', () => {
  it('counts the seqs missing right now within a boot; a late batch fills one; a new boot starts a new range', async () => {
    const j = new Journal(dir());
    const seqOf = async (seq: number, bootId: string) =>
      j.appendBatch({ vin: VIN, bootId, seq, payload: batch(seq, bootId), receivedAt: T });
    expect((await seqOf(1, 'a')).sequence).toEqual({ bootId: 'a', lastSeq: 1, gaps: 0 });
    expect(await seqOf(2, 'a')).toMatchObject({ missingAdded: 0, sequence: { lastSeq: 2, gaps: 0 } });
    expect(await seqOf(5, 'a')).toMatchObject({ missingAdded: 2, filled: false, sequence: { lastSeq: 5, gaps: 2 } });
    expect(await seqOf(3, 'a')).toMatchObject({ missingAdded: 0, filled: true, sequence: { lastSeq: 5, gaps: 1 } });
    expect((await seqOf(3, 'a')).result).toBe('duplicate');
    // re-installed: seq back at 1 under a new boot id, no gap for the jump; boot a's hole stays counted
    expect(await seqOf(1, 'b')).toMatchObject({ result: 'new', missingAdded: 0, sequence: { bootId: 'b', lastSeq: 1, gaps: 1 } });
    // a late batch of the previous boot is stored but changes nothing
    expect(await seqOf(4, 'a')).toMatchObject({ result: 'new', sequence: { bootId: 'b', lastSeq: 1, gaps: 1 } });
    expect(await seqOf(3, 'b')).toMatchObject({ missingAdded: 1, sequence: { bootId: 'b', lastSeq: 3, gaps: 2 } });
    expect(j.sequence(VIN)).toEqual({ bootId: 'b', lastSeq: 3, gaps: 2 });
    expect([...j.sequences()]).toEqual([{ vin: VIN, bootId: 'b', lastSeq: 3, gaps: 2 }]);
    expect(j.sequence('WVWZZZ1JZXW000001')).toBeUndefined();
    j.close();
  });

  it('a batch below the lowest seq of its boot extends the range (arrived out of order)', () => {
    let row: SequenceRow | undefined;
    for (const seq of [5, 6, 2]) row = advanceSequence(row, 'a', seq).row;
    expect(sequenceView(row!)).toEqual({ bootId: 'a', lastSeq: 6, gaps: 2 });
    const step = advanceSequence(row, 'a', 3);
    expect(step).toMatchObject({ filled: true, missingAdded: 0 });
    expect(sequenceView(step.row).gaps).toBe(1);
  });
});

// The layout journal.ts created before boot ids counted (user_version 0).
const V0 = `
  CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    vin TEXT NOT NULL, seq INTEGER NOT NULL, received_at INTEGER NOT NULL, payload BLOB NOT NULL,
    influx_done INTEGER NOT NULL DEFAULT 0, rules_done INTEGER NOT NULL DEFAULT 0,
    UNIQUE (vin, seq));
  CREATE INDEX IF NOT EXISTS entries_influx ON entries (influx_done, id);
  CREATE INDEX IF NOT EXISTS entries_rules ON entries (rules_done, id);
  CREATE TABLE IF NOT EXISTS pruned (vin TEXT PRIMARY KEY, max_seq INTEGER NOT NULL);`;

// Version 1: dedup on (vin, boot_id, seq), the payload inline.
const V1 = `
  CREATE TABLE entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    vin TEXT NOT NULL, boot_id TEXT NOT NULL DEFAULT '', seq INTEGER NOT NULL, received_at INTEGER NOT NULL,
    payload BLOB NOT NULL, influx_done INTEGER NOT NULL DEFAULT 0, rules_done INTEGER NOT NULL DEFAULT 0,
    UNIQUE (vin, boot_id, seq));
  CREATE INDEX entries_influx ON entries (influx_done, id);
  CREATE INDEX entries_rules ON entries (rules_done, id);
  CREATE TABLE pruned (
    vin TEXT NOT NULL, boot_id TEXT NOT NULL, max_seq INTEGER NOT NULL, at_ms INTEGER NOT NULL,
    PRIMARY KEY (vin, boot_id)) WITHOUT ROWID;
  CREATE INDEX pruned_at ON pruned (at_ms);
  CREATE TABLE sequences (
    vin TEXT PRIMARY KEY, boot_id TEXT NOT NULL, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,
    received INTEGER NOT NULL, earlier_missing INTEGER NOT NULL, prev_boot_id TEXT, at_ms INTEGER NOT NULL) WITHOUT ROWID;`;

describe('migration of a journal.db of the old layout', () => {
  it('keeps every row with its flags, reads the boot ids from the payloads, dedups them, and carries the id counter on', async () => {
    const d = dir();
    const old = new Database(join(d, 'journal.db'));
    old.exec(V0);
    const ins = old.prepare('INSERT INTO entries (vin, seq, received_at, payload, influx_done, rules_done) VALUES (?, ?, ?, ?, ?, ?)');
    for (let seq = 1; seq <= 6; seq++) ins.run(VIN, seq, T, batch(seq, 'boot-old'), seq <= 2 ? 1 : 0, seq <= 1 ? 1 : 0);
    ins.run('WVWZZZ1JZXW000001', 1, T, Buffer.from('not a batch'), 0, 0);
    old.prepare('DELETE FROM entries WHERE seq = 6 AND vin = ?').run(VIN); // the id counter stays at 7
    old.prepare('INSERT INTO pruned (vin, max_seq) VALUES (?, ?)').run('WVWZZZ1JZXW000002', 40);
    old.close();

    const j = new Journal(d);
    expect(j.lag()).toEqual({ total: 6, influx: 4, rules: 5 });
    const rules = j.pendingForRules(0, 10);
    expect(rules.map((e) => [e.id, e.vin, e.bootId, e.seq])).toEqual([
      [2, VIN, 'boot-old', 2],
      [3, VIN, 'boot-old', 3],
      [4, VIN, 'boot-old', 4],
      [5, VIN, 'boot-old', 5],
      [7, 'WVWZZZ1JZXW000001', '', 1],
    ]);
    expect(rules[0].payload).toEqual(batch(2, 'boot-old'));
    expect(j.pendingForInflux(0, 10).map((e) => e.id)).toEqual([3, 4, 5, 7]);
    // the agent resends a batch journalled before the upgrade: still a duplicate
    expect(await add(j, 3, 'boot-old')).toBe('duplicate');
    expect(await add(j, 1, 'boot-new')).toBe('new');
    // ids go on after the highest ever given (7), so no rule state's journalId skips new entries
    const last = j.pendingForRules(0, 10).at(-1)!;
    expect(last).toMatchObject({ bootId: 'boot-new', seq: 1 });
    expect(last.id).toBeGreaterThan(7);
    j.close();

    const db = new Database(join(d, 'journal.db'));
    expect(db.pragma('user_version', { simple: true })).toBe(JOURNAL_VERSION);
    expect(db.prepare('SELECT vin, boot_id AS bootId, max_seq AS maxSeq FROM pruned').all()).toEqual([
      { vin: 'WVWZZZ1JZXW000002', bootId: '', maxSeq: 40 },
    ]);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name LIKE '%_v0'").all()).toEqual([]);
    db.close();
    // opening again changes nothing
    const again = new Journal(d);
    expect(again.lag().total).toBe(7);
    again.close();
  });

  it('an old journal whose entries were all pruned still carries its id counter on', async () => {
    const d = dir();
    const old = new Database(join(d, 'journal.db'));
    old.exec(V0);
    for (let seq = 1; seq <= 3; seq++)
      old.prepare('INSERT INTO entries (vin, seq, received_at, payload) VALUES (?, ?, ?, ?)').run(VIN, seq, T, batch(seq, 'x'));
    old.exec('DELETE FROM entries');
    old.close();
    const j = new Journal(d);
    await add(j, 1, 'y');
    expect(j.pendingForRules(0, 10).map((e) => e.id)).toEqual([4]);
    j.close();
  });

  it("moves a version-1 journal's payloads to their own table, ids, flags and dedup kept", async () => {
    const d = dir();
    const old = new Database(join(d, 'journal.db'));
    old.exec(V1);
    old.pragma('user_version = 1');
    const ins = old.prepare(
      'INSERT INTO entries (vin, boot_id, seq, received_at, payload, influx_done, rules_done) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    for (let seq = 1; seq <= 4; seq++) ins.run(VIN, 'boot-1', seq, T, batch(seq, 'boot-1'), seq <= 2 ? 1 : 0, seq <= 1 ? 1 : 0);
    ins.run(VIN, 'boot-1', 5, T, Buffer.alloc(0), 1, 1); // every sample dead-lettered
    old.close();

    const j = new Journal(d);
    expect(j.lag()).toEqual({ total: 5, influx: 2, rules: 3 });
    const rules = j.pendingForRules(0, 10);
    expect(rules.map((e) => e.id)).toEqual([2, 3, 4]);
    expect(rules.map((e) => e.payload)).toEqual([batch(2, 'boot-1'), batch(3, 'boot-1'), batch(4, 'boot-1')]);
    expect(await add(j, 5, 'boot-1')).toBe('duplicate');
    expect(await add(j, 6, 'boot-1')).toBe('new');
    const influx = j.pendingForInflux(0, 10);
    expect(influx.map((e) => e.payload)).toEqual([batch(3, 'boot-1'), batch(4, 'boot-1'), batch(6, 'boot-1')]);
    const newId = influx[2].id;
    expect(newId).toBeGreaterThan(5);
    j.close();
    const db = new Database(join(d, 'journal.db'), { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(JOURNAL_VERSION);
    expect(db.prepare('SELECT id FROM payloads ORDER BY id').all()).toEqual([1, 2, 3, 4, newId].map((id) => ({ id })));
    expect((db.prepare('PRAGMA table_info(entries)').all() as { name: string }[]).map((c) => c.name)).not.toContain('payload');
    db.close();
  });

  it('refuses a journal.db newer than this build', () => {
    const d = dir();
    new Journal(d).close();
    const db = new Database(join(d, 'journal.db'));
    db.pragma(`user_version = ${JOURNAL_VERSION + 1}`);
    db.close();
    expect(() => new Journal(d)).toThrow(/newer than this build/);
  });
});
