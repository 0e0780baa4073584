import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from '../../ingest/journal/journal.js';
import { Database } from '../../ingest/store/sqlite/driver.js';

const VIN = 'LSVAU2180N2183294';
const dirs: string[] = [];
function dir() {
  const d = mkdtempSync(join(tmpdir(), 'journal-'));
  dirs.push(d);
  return d;
}
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('journal', () => {
  it('deduplicates by vehicle + seq, also within one group commit', async () => {
    const j = new Journal(dir());
    const r = await Promise.all([
      j.append(VIN, 1, Buffer.from('a'), 1),
      j.append(VIN, 1, Buffer.from('a'), 1),
      j.append(VIN, 2, Buffer.from('b'), 1),
      j.append('WVWZZZ1JZXW000001', 1, Buffer.from('c'), 1),
    ]);
    expect(r).toEqual(['new', 'duplicate', 'new', 'new']);
    expect(await j.append(VIN, 2, Buffer.from('b'), 2)).toBe('duplicate');
    expect(j.duplicates).toBe(2);
    j.close();
  });

  it('keeps entries across a reopen until both stages are done, in arrival order', async () => {
    const d = dir();
    let j = new Journal(d);
    for (let seq = 1; seq <= 5; seq++) await j.append(VIN, seq, Buffer.from([seq]), seq);
    j.markInfluxDone([1, 2]);
    j.markRulesDone([1]);
    j.close();
    j = new Journal(d);
    expect(j.pendingForInflux(0, 10).map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(j.pendingForRules(0, 10).map((e) => e.seq)).toEqual([2, 3, 4, 5]);
    expect(j.pendingForRules(0, 10)[0].payload).toEqual(Buffer.from([2]));
    expect(j.lag()).toEqual({ total: 5, influx: 3, rules: 4 });
    j.close();
  });

  it('marks without an fsync of their own, appends still with one (synchronous FULL again after each mark)', async () => {
    const j = new Journal(dir());
    const db = (j as unknown as { db: { pragma(p: string, o: { simple: true }): unknown } }).db;
    const FULL = 2;
    await j.append(VIN, 1, Buffer.from('a'), 1);
    expect(db.pragma('synchronous', { simple: true })).toBe(FULL);
    j.markInfluxDone([1]);
    j.markRulesDone([1]);
    j.markRulesDone([1]); // nothing left to change: still restored
    expect(db.pragma('synchronous', { simple: true })).toBe(FULL);
    await j.append(VIN, 2, Buffer.from('b'), 2);
    expect(j.lag()).toEqual({ total: 2, influx: 1, rules: 1 });
    j.close();
  });

  it('after pruning, an old seq is still recognised as a duplicate', async () => {
    const j = new Journal(dir());
    for (let seq = 1; seq <= 3; seq++) await j.append(VIN, seq, Buffer.from([seq]), 100);
    j.markInfluxDone([1, 2, 3]);
    j.markRulesDone([1, 2, 3]);
    expect(j.prune(200)).toBe(3);
    expect(j.lag().total).toBe(0);
    expect(await j.append(VIN, 2, Buffer.from([2]), 300)).toBe('duplicate');
    expect(await j.append(VIN, 4, Buffer.from([4]), 300)).toBe('new');
    j.close();
  });

  it('keeps payloads apart from the rows the loops mark, and prunes both', async () => {
    const d = dir();
    const j = new Journal(d);
    for (let seq = 1; seq <= 3; seq++) await j.append(VIN, seq, Buffer.from([seq]), 100);
    // every sample dead-lettered: journalled done, with no payload
    await j.appendBatch({ vin: VIN, bootId: '', seq: 4, payload: null, receivedAt: 100 });
    await j.append(VIN, 5, Buffer.from([5]), 300);
    j.markInfluxDone([1, 2, 3, 5]);
    j.markRulesDone([1, 2]);
    expect(j.pendingForRules(0, 10).map((e) => [e.seq, [...e.payload]])).toEqual([
      [3, [3]],
      [5, [5]],
    ]);
    expect(j.prune(200)).toBe(3); // seqs 1, 2 and 4; 3 still to do for the rules, 5 too recent
    const db = new Database(join(d, 'journal.db'), { readonly: true });
    try {
      expect(db.prepare('SELECT id FROM payloads ORDER BY id').all()).toEqual([{ id: 3 }, { id: 5 }]);
      expect((db.prepare('PRAGMA table_info(entries)').all() as { name: string }[]).map((c) => c.name)).not.toContain('payload');
    } finally {
      db.close();
    }
    expect(j.pendingForRules(0, 10)[0].payload).toEqual(Buffer.from([3]));
    j.close();
  });
});

describe('journal lag is kept by counters, not counted per call', () => {
  it('matches a fresh count after appends, duplicates, marks (twice too), prunes and a reopen', async () => {
    const d = dir();
    const j = new Journal(d);
    const counted = () => {
      // a second handle on the same file counts the table at open
      const k = new Journal(d);
      try {
        return k.lag();
      } finally {
        k.close();
      }
    };
    let rnd = 7;
    const next = (n: number) => {
      rnd = (Math.imul(rnd ^ (rnd >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0; // a small seeded mix
      return rnd % n;
    };
    const payload = Buffer.from('x');
    let most = 0;
    for (let round = 0; round < 30; round++) {
      // appends: new ones and repeats of earlier seqs (duplicates)
      await Promise.all(
        Array.from({ length: 20 }, () => j.append(`LVIN${String(next(5)).padStart(13, '0')}`, next(200), payload, 1000 + round, 'b')),
      );
      const influx = j.pendingForInflux(0, 1000).map((e) => e.id);
      const rules = j.pendingForRules(0, 1000).map((e) => e.id);
      j.markInfluxDone(influx.filter(() => next(2) === 0));
      j.markRulesDone(rules.filter(() => next(3) === 0));
      j.markRulesDone(rules.slice(0, 3)); // marked again: no change, no double count
      if (round % 10 === 9) j.prune(1000 + round);
      expect(j.lag()).toEqual(counted());
      most = Math.max(most, j.lag().influx);
    }
    expect(most, 'entries pending at some point (the test exercised something)').toBeGreaterThan(10);
    j.close();
  });
});
