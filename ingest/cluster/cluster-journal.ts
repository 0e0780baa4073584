// Cluster mode's journal (docs/architecture.md#cluster-mode): the same face the inbound handlers and
// the pipeline use on one machine (ingest/journal/journal.ts), over the JetStream telemetry stream.
// Appends go to the stream (the PUBACK waits for its ack); the two loops read the partitions this
// instance holds a lease on, each through its own reader from its own committed position, so a slow
// InfluxDB never holds the rules back. An entry's id is its stream sequence: increasing per vehicle,
// so the rules runner's per-vehicle "already applied" check (VehicleRuleState.journalId) works as on
// one machine, across restarts and partition moves.
import type { AppendOutcome, BatchToAppend, Held, JournalEntry } from '../journal/journal.js';
import type { JournalStorageState } from '../journal/storage-state.js';
import { partitionOf } from './partition.js';

/** One telemetry batch as read back from the stream. */
export interface StreamEntry {
  streamSeq: number;
  vin: string;
  bootId: string;
  seq: number;
  payload: Uint8Array;
  receivedAt: number;
}

/** A reader of one partition from a stream sequence on, in stream order. */
export interface PartitionReader {
  /** Up to `max` entries, waiting at most `waitMs` for the first; [] when none came. */
  next(max: number, waitMs: number): Promise<StreamEntry[]>;
  stop(): Promise<void>;
}

export interface TelemetryLogPort {
  append(b: { vin: string; bootId: string; seq: number; payload: Uint8Array; receivedAt: number }): Promise<'new' | 'duplicate'>;
  reader(partition: number, fromSeq: number): PartitionReader;
  connected(): boolean;
}

/** Where a partition's two loops stand, saved in PostgreSQL (cluster/leases.ts). */
export interface PartitionPositions {
  rules: number;
  influx: number;
}

export interface ClusterJournalDeps {
  log: TelemetryLogPort;
  partitions: number;
  /** Save the InfluxDB loop's position of a partition (fenced by the lease's epoch; errors only logged). */
  saveInfluxPosition(partition: number, epoch: number, seq: number): Promise<void>;
  /** New entries are buffered: wake the loops. */
  onData(): void;
  logger: { warn(o: object, m?: string): void };
  /** Entries buffered per partition and loop before its reader pauses. */
  buffer?: number;
  /** Payload bytes buffered per loop across all partitions before the readers pause (default 128 MiB). */
  bufferBytes?: number;
}

type Loop = 'rules' | 'influx';

/** Bytes of payload buffered across all lanes of one loop: readers pause at the budget (InfluxDB down must not fill the heap). */
interface Budget {
  bytes: number;
  readonly max: number;
}

/** The lease epoch each buffered entry was read under: a step's commit is fenced with it, not with a later holding's. */
const epochs = new WeakMap<JournalEntry, number>();

class Lane {
  readonly entries: JournalEntry[] = [];
  private stopped = false;
  readonly pumping: Promise<void>;

  constructor(
    private readonly reader: PartitionReader,
    private readonly epoch: number,
    private readonly cap: number,
    readonly budget: Budget,
    private readonly onData: () => void,
    private readonly logger: ClusterJournalDeps['logger'],
    private readonly label: string,
  ) {
    this.pumping = this.pump();
  }

  private async pump(): Promise<void> {
    let backoff = 250;
    while (!this.stopped) {
      const room = this.cap - this.entries.length;
      if (room <= 0 || this.budget.bytes >= this.budget.max) {
        await sleep(20);
        continue;
      }
      try {
        const got = await this.reader.next(Math.min(room, 1000), 500);
        backoff = 250;
        if (this.stopped) return;
        for (const e of got) {
          const entry: JournalEntry = {
            id: e.streamSeq,
            vin: e.vin,
            bootId: e.bootId,
            seq: e.seq,
            receivedAt: e.receivedAt,
            payload: Buffer.from(e.payload.buffer, e.payload.byteOffset, e.payload.byteLength),
            influxDone: false,
            // a batch whose every sample was dead-lettered is in the stream only for dedup
            ...(e.payload.byteLength === 0 ? { readings: [] } : {}),
          };
          epochs.set(entry, this.epoch);
          this.budget.bytes += entry.payload.byteLength;
          this.entries.push(entry);
        }
        if (got.length) this.onData();
      } catch (err) {
        this.logger.warn({ err: (err as Error).message, lane: this.label, retryInMs: backoff }, 'reading the telemetry stream failed');
        await sleep(backoff);
        backoff = Math.min(5000, backoff * 2);
      }
    }
  }

