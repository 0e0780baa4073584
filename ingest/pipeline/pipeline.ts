// The two loops that read the journal (docs/architecture.md#data-flow): the InfluxDB writer and the
// rules runner, independent so a slow or down InfluxDB never holds prompts back; both resume from
// the journal after a restart, so neither loses anything.
import { EventEmitter } from 'node:events';
import type { Reading } from '../../proto/domain.js';
import type { DecodedCache } from '../journal/decoded-cache.js';
import type { JournalEntry, JournalPort } from '../journal/journal.js';
import { readingsOf } from '../journal/readings.js';
import { TelemetryInputError } from '../store/influx/schema.js';
import type { Metrics } from '../metrics.js';
import type { IngestClock } from '../clock.js';
import type { PromptChange, Stores, TelemetryStore } from '../store/ports.js';
import { TelemetryRefusedError } from '../store/telemetry-errors.js';
import { deadLetterRefused, writeAroundRefusals, type EntryReading } from './influx-refusals.js';
import type { RulesRunner } from './rules-runner.js';

export interface PipelineDeps {
  journal: JournalPort;
  /** Readings decoded at the broker (inbound/handlers.ts), so the loops need not decode again. */
  decoded: DecodedCache;
  stores: Stores;
  telemetry: TelemetryStore;
  rules: RulesRunner;
  clock: IngestClock;
  metrics: Metrics;
  log: { info(o: object, m?: string): void; warn(o: object, m?: string): void; error(o: object, m?: string): void };
  chunk?: number;
}

const INFLUX_LINES_PER_FLUSH = 25_000;

type Tags = (vin: string) => Record<string, string>;

/** The oldest entries holding about `limit` readings (at least one entry), decoded once. */
function takeByReadings(pending: JournalEntry[], limit: number): { entries: JournalEntry[]; readings: Reading[] } {
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

export class Pipeline extends EventEmitter<{ changes: [PromptChange[]]; processed: [string[]] }> {
  private stopped = false;
  private wakeRules: (() => void) | null = null;
  private wakeInflux: (() => void) | null = null;
  private loops: Promise<void>[] = [];
  private readonly wokenDuringStep = new Set<string>();
  private influxBackoffMs = 0;

  constructor(private readonly deps: PipelineDeps) {
    super();
  }

  wake(): void {
    this.wakeRules?.();
    // after a failed write the InfluxDB loop keeps its backoff: new telemetry is no reason to retry sooner
    if (this.influxBackoffMs === 0) this.wakeInflux?.();
  }

  /** InfluxDB is back (connected): write the journal now instead of waiting out the backoff. */
  retryInfluxNow(): void {
    this.influxBackoffMs = 0;
    this.wakeInflux?.();
  }

  start(): void {
    this.loops.push(
      this.loop(
        'rules',
        () => this.rulesStep(),
        (w) => (this.wakeRules = w),
      ),
    );
    this.loops.push(
      this.loop(
        'influx',
        () => this.influxStep(),
        (w) => (this.wakeInflux = w),
      ),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeRules?.();
    this.wakeInflux?.();
    await Promise.all(this.loops);
  }

  /** Run `step` until it reports no work, then sleep until woken (or a timeout, to retry). */
  private async loop(name: string, step: () => Promise<boolean>, setWake: (w: () => void) => void): Promise<void> {
    while (!this.stopped) {
      let more = false;
      setWake(() => this.wokenDuringStep.add(name));
      try {
        more = await step();
      } catch (err) {
        this.deps.metrics.loopErrors.inc({ loop: `pipeline_${name}` });
        this.deps.log.error({ err, loop: name }, 'pipeline step failed; retrying');
        await sleep(1000);
      }
      // a wake that came while the step ran means there may be new work: look again at once
      if (more || this.stopped || this.wokenDuringStep.delete(name)) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, name === 'influx' ? Math.max(1000, this.influxBackoffMs) : 1000);
        setWake(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  private async rulesStep(): Promise<boolean> {
    const { journal, rules, metrics } = this.deps;
    const entries = journal.pendingForRules(0, this.deps.chunk ?? 2000, this.deps.decoded.held);
    if (entries.length === 0) return false;
    const end = metrics.ruleLatency.startTimer();
    const changes = await rules.applyEntries(entries);
    end();
    journal.markRulesDone(entries.map((e) => e.id));
    this.deps.decoded.done('rules', entries);
    if (changes.length) this.emit('changes', changes);
    this.emit('processed', [...new Set(entries.map((e) => e.vin))]);
    this.updateLag();
    return true;
  }

  private async influxStep(): Promise<boolean> {
    const { journal, stores, metrics } = this.deps;
    // One flush per at most INFLUX_LINES_PER_FLUSH lines: the WriteApi has no back-pressure of its
    // own, and a flood of concurrent requests makes influxd time out (then everything is retried).
    const { entries, readings } = takeByReadings(
      journal.pendingForInflux(0, this.deps.chunk ?? 2000, this.deps.decoded.held),
      INFLUX_LINES_PER_FLUSH,
    );
    if (entries.length === 0) return false;
    // the writer asks for tags synchronously: look the chunk's vehicles up once, before writing
    const vins = [...new Set(entries.map((e) => e.vin))];
    const profiles = await Promise.all(vins.map((vin) => stores.vehicles.get(vin)));
    const byVin = new Map(vins.map((vin, i) => [vin, profiles[i]]));
    const tags = (vin: string): Record<string, string> => {
      const v = byVin.get(vin);
      return v ? { model: v.model, powertrain: v.powertrain, dealer: v.dealerId } : {};
    };
    let written: number;
    try {
      written = await this.writeChunk(entries, readings, tags);
    } catch (err) {
      // an outage (no answer, 5xx, 429, credentials, not connected yet): everything stays in the journal
      metrics.influxErrors.inc();
      this.influxBackoffMs = Math.min(30_000, Math.max(1000, this.influxBackoffMs * 2));
      this.deps.log.warn({ err: (err as Error).message, retryInMs: this.influxBackoffMs }, 'InfluxDB write failed; kept in the journal');
      return false;
    }
    this.influxBackoffMs = 0;
    journal.markInfluxDone(entries.map((e) => e.id));
    this.deps.decoded.done('influx', entries);
    metrics.influxWritten.inc(written);
    this.updateLag();
    return true;
  }

  /** Write and flush a chunk; resolves with the readings InfluxDB took, rejects only on an outage. */
  private async writeChunk(entries: JournalEntry[], readings: Reading[], tags: Tags): Promise<number> {
    const { telemetry } = this.deps;
    try {
      await telemetry.write(readings, tags);
      await telemetry.flush();
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
    const { written, refused } = await writeAroundRefusals(this.deps.telemetry, items, tags, err);
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

  private async writeOneByOne(entries: JournalEntry[], tags: Tags): Promise<number> {
    const { journal, telemetry, stores, metrics } = this.deps;
    const kept: JournalEntry[] = [];
    for (const e of entries) {
      const readings = e.readings ?? readingsOf(e);
      try {
        await telemetry.write(readings, tags);
        kept.push(e);
      } catch (err) {
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
    try {
      await telemetry.flush();
    } catch (err) {
      if (err instanceof TelemetryRefusedError) return this.writeAround(kept, tags, err);
      throw err;
    }
    return kept.reduce((n, e) => n + (e.readings ?? readingsOf(e)).length, 0);
  }

  private updateLag() {
    const lag = this.deps.journal.lag();
    this.deps.metrics.journalLag.set({ stage: 'influx' }, lag.influx);
    this.deps.metrics.journalLag.set({ stage: 'rules' }, lag.rules);
  }
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
