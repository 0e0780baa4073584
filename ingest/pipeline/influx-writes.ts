// The InfluxDB side of the pipeline (docs/architecture.md#data-flow): journal entries written in
// chunks, marked done only once InfluxDB confirmed them. Two chunks are in flight at once, so
// influxd parses one while this process prepares the next (one at a time left influxd idle while the
// next chunk was serialised, and ingest idle while influxd parsed). A chunk's write and the flush
// that seals its batch are submitted one chunk at a time (`submit`): each flush covers its own
// lines only, so a refusal is always narrowed down within the chunk that holds the refused point.
import type { Reading } from '../../proto/domain.js';
import type { DecodedCache } from '../journal/decoded-cache.js';
import type { JournalEntry, JournalPort } from '../journal/journal.js';
import { readingsOf } from '../journal/readings.js';
import type { Metrics } from '../metrics.js';
import { TelemetryInputError } from '../store/influx/schema.js';
import type { Stores, TelemetryStore } from '../store/ports.js';
import { TelemetryRefusedError } from '../store/telemetry-errors.js';
import { deadLetterRefused, writeAroundRefusals, type EntryReading, type Submit } from './influx-refusals.js';

export interface InfluxWritesDeps {
  journal: JournalPort;
  decoded: DecodedCache;
  stores: Stores;
  telemetry: TelemetryStore;
  metrics: Metrics;
  log: { warn(o: object, m?: string): void; error(o: object, m?: string): void };
  chunk?: number;
  /** How long a chunk may wait to fill after the last one started (default CHUNK_GATHER_MS). */
  gatherMs?: number;
  /** Lag gauges, after entries were marked done. */
  onMarked(): void;
}

/** One flush per at most this many lines: the WriteApi has no back-pressure of its own. */
const LINES_PER_CHUNK = 25_000;
/** Journal rows per chunk, at most, unless `deps.chunk` says otherwise. */
const ROWS_PER_CHUNK = 2000;
/** Chunks written at once: a flood of concurrent requests makes influxd time out (then all is retried). */
const CHUNKS_IN_FLIGHT = 2;
/**
 * Below a full chunk's worth of pending readings, a chunk starts at most this long after the last
 * one: at a steady 20,000 readings/s, chunks taken as soon as a slot was free held a batch or two
 * each, and their fixed cost (journal query, profile lookups, HTTP request, journal mark) on the
 * main thread doubled ingest's CPU per reading compared with a full load; influxd paid per request
 * too. InfluxDB is not on the prompt path (docs/architecture.md#data-flow), so a reading there
 * 100 ms later costs nobody anything; a backlog still goes out at once, a chunk after another.
 */
export const CHUNK_GATHER_MS = 100;

type Tags = (vin: string) => Record<string, string>;
type Outcome = 'written' | 'outage' | 'failed';

/** The oldest entries holding about `limit` readings (at least one entry), decoded once. */
export function takeByReadings(pending: JournalEntry[], limit: number): { entries: JournalEntry[]; readings: Reading[] } {
  const entries: JournalEntry[] = [];
  const readings: Reading[] = [];
  for (const e of pending) {
    if (entries.length > 0 && readings.length >= limit) break;
    try {
      e.readings ??= readingsOf(e);
    } catch {
      // validated before it was journalled; only a codec change could get here: skip, never block
      e.readings = [];
    }
    entries.push(e);
    for (const r of e.readings) readings.push(r);
  }
  return { entries, readings };
}

export class InfluxWrites {
  /** After an outage: how long the loop waits before it tries again (0: no outage). */
  backoffMs = 0;
  private readonly inFlight = new Set<number>();
  private readonly chunks = new Set<Promise<Outcome>>();
  private sealed: Promise<unknown> = Promise.resolve();
  /** Readings per pending entry, as the last chunk found. */
  readingsPerEntry = 1;
  /** When the last chunk was started (performance.now()). */
  private lastStart = -Infinity;

  constructor(private readonly deps: InfluxWritesDeps) {}

