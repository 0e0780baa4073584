// Write path: the official client's WriteApi (batching, retries with backoff), plus the one thing
// it lacks: a flush that says whether everything handed to it was accepted. The client's buffers
// are in memory only and it drops lines silently (writeRetrySkipped, exhausted retries), while the
// caller keeps a durable journal and re-writes on failure, so a flush must never resolve over loss.
//
// How: writes go into a "generation", one WriteApi each. flush() seals the current generation
// (new writes start a fresh WriteApi, so a steady stream of writes cannot starve the flush), then
// waits until every line of the sealed one is accepted or any is lost. Line accounting uses the
// client's callbacks: writeSuccess, writeFailed (final or retried, decided as the client does in
// WriteApiImpl.sendBatch, @influxdata/influxdb-client 1.35) and writeRetrySkipped.
import { HttpError, type InfluxDB, type WriteApi } from '@influxdata/influxdb-client';

export interface WriterOptions {
  org: string;
  bucket: string;
  batchSize: number;
  flushIntervalMs: number;
  maxRetries: number;
  maxBufferLines: number;
  /** A flush that sees no progress for this long gives up (a hung server must not hang ingest). */
  flushTimeoutMs: number;
  gzipThreshold: number;
}

/** flush() could not confirm that InfluxDB accepted everything written before it. */
export class TelemetryFlushError extends Error {
  override readonly name = 'TelemetryFlushError';
  constructor(
    message: string,
    /** Lines of the flushed generation that were not confirmed (failed, dropped or unknown). */
    readonly unconfirmedLines: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface Generation {
  api: WriteApi;
  written: number;
  /** Handed to the client and neither accepted nor given up on yet. */
  outstanding: number;
  failedLines: number;
  errors: string[];
  waiters: Array<() => void>;
}

function describe(err: unknown): string {
  if (err instanceof HttpError) return `HTTP ${err.statusCode}: ${err.message}`.slice(0, 500);
  return (err instanceof Error ? err.message : String(err)).slice(0, 500);
}

/**
 * InfluxDB refuses points older than the retention policy (1.x: 400 "partial write: points beyond
 * retention policy dropped=N"). That is the server's policy, not a fault: a re-write can never
 * succeed, so these lines count as settled (and are counted) instead of failing every flush.
 */
function isRetentionDrop(error: Error): boolean {
  if (!(error instanceof HttpError) || (error.statusCode !== 400 && error.statusCode !== 422)) return false;
  const msg = String(error.json?.error ?? error.json?.message ?? error.body ?? '').trim();
  return /^partial write: points beyond retention policy dropped=\d+$/.test(msg);
}

/** Mirrors the client's retry decision: will these lines be tried again? */
function isFinalFailure(error: Error, attempt: number, maxRetries: number): boolean {
  if (error.message === 'Max retry time exceeded.') return true;
  const retriable = !(error instanceof HttpError) || error.statusCode >= 429;
  return !(retriable && attempt <= maxRetries);
}

export class TrackedWriter {
  private gen: Generation;
  private pendingFlush: Promise<void> | undefined;
  private closed = false;
  /** Lines accepted by InfluxDB since start (metrics). */
  acceptedLines = 0;
  /** Lines InfluxDB did not take (metrics; each was reported by a rejected flush). */
  failedLines = 0;
  /** Lines in batches the server refused as older than its retention policy (settled, not retried). */
  retentionDroppedLines = 0;

  constructor(
    private readonly influx: InfluxDB,
    private readonly opts: WriterOptions,
  ) {
    this.gen = this.newGeneration();
  }

  private newGeneration(): Generation {
    const gen: Generation = { api: undefined as unknown as WriteApi, written: 0, outstanding: 0, failedLines: 0, errors: [], waiters: [] };
    const wake = (): void => {
      const ws = gen.waiters.splice(0);
      for (const w of ws) w();
    };
    const fail = (n: number, why: string): void => {
      gen.outstanding -= n;
      gen.failedLines += n;
      this.failedLines += n;
      if (gen.errors.length < 5) gen.errors.push(why);
    };
    const maxRetries = this.opts.maxRetries;
    gen.api = this.influx.getWriteApi(this.opts.org, this.opts.bucket, 'ms', {
      batchSize: this.opts.batchSize,
      flushInterval: this.opts.flushIntervalMs,
      maxRetries,
      maxBufferLines: this.opts.maxBufferLines,
      gzipThreshold: this.opts.gzipThreshold,
      writeSuccess: (lines) => {
        gen.outstanding -= lines.length;
        this.acceptedLines += lines.length;
        wake();
      },
      writeFailed: (error, lines, attempt) => {
        if (isRetentionDrop(error)) {
          gen.outstanding -= lines.length;
          this.retentionDroppedLines += lines.length;
          wake();
          // a resolved promise tells the client the batch is settled: no retry, no error
          return Promise.resolve();
        }
        if (isFinalFailure(error, attempt, maxRetries)) fail(lines.length, describe(error));
        wake();
        // undefined: let the client retry as it normally would
        return undefined;
      },
      writeRetrySkipped: (entry) => {
        fail(
          entry.lines.length,
          `${entry.lines.length} lines dropped from the client's retry buffer (maxBufferLines ${this.opts.maxBufferLines})`,
        );
        wake();
      },
    });
    return gen;
  }

  /** Hand lines to the WriteApi; batches leave when full or after flushIntervalMs. */
  write(lines: string[]): void {
    if (this.closed) throw new Error('telemetry store is closed');
    if (lines.length === 0) return;
    const gen = this.gen;
    gen.written += lines.length;
    gen.outstanding += lines.length;
    gen.api.writeRecords(lines);
  }

  /** Lines of the current (unflushed) generation not yet confirmed. */
  get outstandingLines(): number {
    return this.gen.outstanding;
  }

  flush(): Promise<void> {
    const sealed = this.gen;
    if (sealed.written > 0) this.gen = this.newGeneration();
    const before = this.pendingFlush;
    if (sealed.written === 0 && !before) return Promise.resolve();
    const p = (async () => {
      let own: unknown;
      if (sealed.written > 0) {
        try {
          await this.drain(sealed);
        } catch (err) {
          own = err;
        } finally {
          // a rejected generation's retries are abandoned: the caller re-writes from its journal
          sealed.api.dispose();
        }
      }
      // data written before an earlier, still running flush is "written so far" for this one too
      if (before) await before;
      if (own) throw own;
    })();
    this.pendingFlush = p;
    const clear = (): void => {
      if (this.pendingFlush === p) this.pendingFlush = undefined;
    };
    p.then(clear, clear);
    return p;
  }

  private async drain(gen: Generation): Promise<void> {
    const unconfirmed = (why: string, cause?: unknown): TelemetryFlushError =>
      new TelemetryFlushError(
        `InfluxDB did not confirm ${gen.outstanding + gen.failedLines} of ${gen.written} lines: ${why}`,
        gen.outstanding + gen.failedLines,
        { cause },
      );
    for (;;) {
      if (gen.failedLines > 0) throw unconfirmed(gen.errors.join('; '));
      // register before flushing so an event during the flush is not missed
      let timer: NodeJS.Timeout | undefined;
      const progressed = new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), this.opts.flushTimeoutMs);
        timer.unref();
        gen.waiters.push(() => resolve(true));
      });
      try {
        // sends the buffer and retries the retry buffer now, without waiting for backoff
        await gen.api.flush(true);
        if (gen.failedLines > 0) throw unconfirmed(gen.errors.join('; '));
        if (gen.outstanding <= 0) return;
        // batches sent earlier are still in flight: wait for their outcome, then go round again
        if (!(await progressed)) throw unconfirmed(`no answer within ${this.opts.flushTimeoutMs} ms`);
      } catch (err) {
        throw err instanceof TelemetryFlushError ? err : unconfirmed(describe(err), err);
      } finally {
        clearTimeout(timer);
        gen.waiters.length = 0;
      }
    }
  }

  /** Flush what is left, then stop the client's timers. Rejects if that flush failed. */
  async close(): Promise<void> {
    if (this.closed) return;
    // refuse writes first, so nothing lands in a generation that is about to be disposed
    this.closed = true;
    try {
      await this.flush();
    } finally {
      this.gen.api.dispose();
    }
  }
}
