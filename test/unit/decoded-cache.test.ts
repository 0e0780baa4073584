// The pipeline's cache of decoded batches: held until both loops are done, bounded, never required.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Journal } from '../../ingest/journal/journal.js';
import { DecodedCache } from '../../ingest/journal/decoded-cache.js';
import type { Reading } from '../../proto/domain.js';
import type { JournalEntry } from '../../ingest/journal/journal.js';

const VIN = 'LSVAU2180N2183294';
const readings = (n: number): Reading[] => Array.from({ length: n }, (_, i) => ({ vin: VIN, ts: 1_767_225_600_000 + i, signals: {} }));
const entry = (seq: number): JournalEntry => ({ id: seq, vin: VIN, seq, receivedAt: 0, payload: Buffer.alloc(0), influxDone: false });

describe('DecodedCache', () => {
  it('holds a batch until both loops are done with it', () => {
    const c = new DecodedCache();
    const r = readings(3);
    c.put(VIN, 1, r);
    expect(c.held(VIN, 1)?.readings).toBe(r);
    expect(c.held(VIN, 2)).toBeUndefined();
    c.done('influx', [entry(1)]);
    expect(c.held(VIN, 1)?.readings).toBe(r);
    c.done('influx', [entry(1)]);
    expect(c.held(VIN, 1)).toBeDefined();
    c.done('rules', [entry(1), entry(9)]);
    expect(c.held(VIN, 1)).toBeUndefined();
    expect(c.size).toEqual({ batches: 0, readings: 0 });
  });

  it('drops the oldest batches beyond its bound', () => {
    const c = new DecodedCache(10);
    for (let seq = 1; seq <= 5; seq++) c.put(VIN, seq, readings(4));
    expect(c.size).toEqual({ batches: 2, readings: 8 });
    expect(c.held(VIN, 3)).toBeUndefined();
    expect(c.held(VIN, 5)).toBeDefined();
  });
});

describe('Journal.pendingFor* with held entries', () => {
  it('attaches held readings, and still reads the journalled payload when asked', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'decoded-cache-journal-'));
    const j = new Journal(dir);
    try {
      expect(await j.append(VIN, 1, Buffer.from('one'), 10)).toBe('new');
      expect(await j.append(VIN, 2, Buffer.from('two'), 11)).toBe('new');
      const r = readings(2);
      const c = new DecodedCache();
      c.put(VIN, 2, r);
      for (const entries of [j.pendingForInflux(0, 10, c.held), j.pendingForRules(0, 10, c.held)]) {
        expect(entries.map((e) => e.seq)).toEqual([1, 2]);
        expect(entries[0].readings).toBeUndefined();
        expect(entries[0].payload.toString()).toBe('one');
        expect(entries[1].readings).toBe(r);
        expect(entries[1].payload.toString()).toBe('two');
      }
      expect(j.pendingForInflux(0, 10).map((e) => [e.seq, e.payload.toString(), e.readings])).toEqual([
        [1, 'one', undefined],
        [2, 'two', undefined],
      ]);
    } finally {
      j.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
