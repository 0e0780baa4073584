// Store-and-forward spool: every batch is appended (and fdatasync'ed, with group commit) to a
// segment file BEFORE it is sent, and forgotten only after the broker's PUBACK. Bounded by
// bytes and age: the oldest non-fault samples are dropped first, fault samples never.
// The seq counter lives here too, so it keeps increasing across restarts.
import { fs } from './builtins.js';
import { join } from 'node:path';
import type { Sample } from '../proto/domain.js';
import { encodeRecord, fsyncDir, isFaultSample, scanRecords, writeFileDurable, type SpoolRecord } from './spool-format.js';

export type { SpoolRecord } from './spool-format.js';

export interface SpoolOptions {
  dir: string;
  /** Bound on the spool's size on disk (default 64 MiB). */
  maxBytes?: number;
  /** Non-fault samples older than this are dropped (default 7 days). */
  maxAgeMs?: number;
  /** Segment roll size (default 1 MiB); smaller segments free acked space sooner. */
  segmentBytes?: number;
  /** Group-commit window: appends within it share one fdatasync (default 0 = the same event-loop turn). */
  commitDelayMs?: number;
  now?: () => number;
  log?: (msg: string) => void;
}

interface Segment {
  name: string;
  path: string;
  bytes: number;
  /** Pending (unacknowledged) records in this segment. */
  live: number;
}

interface Entry {
  seq: number;
  seg: Segment;
  offset: number;
  length: number;
  at: number;
  samples: number;
  faults: number;
}

interface State {
  lastSeq: number;
  ackedThrough: number;
  droppedTotal: number;
  droppedUnreported: number;
  /** Highest replay source line spooled (see SpoolRecord.src). */
  srcLine: number;
}

export interface SpoolStats {
  pendingRecords: number;
  pendingSamples: number;
  bytes: number;
  droppedTotal: number;
  /** Drops not yet carried by a batch's `dropped` field. */
  droppedUnreported: number;
  lastSeq: number;
  segments: number;
}

const SEG_RE = /^seg-(\d{16})\.log$/;
const segName = (seq: number) => `seg-${String(seq).padStart(16, '0')}.log`;

export class Spool {
  private readonly pending = new Map<number, Entry>(); // insertion order == seq order
  private readonly segments: Segment[] = []; // oldest first
  private active: Segment | undefined;
  private activeFd: number | undefined;
  private state: State = { lastSeq: 0, ackedThrough: 0, droppedTotal: 0, droppedUnreported: 0, srcLine: 0 };
  private waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private commitTimer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  private stateTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private pendingSamples = 0;
  private overBoundLogged = false;
  private lastAgeCheck = -Infinity;
  private readonly maxBytes: number;
  private readonly maxAgeMs: number;
  private readonly segmentBytes: number;
  private readonly commitDelayMs: number;
  private readonly now: () => number;
  private readonly log: (msg: string) => void;

  private constructor(
    readonly dir: string,
    opts: SpoolOptions,
  ) {
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
    this.maxAgeMs = opts.maxAgeMs ?? 7 * 86_400_000;
    this.segmentBytes = opts.segmentBytes ?? 1024 * 1024;
    this.commitDelayMs = opts.commitDelayMs ?? 0;
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? (() => {});
  }

  /** Open (or create) the spool in `dir`, recovering from a torn last write. */
  static async open(opts: SpoolOptions): Promise<Spool> {
    const s = new Spool(opts.dir, opts);
    fs.mkdirSync(opts.dir, { recursive: true });
    s.recover();
    return s;
  }

  private get statePath() {
    return join(this.dir, 'state.json');
  }