  /**
   * Start the next chunk, or wait for one in flight. Resolves true when there may be more to do at
   * once, false when the loop should sleep (nothing pending, or a chunk just met an outage).
   */
  async step(): Promise<boolean> {
    // during an outage one chunk at a time: each retry is one probe of InfluxDB, not two
    if (this.chunks.size >= (this.backoffMs > 0 ? 1 : CHUNKS_IN_FLIGHT)) return this.settleOne();
    const { journal, stores, decoded } = this.deps;
    await this.gather();
    // the entries in flight are still pending in the journal: read past them; and no more rows than
    // a chunk's readings need, judging by the last chunk (2,000 rows of 50 readings were 4 chunks)
    const want = Math.min(this.rowsPerChunk, Math.ceil(LINES_PER_CHUNK / this.readingsPerEntry) + 16);
    const limit = want + this.inFlight.size;
    const pending = journal.pendingForInflux(0, limit, decoded.held).filter((e) => !this.inFlight.has(e.id));
    const { entries, readings } = takeByReadings(pending, LINES_PER_CHUNK);
    if (entries.length > 0) this.readingsPerEntry = Math.max(1, readings.length / entries.length);
    if (entries.length === 0) return this.chunks.size > 0 ? this.settleOne() : false;
    for (const e of entries) this.inFlight.add(e.id);
    this.lastStart = performance.now();
    // the writer asks for tags synchronously: look the chunk's vehicles up once, before writing
    let tags: Tags;
    try {
      const vins = [...new Set(entries.map((e) => e.vin))];
      const profiles = await Promise.all(vins.map((vin) => stores.vehicles.get(vin)));
      const byVin = new Map(vins.map((vin, i) => [vin, profiles[i]]));
      tags = (vin: string): Record<string, string> => {
        const v = byVin.get(vin);
        return v ? { model: v.model, powertrain: v.powertrain, dealer: v.dealerId } : {};
      };
    } catch (err) {
      for (const e of entries) this.inFlight.delete(e.id);
      throw err;
    }
    const chunk: Promise<Outcome> = this.writeAndMark(entries, readings, tags, this.backoffMs).finally(() => {
      for (const e of entries) this.inFlight.delete(e.id);
      this.chunks.delete(chunk);
    });
    this.chunks.add(chunk);
    return true;
  }

  /** Wait for the next chunk to fill (CHUNK_GATHER_MS), unless a chunk's worth is pending already. */
  private async gather(): Promise<void> {
    const gatherMs = this.deps.gatherMs ?? CHUNK_GATHER_MS;
    const left = this.lastStart + gatherMs - performance.now();
    if (left <= 0 || this.backoffMs > 0) return;
    // a chunk's worth pending (by readings, or by the rows a chunk may take): a backlog, no waiting
    const waiting = this.deps.journal.lag().influx - this.inFlight.size;
    if (waiting * this.readingsPerEntry >= LINES_PER_CHUNK || waiting >= this.rowsPerChunk) return;
    await new Promise((r) => setTimeout(r, left));
  }

  private get rowsPerChunk(): number {
    return this.deps.chunk ?? ROWS_PER_CHUNK;
  }

  /** Journal entries in the chunks being written now (taken, not yet confirmed). */
  get inFlightEntries(): number {
    return this.inFlight.size;
  }

