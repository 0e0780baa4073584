// WAL checkpoints on a thread of their own (ingest/store/sqlite/checkpointer.ts): the owner's
// connection no longer checkpoints at SQLite's 1,000 pages (that commit stalled the event loop),
// the thread's checkpoint copies every frame and the WAL is reused after it, nothing is lost, and
// the periodic one runs without being asked.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from '../../ingest/journal/journal.js';
import { openSqliteBackend } from '../../ingest/store/index.js';
import { FAR_AUTOCHECKPOINT_PAGES } from '../../ingest/store/sqlite/checkpointer.js';
import { waitFor } from '../support/wait.js';

const dirs: string[] = [];
function dir() {
  const d = mkdtempSync(join(tmpdir(), 'wal-cp-'));
  dirs.push(d);
  return d;
}
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

const payload = (i: number) => Buffer.alloc(3000, i % 251);
async function fill(j: Journal, from: number, n: number) {
  for (let i = from; i < from + n; i += 100)
    await Promise.all(
      Array.from({ length: 100 }, (_, k) => j.append(`LVIN${String((i + k) % 50).padStart(13, '0')}`, i + k, payload(i + k), 1)),
    );
}

/** The WAL index's frame counts (https://www.sqlite.org/walformat.html: mxFrame at 16, nBackfill at 96; native byte order, little-endian here). */
function walIndex(dbFile: string): { frames: number; backfilled: number } {
  const shm = readFileSync(`${dbFile}-shm`);
  return { frames: shm.readUInt32LE(16), backfilled: shm.readUInt32LE(96) };
}

describe('WAL checkpointer', () => {
  it('checkpoints on its own thread only: every frame copied, the WAL reused after, every entry intact', async () => {
    const d = dir();
    const j = new Journal(d, { walCheckpointMs: 3_600_000 }); // the periodic run never comes in this test
    await fill(j, 0, 1500); // ~4.5 MB: past SQLite's own threshold, below the far bound
    const file = join(d, 'journal.db');
    const before = walIndex(file);
    expect(before.frames).toBeGreaterThan(1000);
    expect(before.frames).toBeLessThan(FAR_AUTOCHECKPOINT_PAGES);
    expect(before.backfilled).toBe(0); // the committing connection did not checkpoint
    const r = await j.checkpointer!.checkpoint();
    expect(r).toEqual({ log: before.frames, checkpointed: before.frames });
    await fill(j, 1500, 100);
    // the next write started the WAL over: the second fill's frames only, not both fills'
    expect(walIndex(file).frames).toBeLessThan(before.frames / 2);
    const pending = j.pendingForRules(0, 10_000);
    expect(pending).toHaveLength(1600);
    expect(pending.every((e) => e.payload.equals(payload(e.seq)))).toBe(true);
    j.close();
    const again = new Journal(d);
    expect(again.lag().total).toBe(1600);
    again.close();
  });

  it('runs every walCheckpointMs without being asked', async () => {
    const d = dir();
    const j = new Journal(d, { walCheckpointMs: 20 });
    await fill(j, 0, 300);
    const file = join(d, 'journal.db');
    const written = walIndex(file).frames;
    // polled, not slept: the assertion is that it happens, whenever the thread gets a core
    await waitFor(() => walIndex(file).backfilled >= written, { timeoutMs: 20_000, intervalMs: 20, what: 'a periodic checkpoint' });
    expect(walIndex(file).backfilled).toBeGreaterThanOrEqual(written);
    j.close();
  });

  it('serves the SQLite store too, and once closed leaves no WAL behind', async () => {
    const d = dir();
    const backend = openSqliteBackend(d, { walCheckpointMs: 3_600_000 });
    for (let i = 0; i < 1500; i++) await backend.deadLetters.add({ topic: 't', clientId: null, reason: 'r', payload: payload(i), at: 1 });
    const file = join(d, 'odopulse.db');
    const w = walIndex(file);
    expect(w.frames).toBeGreaterThan(1000); // SQLite's own threshold would have checkpointed and started over
    expect(w.backfilled).toBe(0);
    await backend.close();
    // the thread's connection may close last: it then checkpoints and removes the WAL
    await waitFor(() => !existsSync(`${file}-wal`), { timeoutMs: 20_000, intervalMs: 20, what: 'the WAL removed' });
    expect(existsSync(`${file}-wal`)).toBe(false);
    const check = openSqliteBackend(d);
    expect(await check.deadLetters.count()).toBe(1500);
    await check.close();
  });
});