  private recover(): void {
    try {
      const raw = JSON.parse(fs.readFileSync(this.statePath, 'utf8')) as Partial<State>;
      for (const k of ['lastSeq', 'ackedThrough', 'droppedTotal', 'droppedUnreported', 'srcLine'] as const) {
        if (Number.isSafeInteger(raw[k]) && (raw[k] as number) >= 0) this.state[k] = raw[k] as number;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.log(`spool: unreadable state file, rebuilding from segments: ${(err as Error).message}`);
    }
    const all = fs.readdirSync(this.dir);
    // A crash mid-rewrite leaves a temp file; the original is intact (rename is atomic).
    for (const n of all) if (n.endsWith('.tmp')) fs.rmSync(join(this.dir, n), { force: true });
    const names = all.filter((n) => SEG_RE.test(n)).sort();
    for (const name of names) {
      const path = join(this.dir, name);
      const buf = fs.readFileSync(path);
      const scan = scanRecords(buf);
      if (scan.goodEnd < buf.length) {
        this.log(`spool: ${name}: torn record at byte ${scan.goodEnd} (${scan.tornReason}); ${buf.length - scan.goodEnd} bytes skipped`);
        fs.truncateSync(path, scan.goodEnd);
      }
      const seg: Segment = { name, path, bytes: scan.goodEnd, live: 0 };
      for (const r of scan.records) {
        const seq = r.record.seq;
        this.state.lastSeq = Math.max(this.state.lastSeq, seq);
        if (typeof r.record.src === 'number') this.state.srcLine = Math.max(this.state.srcLine, r.record.src);
        if (seq <= this.state.ackedThrough || this.pending.has(seq)) continue;
        const faults = r.record.samples.filter(isFaultSample).length;
        this.pending.set(seq, { seq, seg, offset: r.offset, length: r.length, at: r.record.at, samples: r.record.samples.length, faults });
        this.pendingSamples += r.record.samples.length;
        seg.live++;
      }
      if (seg.live === 0) fs.rmSync(path, { force: true });
      else this.segments.push(seg);
    }
  }

  /** Durably append a new batch; resolves once it is on disk (group commit). */
  async append(bootId: string, samples: Sample[], src?: number): Promise<SpoolRecord> {
    if (this.closed) throw new Error('spool is closed');
    const rec: SpoolRecord = { seq: this.state.lastSeq + 1, bootId, at: this.now(), dropped: this.state.droppedUnreported, samples };
    if (src !== undefined) {
      rec.src = src;
      this.state.srcLine = Math.max(this.state.srcLine, src);
    }
    const bytes = encodeRecord(rec);
    if (!this.active || this.active.bytes >= this.segmentBytes) this.roll(rec.seq);
    const seg = this.active!;
    fs.writeSync(this.activeFd!, bytes);
    this.state.lastSeq = rec.seq;
    this.state.droppedUnreported = 0;
    const faults = samples.filter(isFaultSample).length;
    this.pending.set(rec.seq, { seq: rec.seq, seg, offset: seg.bytes, length: bytes.length, at: rec.at, samples: samples.length, faults });
    seg.bytes += bytes.length;
    seg.live++;
    this.pendingSamples += samples.length;
    await this.commit();
    this.enforceBounds();
    return rec;
  }

  private commit(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiters.push({ resolve, reject });
      this.commitTimer ??=
        this.commitDelayMs > 0 ? setTimeout(() => this.syncNow(), this.commitDelayMs) : setImmediate(() => this.syncNow());
    });
  }

  /** One fdatasync for every append since the last one, then release their waiters. */
  private syncNow(): void {
    if (this.commitTimer) {
      clearTimeout(this.commitTimer as NodeJS.Timeout);
      clearImmediate(this.commitTimer as NodeJS.Immediate);
    }
    this.commitTimer = undefined;
    const waiters = this.waiters;
    this.waiters = [];
    if (waiters.length === 0) return;
    try {
      if (this.activeFd !== undefined) fs.fdatasyncSync(this.activeFd);
      for (const w of waiters) w.resolve();
    } catch (err) {
      for (const w of waiters) w.reject(err as Error);
    }
  }

  private roll(firstSeq: number): void {
    if (this.activeFd !== undefined) {
      this.syncNow();
      fs.closeSync(this.activeFd);
      this.activeFd = undefined;
      if (this.active && this.active.live === 0) this.removeSegment(this.active);
    }
    const name = segName(firstSeq);
    const seg: Segment = { name, path: join(this.dir, name), bytes: 0, live: 0 };
    this.activeFd = fs.openSync(seg.path, 'a');
    this.active = seg;
    this.segments.push(seg);
    fsyncDir(this.dir);
  }

  /** Read a pending record back (for sending). */
  read(seq: number): SpoolRecord | undefined {
    const e = this.pending.get(seq);
    if (!e) return undefined;
    const fd = fs.openSync(e.seg.path, 'r');
    try {
      const buf = Buffer.alloc(e.length);
      fs.readSync(fd, buf, 0, e.length, e.offset);
      const scan = scanRecords(buf);
      if (scan.records.length !== 1) throw new Error(`spool: record ${seq} unreadable in ${e.seg.name} (${scan.tornReason})`);
      return scan.records[0].record;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Pending seqs in order, after `afterSeq`, at most `limit`. */
  pendingAfter(afterSeq: number, limit: number): number[] {
    const out: number[] = [];
    for (const seq of this.pending.keys()) {
      if (seq <= afterSeq) continue;
      out.push(seq);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** Highest replay line ever spooled since the last resetSourceLine(). */
  get sourceLine(): number {
    return this.state.srcLine;
  }

  /** A new replay file begins: earlier files' line numbers no longer apply. */
  resetSourceLine(): void {
    this.state.srcLine = 0;
    this.saveState();
  }

  /** Batches not yet acknowledged (cheap; stats() sums more). */
  get pendingCount(): number {
    return this.pending.size;
  }

  has(seq: number): boolean {
    return this.pending.has(seq);
  }

  /** The broker acknowledged `seq`: forget it. Unknown seqs (already dropped) are ignored. */
  ack(seq: number): void {
    const e = this.pending.get(seq);
    if (!e) return;
    this.pending.delete(seq);
    this.pendingSamples -= e.samples;
    e.seg.live--;
    if (e.seg.live === 0 && e.seg !== this.active) {
      this.saveState();
      this.removeSegment(e.seg);
    } else {
      this.stateTimer ??= setTimeout(() => this.saveStateQuietly(), 500).unref();
    }
  }

  private removeSegment(seg: Segment): void {
    const i = this.segments.indexOf(seg);
    if (i >= 0) this.segments.splice(i, 1);
    fs.rmSync(seg.path, { force: true });
  }

  private saveStateQuietly(): void {
    try {
      this.saveState();
    } catch (err) {
      // Losing the ack watermark only means re-sending some acked batches after a restart.
      this.log(`spool: cannot save state: ${(err as Error).message}`);
    }
  }

  private saveState(): void {
    if (this.stateTimer) clearTimeout(this.stateTimer);
    this.stateTimer = undefined;
    const first = this.pending.keys().next();
    this.state.ackedThrough = first.done ? this.state.lastSeq : first.value - 1;
    writeFileDurable(this.statePath, JSON.stringify(this.state));
  }

  /** Drop non-fault samples: aged ones always, and the oldest ones while over the byte bound. */
  private enforceBounds(): void {
    const now = this.now();
    // The age scan walks every pending record: do it at most once a second unless over size.
    if (this.totalBytes() <= this.maxBytes && now - this.lastAgeCheck < 1000) return;
    this.lastAgeCheck = now;
    const cutoff = now - this.maxAgeMs;
    let dropped = 0;
    const bySeg = new Map<Segment, Entry[]>();
    for (const e of this.pending.values()) {
      const list = bySeg.get(e.seg);
      if (list) list.push(e);
      else bySeg.set(e.seg, [e]);
    }
    for (const seg of [...this.segments]) {
      const entries = bySeg.get(seg) ?? [];
      const droppable = entries.some((e) => e.samples > e.faults);
      if (!droppable) continue;
      const overSize = this.totalBytes() > this.maxBytes;
      const aged = entries.some((e) => e.at < cutoff && e.samples > e.faults);
      if (!overSize && !aged) continue;
      dropped += this.compact(seg, overSize ? () => true : (e) => e.at < cutoff);
    }
    if (dropped > 0) {
      this.state.droppedTotal += dropped;
      this.state.droppedUnreported += dropped;
      this.log(`spool: dropped ${dropped} non-fault samples (bound ${this.maxBytes} bytes / ${this.maxAgeMs} ms)`);
      this.saveState();
    }
    const over = this.totalBytes() > this.maxBytes;
    if (over && !this.overBoundLogged) this.log(`spool: over its bound with fault samples only (${this.totalBytes()} bytes); keeping them`);
    this.overBoundLogged = over;
  }

  /** Rewrite a segment without the non-fault samples of the selected records; returns samples dropped. */
  private compact(seg: Segment, select: (e: Entry) => boolean): number {
    if (seg === this.active) this.roll(this.state.lastSeq + 1);
    const scan = scanRecords(fs.readFileSync(seg.path));
    const parts: Buffer[] = [];
    let offset = 0;
    let dropped = 0;
    for (const r of scan.records) {
      const e = this.pending.get(r.record.seq);
      if (!e || e.seg !== seg) continue; // acked already: reclaim its space
      let rec = r.record;
      if (select(e)) {
        const keep = rec.samples.filter(isFaultSample);
        dropped += rec.samples.length - keep.length;
        if (keep.length === 0) {
          this.pending.delete(e.seq);
          this.pendingSamples -= e.samples;
          seg.live--;
          continue;
        }
        rec = { ...rec, samples: keep };
      }
      const bytes = encodeRecord(rec);
      this.pendingSamples -= e.samples - rec.samples.length;
      Object.assign(e, { offset, length: bytes.length, samples: rec.samples.length, faults: rec.samples.filter(isFaultSample).length });
      parts.push(bytes);
      offset += bytes.length;
    }
    if (seg.live === 0) {
      this.removeSegment(seg);
      return dropped;
    }
    writeFileDurable(seg.path, Buffer.concat(parts));
    seg.bytes = offset;
    return dropped;
  }

  private totalBytes(): number {
    return this.segments.reduce((n, s) => n + s.bytes, 0);
  }

  stats(): SpoolStats {
    return {
      pendingRecords: this.pending.size,
      pendingSamples: this.pendingSamples,
      bytes: this.totalBytes(),
      droppedTotal: this.state.droppedTotal,
      droppedUnreported: this.state.droppedUnreported,
      lastSeq: this.state.lastSeq,
      segments: this.segments.length,
    };
  }

  /** Flush outstanding syncs and state; the spool's files stay for the next start. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.syncNow();
    this.closed = true;
    if (this.activeFd !== undefined) fs.closeSync(this.activeFd);
    this.activeFd = undefined;
    if (this.active && this.active.live === 0) this.removeSegment(this.active);
    this.active = undefined;
    this.saveState();
  }
}