  /** Every chunk in flight finished (the pipeline is stopping). */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.chunks]);
  }

  private async settleOne(): Promise<boolean> {
    return (await Promise.race(this.chunks)) === 'written';
  }

  /** `backoffAtStart`: the backoff when the chunk was started (chunks started together back off once). */
  private async writeAndMark(entries: JournalEntry[], readings: Reading[], tags: Tags, backoffAtStart: number): Promise<Outcome> {
    const { journal, metrics, log } = this.deps;
    let written: number;
    try {
      written = await this.writeChunk(entries, readings, tags);
    } catch (err) {
      // an outage (no answer, 5xx, 429, credentials, not connected yet): everything stays in the journal
      metrics.influxErrors.inc();
      this.backoffMs = Math.max(this.backoffMs, Math.min(30_000, Math.max(1000, backoffAtStart * 2)));
      log.warn({ err: (err as Error).message, retryInMs: this.backoffMs }, 'InfluxDB write failed; kept in the journal');
      return 'outage';
    }
    try {
      journal.markInfluxDone(entries.map((e) => e.id));
    } catch (err) {
      // written but not marked (journal not writable): written again later, which is idempotent
      metrics.loopErrors.inc({ loop: 'pipeline_influx' });
      log.error({ err, loop: 'influx' }, 'pipeline step failed; retrying');
      return 'failed';
    }
    this.backoffMs = 0;
    this.deps.decoded.done('influx', entries);
    metrics.influxWritten.inc(written);
    this.deps.onMarked();
    return 'written';
  }

  /**
   * Write these readings and flush exactly them: the next chunk's write waits until this chunk's
   * flush has sealed its batch, so no two chunks share a flush.
   */
  private readonly submit: Submit = (readings, tags) => {
    const { telemetry } = this.deps;
    let flushed: Promise<void> | undefined;
    const sealed = this.sealed.then(async () => {
      await telemetry.write(readings, tags);
      flushed = telemetry.flush();
    });
    this.sealed = sealed.catch(() => undefined);
    return sealed.then(() => flushed);
  };

  /** Write and flush a chunk; resolves with the readings InfluxDB took, rejects only on an outage. */
  private async writeChunk(entries: JournalEntry[], readings: Reading[], tags: Tags): Promise<number> {
    try {
      await this.submit(readings, tags);
      return readings.length;
    } catch (err) {
      // A batch the store refuses would be refused forever: dead-letter it, keep the others.
      if (err instanceof TelemetryInputError) return this.writeOneByOne(entries, tags);
      if (err instanceof TelemetryRefusedError) return this.writeAround(entries, tags, err);
      throw err;
    }
  }

  /** InfluxDB refused points of the chunk: narrow them down, dead-letter them, write the rest. */
  private async writeAround(entries: JournalEntry[], tags: Tags, err: TelemetryRefusedError): Promise<number> {
    const items: EntryReading[] = entries.flatMap((entry) => (entry.readings ?? readingsOf(entry)).map((reading) => ({ entry, reading })));
    const { written, refused } = await writeAroundRefusals(this.submit, items, tags, err);
    if (refused.length > 0) {
      const letters = await deadLetterRefused(this.deps.stores, this.deps.metrics, refused);
      this.deps.log.warn(
        {
          refused: refused.length,
          written,
          deadLetters: letters,
          vins: [...new Set(refused.map((r) => r.entry.vin))].slice(0, 10),
          reason: refused[0].message,
        },
        'InfluxDB refused readings as input; dead-lettered, the rest written',
      );
    }
    return written;
  }

  /** The store refused a write as bad input: each entry on its own, the refused ones dead-lettered. */
  private async writeOneByOne(entries: JournalEntry[], tags: Tags): Promise<number> {
    const { journal, stores, metrics } = this.deps;
    let written = 0;
    for (const e of entries) {
      const readings = e.readings ?? readingsOf(e);
      try {
        await this.submit(readings, tags);
        written += readings.length;
      } catch (err) {
        if (err instanceof TelemetryRefusedError) {
          written += await this.writeAround([e], tags, err);
          continue;
        }
        if (!(err instanceof TelemetryInputError)) throw err;
        // Done with for good at once: should InfluxDB fail later in this step, the retry must not
        // dead-letter this entry a second time.
        await stores.transaction(async () => {
          await stores.deadLetters.add({
            topic: `telemetry/${e.vin}`,
            clientId: null,
            reason: `influx: ${err.message}`,
            payload: e.payload,
            at: Date.now(),
          });
          journal.markInfluxDone([e.id]);
        });
        this.deps.decoded.done('influx', [e]);
        metrics.deadLetters.inc({ reason: 'influx_refused' });
      }
    }
    return written;
  }
}
