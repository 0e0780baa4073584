import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Spool } from '../../../agent/spool.js';
import { crc32, encodeRecord, scanRecords } from '../../../agent/spool-format.js';
import type { Sample } from '../../../proto/domain.js';

const T0 = Date.parse('2026-03-01T08:00:00Z');
const plain = (i: number): Sample => ({ ts: T0 + i * 1000, signals: { 'Vehicle.Speed': i % 200, 'Vehicle.TraveledDistance': 1000 + i } });
const fault = (i: number): Sample => ({ ...plain(i), dtcs: ['P0A80'] });

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'spool-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const segFiles = () =>
  fs
    .readdirSync(dir)
    .filter((n) => n.startsWith('seg-'))
    .sort();

describe('spool framing', () => {
  it('crc32 matches the standard check value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });

  it('scan stops at a torn or corrupted record', () => {
    const a = encodeRecord({ seq: 1, bootId: 'b', at: 1, dropped: 0, samples: [plain(1)] });
    const b = encodeRecord({ seq: 2, bootId: 'b', at: 1, dropped: 0, samples: [plain(2)] });
    expect(scanRecords(Buffer.concat([a, b])).records.map((r) => r.record.seq)).toEqual([1, 2]);
    const torn = scanRecords(Buffer.concat([a, b.subarray(0, b.length - 3)]));
    expect(torn.records).toHaveLength(1);
    expect(torn.goodEnd).toBe(a.length);
    const flipped = Buffer.concat([a, b]);
    flipped[flipped.length - 2] ^= 0xff;
    expect(scanRecords(flipped).tornReason).toBe('CRC mismatch');
    expect(scanRecords(Buffer.concat([a, Buffer.from([1, 2, 3])])).tornReason).toBe('short header');
  });

  it("a whole segment (≥ 1 MiB, zlib's crc32) scans the same and stops at the same corrupted record", () => {
    const recs = Array.from({ length: 400 }, (_, i) =>
      encodeRecord({ seq: i + 1, bootId: 'b', at: 1, dropped: 0, samples: Array.from({ length: 40 }, (_, k) => plain(i * 40 + k)) }),
    );
    const seg = Buffer.concat(recs);
    expect(seg.length).toBeGreaterThanOrEqual(1024 * 1024);
    const whole = scanRecords(seg);
    expect(whole.records).toHaveLength(400);
    expect(whole.goodEnd).toBe(seg.length);
    // each record alone takes the JavaScript loop: the same CRCs
    for (const r of whole.records) expect(scanRecords(seg.subarray(r.offset, r.offset + r.length)).records).toHaveLength(1);
    const bad = Buffer.from(seg);
    const at = whole.records[250];
    bad[at.offset + at.length - 5] ^= 0x01;
    const scan = scanRecords(bad);
    expect(scan.tornReason).toBe('CRC mismatch');
    expect(scan.records).toHaveLength(250);
    expect(scan.goodEnd).toBe(at.offset);
  });
});

describe('Spool', () => {
  it('assigns increasing seqs, reads back and forgets acked records', async () => {
    const s = await Spool.open({ dir });
    const r1 = await s.append('boot', [plain(1)]);
    const r2 = await s.append('boot', [plain(2), plain(3)]);
    expect([r1.seq, r2.seq]).toEqual([1, 2]);
    expect(s.read(2)?.samples).toHaveLength(2);
    expect(s.pendingAfter(0, 10)).toEqual([1, 2]);
    s.ack(1);
    expect(s.pendingAfter(0, 10)).toEqual([2]);
    expect(s.stats()).toMatchObject({ pendingRecords: 1, pendingSamples: 2 });
    await s.close();
  });

  it('group-commits concurrent appends and keeps them in order', async () => {
    const s = await Spool.open({ dir, commitDelayMs: 5 });
    const recs = await Promise.all(Array.from({ length: 50 }, (_, i) => s.append('boot', [plain(i)])));
    expect(recs.map((r) => r.seq)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    await s.close();
  });

  it('survives reopen: pending records come back in order and seq keeps increasing', async () => {
    let s = await Spool.open({ dir, segmentBytes: 300 });
    for (let i = 0; i < 10; i++) await s.append('boot1', [plain(i)]);
    for (let seq = 1; seq <= 4; seq++) s.ack(seq);
    await s.close();
    s = await Spool.open({ dir, segmentBytes: 300 });
    expect(s.pendingAfter(0, 100)).toEqual([5, 6, 7, 8, 9, 10]);
    expect(s.read(5)?.bootId).toBe('boot1');
    expect((await s.append('boot2', [plain(11)])).seq).toBe(11);
    for (const seq of s.pendingAfter(0, 100)) s.ack(seq);
    await s.close();
    // Everything acked: the segments are gone but the counter is not reset.
    expect(segFiles()).toEqual([]);
    s = await Spool.open({ dir });
    expect(s.pendingAfter(0, 100)).toEqual([]);
    expect((await s.append('boot3', [plain(12)])).seq).toBe(12);
    await s.close();
  });

  it('without close (kill -9), unacked records are still there after reopen', async () => {
    const s = await Spool.open({ dir });
    for (let i = 0; i < 5; i++) await s.append('boot', [plain(i)]);
    s.ack(1);
    // no close(): simulate a crash by opening a second instance on the same files
    const again = await Spool.open({ dir });
    expect(again.pendingAfter(0, 100)).toEqual(expect.arrayContaining([2, 3, 4, 5]));
    expect((await again.append('boot2', [plain(9)])).seq).toBe(6);
    await again.close();
  });

  it('detects a torn last record (power cut mid-write), skips it and truncates', async () => {
    const logs: string[] = [];
    const s = await Spool.open({ dir });
    for (let i = 0; i < 3; i++) await s.append('boot', [plain(i)]);
    await s.close();
    const [seg] = segFiles();
    const path = join(dir, seg);
    const full = fs.readFileSync(path);
    const extra = encodeRecord({ seq: 4, bootId: 'boot', at: Date.now(), dropped: 0, samples: [plain(4)] });
    fs.writeFileSync(path, Buffer.concat([full, extra.subarray(0, extra.length - 7)]));
    const r = await Spool.open({ dir, log: (m) => logs.push(m) });
    expect(r.pendingAfter(0, 100)).toEqual([1, 2, 3]);
    expect(logs.join('\n')).toMatch(/torn record/);
    expect(fs.statSync(path).size).toBe(full.length);
    expect((await r.append('boot', [plain(5)])).seq).toBe(4);
    await r.close();
    const again = await Spool.open({ dir });
    expect(again.pendingAfter(0, 100)).toEqual([1, 2, 3, 4]);
    expect(again.read(4)?.samples[0].ts).toBe(plain(5).ts);
    await again.close();
  });

  it('a garbage tail (random bytes) is skipped as well', async () => {
    const s = await Spool.open({ dir });
    await s.append('boot', [plain(1)]);
    await s.close();
    const path = join(dir, segFiles()[0]);
    fs.appendFileSync(path, Buffer.from([0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    const r = await Spool.open({ dir });
    expect(r.pendingAfter(0, 10)).toEqual([1]);
    await r.close();
  });

  it('when over its byte bound drops the oldest non-fault samples, never fault samples, and counts them', async () => {
    const logs: string[] = [];
    const s = await Spool.open({ dir, maxBytes: 4000, segmentBytes: 1000, log: (m) => logs.push(m) });
    let faults = 0;
    let reported = 0;
    for (let i = 0; i < 60; i++) {
      const samples = i % 5 === 0 ? [fault(i), plain(i)] : [plain(i), plain(i + 1000)];
      if (i % 5 === 0) faults++;
      reported += (await s.append('boot', samples)).dropped;
    }
    const st = s.stats();
    expect(st.droppedTotal).toBeGreaterThan(0);
    expect(st.bytes).toBeLessThanOrEqual(4000 + 1000);
    // Every fault sample is still in the spool.
    const kept = s.pendingAfter(0, 1000).flatMap((seq) => s.read(seq)!.samples);
    expect(kept.filter((x) => x.dtcs?.length)).toHaveLength(faults);
    expect(st.pendingSamples).toBe(kept.length);
    // Newest records are intact; drops hit the oldest first.
    const seqs = s.pendingAfter(0, 1000);
    expect(seqs.at(-1)).toBe(60);
    expect(s.read(60)!.samples).toHaveLength(2);
    expect(s.read(seqs[0])!.samples.every((x) => x.dtcs?.length)).toBe(true);
    // Accounting: kept + dropped = appended; every drop is reported in some batch's `dropped`.
    expect(kept.length + st.droppedTotal).toBe(120);
    expect(reported + st.droppedUnreported).toBe(st.droppedTotal);
    const next = await s.append('boot', [plain(999)]);
    expect(next.dropped).toBe(st.droppedUnreported);
    expect(logs.join('\n')).toMatch(/dropped \d+ non-fault samples/);
    await s.close();
    // Drop counters survive a restart.
    const r = await Spool.open({ dir, maxBytes: 4000, segmentBytes: 1000 });
    expect(r.stats().droppedTotal).toBeGreaterThanOrEqual(st.droppedTotal);
    await r.close();
  });

  it('keeps fault samples even when they alone exceed the bound', async () => {
    const s = await Spool.open({ dir, maxBytes: 500, segmentBytes: 200 });
    for (let i = 0; i < 20; i++) await s.append('boot', [fault(i)]);
    expect(s.stats().pendingSamples).toBe(20);
    expect(s.stats().droppedTotal).toBe(0);
    await s.close();
  });

  it('drops non-fault samples older than maxAgeMs', async () => {
    let now = T0;
    const s = await Spool.open({ dir, maxAgeMs: 60_000, now: () => now });
    await s.append('boot', [plain(1), fault(2)]);
    await s.append('boot', [plain(3)]);
    now += 120_000;
    await s.append('boot', [plain(4)]);
    expect(s.pendingAfter(0, 10)).toEqual([1, 3]);
    expect(s.read(1)!.samples).toEqual([fault(2)]);
    expect(s.stats().pendingSamples).toBe(2);
    expect(s.stats().droppedTotal).toBe(2);
    await s.close();
  });

  it('removes temp files a crash left mid-rewrite and keeps the intact originals', async () => {
    const s = await Spool.open({ dir });
    await s.append('boot', [plain(1)]);
    await s.close();
    const seg = segFiles()[0];
    fs.writeFileSync(join(dir, `${seg}.tmp`), 'half a rewrite');
    fs.writeFileSync(join(dir, 'state.json.tmp'), '{');
    const r = await Spool.open({ dir });
    expect(r.pendingAfter(0, 10)).toEqual([1]);
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    await r.close();
  });

  it('an ack for a record that was dropped is ignored', async () => {
    const s = await Spool.open({ dir });
    await s.append('boot', [plain(1)]);
    s.ack(42);
    s.ack(1);
    s.ack(1);
    expect(s.stats().pendingRecords).toBe(0);
    await s.close();
  });
});
