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
//
// A request InfluxDB answers but refuses as input (a field type conflict, a point beyond the
// retention policy, an unparsable timestamp, a body too large) is not an outage: retrying it can
// never help, so it is settled at once and reported by flush() as a TelemetryRefusedError with the
// server's reason and the lines, for the caller to write around (pipeline/influx-refusals.ts).
import { HttpError, type InfluxDB, type WriteApi } from '@influxdata/influxdb-client';
import { TelemetryRefusedError, type TelemetryRefusal } from '../telemetry-errors.js';

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
  /** Requests the server refused as input (settled: not retried, not failed). */
  refusals: TelemetryRefusal[];
  waiters: Array<() => void>;
}

/** What the server said: 1.x `{"error": ...}`, 2.x `{"code", "message"}`, or the body as it came. */
export function serverMessage(err: HttpError): string {
  let json: unknown = err.json;
  if (json === undefined && err.body) {
    try {
      json = JSON.parse(err.body);
    } catch {
      // not JSON: the body itself is the message
    }
  }
  const j = (typeof json === 'object' && json !== null ? json : {}) as { error?: unknown; message?: unknown };
  const m = typeof j.error === 'string' ? j.error : typeof j.message === 'string' ? j.message : (err.body ?? err.message);
  return String(m || `${err.statusCode} ${err.statusMessage ?? ''}`)
    .trim()
    .slice(0, 1000);
}

function describe(err: unknown): string {
  if (err instanceof HttpError) {
    // not input errors but the set-up: say which setting to look at
    const hint =
      err.statusCode === 401 || err.statusCode === 403
        ? ' (InfluxDB refused the credentials: check INFLUX_TOKEN)'
        : err.statusCode === 404
          ? ' (check INFLUX_ORG and INFLUX_BUCKET: does the database or bucket exist?)'
          : '';
    return `HTTP ${err.statusCode}: ${serverMessage(err)}${hint}`.slice(0, 600);
  }
  return (err instanceof Error ? err.message : String(err)).slice(0, 500);
}

/** Statuses with which InfluxDB refuses what was sent rather than failing to take it. */
const REFUSAL_STATUSES = new Set([400, 413, 422]);
/** 400s about the request, not its points (database, precision, credentials): the set-up's fault, kept as failures. */
const REQUEST_LEVEL = /database is required|database not found|bucket .*not found|organization .*not found|invalid precision|authoriz/i;

/**
 * A request refused as input: 1.x 400 `partial write: field type conflict ...`, `partial write:
 * points beyond retention policy dropped=N`, `unable to parse '...': bad timestamp` / `time outside
 * range`; 2.x 422 `failure writing points to database: partial write: ...`, 400 `partial write has
 * occurred, errors encountered on line(s): ...`; 413 too large. 401, 403, 404, 429 and 5xx are not.
 */
export function refusalOf(error: Error): { status: number; message: string } | undefined {
  if (!(error instanceof HttpError) || !REFUSAL_STATUSES.has(error.statusCode)) return undefined;
  const message = serverMessage(error);
  if (error.statusCode === 400 && REQUEST_LEVEL.test(message)) return undefined;
  return { status: error.statusCode, message };
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
  /**
   * Lines of requests the server refused as input (settled, not retried; each reported by a
   * TelemetryRefusedError). Counts lines sent, so a line refused again while the caller narrows a
   * refused batch down counts again; the refused points themselves are the dead letters.
   */
  refusedLines = 0;

  constructor(
    private readonly influx: InfluxDB,
    private readonly opts: WriterOptions,
  ) {
    this.gen = this.newGeneration();
  }

  private newGeneration(): Generation {
    const gen: Generation = {
      api: undefined as unknown as WriteApi,
      written: 0,
      outstanding: 0,
      failedLines: 0,
      errors: [],
      refusals: [],
      waiters: [],
    };
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
        const refused = refusalOf(error);
        if (refused) {
          gen.outstanding -= lines.length;
          gen.refusals.push({ ...refused, lines });
          this.refusedLines += lines.length;
          wake();
          // a resolved promise tells the client the batch is settled: no retry, no error logged
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
      // data written before an earlier, still running flush is "written so far" for this one too;
      // a refusal there is not this flush's: refused lines are settled, and reported to the flush
      // that sealed them (its caller narrows them down; inheriting it would dead-letter good lines)
      if (before)
        await before.catch((err: unknown) => {
          if (!(err instanceof TelemetryRefusedError)) throw err;
        });
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
        if (gen.outstanding <= 0) {
          // everything answered; an outage above outranks refusals (the caller retries it all)
          if (gen.refusals.length > 0) throw new TelemetryRefusedError(gen.refusals);
          return;
        }
        // batches sent earlier are still in flight: wait for their outcome, then go round again
        if (!(await progressed)) throw unconfirmed(`no answer within ${this.opts.flushTimeoutMs} ms`);
      } catch (err) {
        throw err instanceof TelemetryFlushError || err instanceof TelemetryRefusedError ? err : unconfirmed(describe(err), err);
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