  /** Take these entries out (done); the highest id taken, 0 when none. */
  remove(gone: ReadonlySet<number>): number {
    let top = 0;
    let kept = 0;
    for (let i = 0; i < this.entries.length; i++) {
      const e = this.entries[i];
      if (gone.has(e.id)) {
        top = Math.max(top, e.id);
        this.budget.bytes -= e.payload.byteLength;
      } else this.entries[kept++] = e;
    }
    this.entries.length = kept;
    return top;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.pumping;
    await this.reader.stop();
    for (const e of this.entries) this.budget.bytes -= e.payload.byteLength;
    this.entries.length = 0;
  }
}

interface Held_ {
  epoch: number;
  rules: Lane;
  influx: Lane;
}

export class ClusterJournal {
  private readonly held = new Map<number, Held_>();
  private state: JournalStorageState = { writable: true, since: Date.now(), failedAppends: 0 };
  private failedAppends = 0;
  /** Each vehicle's last append not yet settled. */
  private readonly tails = new Map<string, Promise<AppendOutcome>>();
  private readonly budgets: Record<Loop, Budget>;

  constructor(private readonly deps: ClusterJournalDeps) {
    const max = deps.bufferBytes ?? 128 * 1024 * 1024;
    // one per loop: InfluxDB down fills its own budget, never the rules'
    this.budgets = { rules: { bytes: 0, max }, influx: { bytes: 0, max } };
  }

  partitionOf(vin: string): number {
    return partitionOf(vin, this.deps.partitions);
  }

  /** Does this instance hold the lease of the vehicle's partition? */
  owns(vin: string): boolean {
    return this.held.has(this.partitionOf(vin));
  }

  /** A partition's lease was acquired: read it from the positions saved with its last commits. */
  attach(partition: number, epoch: number, from: PartitionPositions): void {
    if (this.held.has(partition)) return;
    const cap = this.deps.buffer ?? 5000;
    const lane = (loop: Loop, after: number) =>
      new Lane(
        this.deps.log.reader(partition, after + 1),
        epoch,
        cap,
        this.budgets[loop],
        this.deps.onData,
        this.deps.logger,
        `${loop}/${partition}`,
      );
    this.held.set(partition, { epoch, rules: lane('rules', from.rules), influx: lane('influx', from.influx) });
  }

  /** The lease is gone (released or lost): stop reading; what was buffered is another owner's now. */
  async detach(partition: number): Promise<void> {
    const h = this.held.get(partition);
    if (!h) return;
    this.held.delete(partition);
    await Promise.all([h.rules.stop(), h.influx.stop()]);
  }

  epochOf(partition: number): number | undefined {
    return this.held.get(partition)?.epoch;
  }

  // docs/contract.md#telemetry-batch: dedup by (vin, boot id, seq) is the stream's message id
  // (duplicate window); past it the rules ignore readings not newer than the vehicle's last.
  /**
   * One vehicle's appends go to the stream one after another, in arrival order: each retries on its
   * own through a stream leader election, so side by side they would land in any order (the rules
   * would then take the late ones for replays). When one fails for good, those queued behind it are
   * refused too: the vehicle gets no PUBACK for any of them and sends them again, in order.
   */
  appendBatch(b: BatchToAppend): Promise<AppendOutcome> {
    const prev = this.tails.get(b.vin);
    const next = prev
      ? prev.then(
          () => this.appendNow(b),
          () => {
            this.failedAppends++;
            throw new Error(`an earlier batch of ${b.vin} could not be stored: refused to keep the vehicle's order`);
          },
        )
      : this.appendNow(b);
    this.tails.set(b.vin, next);
    const forget = () => {
      if (this.tails.get(b.vin) === next) this.tails.delete(b.vin);
    };
    next.then(forget, forget);
    return next;
  }

  private async appendNow(b: BatchToAppend): Promise<AppendOutcome> {
    try {
      const result = await this.deps.log.append({
        vin: b.vin,
        bootId: b.bootId,
        seq: b.seq,
        payload: b.payload ?? new Uint8Array(),
        receivedAt: b.receivedAt,
      });
      return { result, missingAdded: 0, filled: false };
    } catch (err) {
      // not in the stream: no PUBACK (the vehicle sends it again)
      this.failedAppends++;
      throw err;
    }
  }

