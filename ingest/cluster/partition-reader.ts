// One partition of the cluster's telemetry log read back in stream order (JetStreamTelemetryLog
// readPartition, telemetry-log.ts): an ordered consumer that the reader recreates from its own
// position when the consumer's server stops answering, a bounded buffer ahead of the caller, and
// the decoding of the entries (the headers append writes).
import type { Consumer, ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import { H_BOOT, H_RECEIVED, H_SEQ, partitionSubjects, TELEMETRY_STREAM } from './telemetry-stream.js';

export interface TelemetryLogEntry {
  /** The stream sequence: the position the partition owner stores with its results. */
  streamSeq: number;
  partition: number;
  vin: string;
  bootId: string;
  seq: number;
  /** Empty for a batch appended without payload (a telemetry batch is never empty otherwise). */
  payload: Uint8Array;
  receivedAt: number;
}

export interface ReadOptions {
  /** Entries held ahead of the caller (default 1024): the reader stops pulling when it is full. */
  bufferEntries?: number;
  /** Server heartbeat interval of the reader's consumer (default 1 s, at least 0.5 s). */
  heartbeatMs?: number;
  /** Recreate the consumer after this long without a message or heartbeat (default 3 × heartbeatMs). */
  stallMs?: number;
}

/** The partition's last stream sequence as the stream leader has it (JetStreamTelemetryLog.lastSeq). */
export type LastSeqOf = () => Promise<number>;

export interface BatchOptions {
  /** At most this many entries per batch. */
  maxEntries: number;
  /** Wait at most this long (from the call) for maxEntries; then resolve with what there is, maybe none. */
  maxWaitMs: number;
}

/** One partition read in stream order from a start sequence (readPartition). */
export interface PartitionReader extends AsyncIterable<TelemetryLogEntry> {
  readonly partition: number;
  /** Up to `max` entries: as soon as there is one, waiting at most `waitMs` for it; [] when none came, or once stopped. */
  next(max: number, waitMs: number): Promise<TelemetryLogEntry[]>;
  /** Up to maxEntries entries: as soon as that many are there, else after maxWaitMs; [] once stopped. */
  nextBatch(opts: BatchOptions): Promise<TelemetryLogEntry[]>;
  /** nextBatch in a loop, non-empty batches only, until stop(). */
  batches(opts: BatchOptions): AsyncIterable<TelemetryLogEntry[]>;
  /** Stream sequence of the last entry handed out (fromSeq - 1 before the first). */
  position(): number;
  /** How many times the consumer was recreated (node failure, stall, no progress). */
  readonly restarts: number;
  /** Entries skipped because they were not odopulse batches (foreign messages on the subjects). */
  readonly skipped: number;
  /** No entry is handed out after this is called; resolves once the consumer is gone. */
  stop(): Promise<void>;
}

const errMsg = (err: unknown) => (err instanceof Error ? err.message : String(err));

function decodeEntry(m: JsMsg): TelemetryLogEntry | null {
  const tokens = m.subject.split('.');
  const h = m.headers;
  if (tokens.length !== 4 || !h) return null;
  const seq = Number(h.get(H_SEQ));
  const receivedAt = Number(h.get(H_RECEIVED));
  let bootId: string;
  try {
    bootId = decodeURIComponent(h.get(H_BOOT));
  } catch {
    return null;
  }
  if (!h.has(H_SEQ) || !Number.isSafeInteger(seq) || !Number.isFinite(receivedAt)) return null;
  return {
    streamSeq: m.seq,
    partition: Number(tokens[2]),
    vin: tokens[3],
    bootId,
    seq,
    payload: m.data,
    receivedAt,
  };
}
export class JetStreamPartitionReader implements PartitionReader {
  restarts = 0;
  skipped = 0;
  private readonly buf: TelemetryLogEntry[] = [];
  /** Stream sequence of the last entry put in `buf` (where a recreated consumer starts after). */
  private cursor: number;
  private delivered: number;
  private stopping = false;
  private current: ConsumerMessages | undefined;
  /** Wakes a caller waiting for entries (or the stop). */
  private wake: (() => void) | undefined;
  /** Wakes the pump waiting for room in `buf` (or the stop). */
  private room: (() => void) | undefined;
  /** Ends the pump's pause before a new consumer (the stop). */
  private interrupt: (() => void) | undefined;
  private readonly pump: Promise<void>;
  private readonly capacity: number;
  private readonly heartbeatMs: number;
  private readonly stallMs: number;

  constructor(
    private readonly js: JetStreamClient,
    readonly partition: number,
    fromSeq: number,
    opts: ReadOptions,
    private readonly log: (msg: string) => void,
    private readonly onStopped: () => void,
    private readonly lastSeqOf?: LastSeqOf,
  ) {
    this.cursor = this.delivered = fromSeq - 1;
    this.capacity = Math.max(1, opts.bufferEntries ?? 1024);
    this.heartbeatMs = Math.max(500, opts.heartbeatMs ?? 1000);
    this.stallMs = opts.stallMs ?? 3 * this.heartbeatMs;
    this.pump = this.run();
  }

  position(): number {
    return this.delivered;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      let msgs: ConsumerMessages | undefined;
      let consumer: Consumer | undefined;
      let watchdog: NodeJS.Timeout | undefined;
      let lastActivity = Date.now();
      let lastMessage = Date.now();
      let waitingForRoom = false;
      let stalled = false as false | 'silent' | 'behind';
      /** The cursor when the stream leader first said it had more than this consumer gave us. */
      let behindAt: number | undefined;
      let probing = false;
      let probedAt = 0;
      try {
        consumer = await this.js.consumers.get(TELEMETRY_STREAM, {
          filter_subjects: partitionSubjects(this.partition),
          opt_start_seq: this.cursor + 1,
          // one left behind on a dead server goes by itself
          inactive_threshold: 60_000,
        });
        msgs = await consumer.consume({
          max_messages: Math.min(this.capacity, 512),
          expires: Math.max(5000, 4 * this.heartbeatMs),
          idle_heartbeat: this.heartbeatMs,
        });
        this.current = msgs;
        if (this.stopping) break;
        const m0 = msgs;
        void (async () => {
          for await (const s of m0.status()) {
            if (s.type === 'heartbeat') lastActivity = Date.now();
          }
        })().catch(() => {});
        const probe = async () => {
          const at = this.cursor;
          const last = await this.lastSeqOf!();
          if (last <= at || this.cursor !== at) behindAt = undefined;
          else if (behindAt !== at) behindAt = at;
          else {
            // twice, stallMs apart, the leader has entries past a cursor that has not moved, while
            // heartbeats go on: the consumer is alive and stuck (seen after a leader kill on 2.9)
            stalled = 'behind';
            m0.stop();
          }
        };
        watchdog = setInterval(
          () => {
            const now = Date.now();
            if (waitingForRoom) return;
            // no heartbeat (and no message) while we are pulling: the consumer's server is gone
            if (now - lastActivity > this.stallMs) {
              stalled = 'silent';
              m0.stop();
            } else if (this.lastSeqOf && !probing && now - lastMessage > this.stallMs && now - probedAt > this.stallMs) {
              probing = true;
              probedAt = now;
              probe()
                .catch(() => {}) // no answer (an election): the heartbeat check still stands
                .finally(() => (probing = false));
            }
          },
          Math.max(100, this.heartbeatMs / 2),
        );
        watchdog.unref();
        for await (const m of msgs) {
          lastActivity = lastMessage = Date.now();
          behindAt = undefined;
          failures = 0;
          if (m.seq <= this.cursor) continue;
          this.cursor = m.seq;
          const e = decodeEntry(m);
          if (!e) {
            this.skipped++;
            continue;
          }
          this.buf.push(e);
          this.wake?.();
          if (this.buf.length >= this.capacity) {
            waitingForRoom = true;
            await new Promise<void>((r) => (this.room = r));
            this.room = undefined;
            waitingForRoom = false;
            lastActivity = lastMessage = Date.now();
          }
          if (this.stopping) break;
        }
        if (!this.stopping)
          this.log(
            `telemetry log: partition ${this.partition} reader ${stalled === 'silent' ? 'stalled (no heartbeat)' : stalled === 'behind' ? 'stuck (the stream has more, none came)' : 'ended'} after seq ${this.cursor}, recreating its consumer`,
          );
      } catch (err) {
        if (!this.stopping) this.log(`telemetry log: partition ${this.partition} reader failed after seq ${this.cursor}: ${errMsg(err)}`);
      } finally {
        clearInterval(watchdog);
        this.current = undefined;
        msgs?.stop();
        // best effort: a consumer on a server that is gone goes after inactive_threshold
        consumer?.delete().catch(() => {});
      }
      if (this.stopping) break;
      this.restarts++;
      failures++;
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(100 * 2 ** failures, 2000));
        this.interrupt = () => {
          clearTimeout(t);
          r();
        };
      });
      this.interrupt = undefined;
    }
  }

  next(max: number, waitMs: number): Promise<TelemetryLogEntry[]> {
    return this.take(1, max, waitMs);
  }

  nextBatch({ maxEntries, maxWaitMs }: BatchOptions): Promise<TelemetryLogEntry[]> {
    return this.take(maxEntries, maxEntries, maxWaitMs);
  }

  /** Up to `max` entries once `enough` are buffered, or after `waitMs` with what there is. One caller at a time. */
  private async take(enough: number, max: number, waitMs: number): Promise<TelemetryLogEntry[]> {
    const deadline = Date.now() + waitMs;
    while (!this.stopping && this.buf.length < enough) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      await new Promise<void>((r) => {
        const t = Number.isFinite(left) ? setTimeout(r, left) : undefined;
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = undefined;
    }
    if (this.stopping) return [];
    const out = this.buf.splice(0, max);
    if (out.length > 0) this.delivered = out[out.length - 1].streamSeq;
    this.room?.();
    return out;
  }

  async *batches(opts: BatchOptions): AsyncIterable<TelemetryLogEntry[]> {
    while (!this.stopping) {
      const b = await this.nextBatch(opts);
      if (b.length > 0) yield b;
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TelemetryLogEntry> {
    while (!this.stopping) {
      const [e] = await this.take(1, 1, Infinity);
      if (e) yield e;
    }
  }

  async stop(): Promise<void> {
    if (!this.stopping) {
      this.stopping = true;
      this.buf.length = 0;
      this.current?.stop();
      this.wake?.();
      this.room?.();
      this.interrupt?.();
    }
    await this.pump;
    this.onStopped();
  }
}
