import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from '../../ingest/journal/journal.js';

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
});