  /** Only the stream knows (by message id): nothing is known here. */
  has(_vin: string, _bootId: string, _seq: number): boolean {
    return false;
  }

  /** The one-machine sequence view (gaps per vehicle) is not kept in cluster mode. */
  sequences(): [] {
    return [];
  }

  pendingForRules(_afterId: number, limit: number, held?: Held): JournalEntry[] {
    return this.pending('rules', limit, held);
  }

  pendingForInflux(_afterId: number, limit: number, held?: Held): JournalEntry[] {
    return this.pending('influx', limit, held);
  }

  /** The oldest buffered entries of every held partition, merged by stream sequence. */
  private pending(loop: Loop, limit: number, held?: Held): JournalEntry[] {
    const all: JournalEntry[] = [];
    for (const h of this.held.values()) {
      const lane = h[loop].entries;
      for (let i = 0; i < lane.length && i < limit; i++) all.push(lane[i]);
    }
    all.sort((a, b) => a.id - b.id);
    const out = all.slice(0, limit);
    for (const e of out) {
      if (e.readings === undefined && held) {
        const h = held(e.vin, e.seq, e.bootId ?? '');
        if (h) e.readings = h.readings;
      }
    }
    return out;
  }

  /**
   * The highest entry id per partition among these, with the lease epoch they were read under (for
   * the rules commit's fence); epoch -1: not read from a lane of this journal.
   */
  positions(entries: ReadonlyArray<JournalEntry>): Map<number, { seq: number; epoch: number }> {
    const out = new Map<number, { seq: number; epoch: number }>();
    for (const e of entries) {
      const p = this.partitionOf(e.vin);
      const epoch = epochs.get(e) ?? -1;
      const had = out.get(p);
      // two holdings of one partition in one step: the older entries' epoch fails the fence, as it must
      out.set(p, { seq: Math.max(had?.seq ?? 0, e.id), epoch: had && had.epoch !== epoch ? -1 : epoch });
    }
    return out;
  }

  markRulesDone(ids: number[]): void {
    this.drop('rules', ids);
  }

  markInfluxDone(ids: number[]): void {
    const done = this.drop('influx', ids);
    for (const [p, top] of done) {
      const h = this.held.get(p);
      if (!h) continue;
      const epoch = h.epoch;
      // only up to the first entry still buffered: one done early (dead-lettered before the chunk's
      // flush) must not carry the position past points not yet written
      const first = h.influx.entries[0]?.id;
      const seq = first === undefined ? top : Math.min(top, first - 1);
      if (seq <= 0) continue;
      // at-least-once is enough here (points are idempotent): a lost save re-writes a little
      this.deps.saveInfluxPosition(p, epoch, seq).catch((err: unknown) => {
        this.deps.logger.warn({ err: (err as Error).message, partition: p }, 'saving the InfluxDB position failed');
      });
    }
  }

  private drop(loop: Loop, ids: number[]): Map<number, number> {
    const gone = new Set(ids);
    const done = new Map<number, number>();
    for (const [p, h] of this.held) {
      const top = h[loop].remove(gone);
      if (top > 0) done.set(p, top);
    }
    return done;
  }

  lag(): { total: number; influx: number; rules: number } {
    let rules = 0;
    let influx = 0;
    for (const h of this.held.values()) {
      rules += h.rules.entries.length;
      influx += h.influx.entries.length;
    }
    return { total: Math.max(rules, influx), rules, influx };
  }

  storageState(): Readonly<JournalStorageState> {
    const writable = this.deps.log.connected();
    if (writable !== this.state.writable)
      this.state = writable
        ? { writable, since: Date.now(), failedAppends: this.failedAppends }
        : { writable, since: Date.now(), reason: 'other', error: 'NATS not connected', failedAppends: this.failedAppends };
    return this.state;
  }

  journalWritable(): boolean {
    return this.storageState().writable;
  }

  /** The stream keeps telemetry by age (max age), not this process. */
  prune(_before: number): number {
    return 0;
  }

  async close(): Promise<void> {
    await Promise.all([...this.held.keys()].map((p) => this.detach(p)));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
