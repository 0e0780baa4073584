// The two loops that read the journal (docs/architecture.md#data-flow): the InfluxDB writer and the
// rules runner, independent so a slow or down InfluxDB never holds prompts back; both resume from
// the journal after a restart, so neither loses anything.
import { EventEmitter } from 'node:events';
import type { Reading } from '../../proto/domain.js';
import type { DecodedCache } from '../journal/decoded-cache.js';
import type { Journal, JournalEntry } from '../journal/journal.js';
import { readingsOf } from '../journal/readings.js';
import { TelemetryInputError } from '../store/influx/schema.js';
import type { Metrics } from '../metrics.js';
import type { IngestClock } from '../clock.js';
import type { PromptChange, Stores, TelemetryStore } from '../store/ports.js';
import type { RulesRunner } from './rules-runner.js';

export interface PipelineDeps {
  journal: Journal;
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
    const { journal, telemetry, stores, metrics } = this.deps;
    // One flush per at most INFLUX_LINES_PER_FLUSH lines: the WriteApi has no back-pressure of its
    // own, and a flood of concurrent requests makes influxd time out (then everything is retried).
    const { entries, readings } = takeByReadings(
      journal.pendingForInflux(0, this.deps.chunk ?? 2000, this.deps.decoded.held),
      INFLUX_LINES_PER_FLUSH,
    );
    if (entries.length === 0) return false;
    const tags = (vin: string): Record<string, string> => {
      const v = stores.vehicles.get(vin);
      return v ? { model: v.model, powertrain: v.powertrain, dealer: v.dealerId } : {};
    };
    try {
      await telemetry.write(readings, tags);
      await telemetry.flush();
    } catch (err) {
      if (err instanceof TelemetryInputError) {
        // A batch the store refuses would be refused forever: dead-letter it, keep the others.
        await this.writeOneByOne(entries, tags);
        return true;
      }
      metrics.influxErrors.inc();
      this.influxBackoffMs = Math.min(30_000, Math.max(1000, this.influxBackoffMs * 2));
      this.deps.log.warn({ err: (err as Error).message, retryInMs: this.influxBackoffMs }, 'InfluxDB write failed; kept in the journal');
      return false;
    }
    this.influxBackoffMs = 0;
    journal.markInfluxDone(entries.map((e) => e.id));
    this.deps.decoded.done('influx', entries);
    metrics.influxWritten.inc(readings.length);
    this.updateLag();
    return true;
  }

  private async writeOneByOne(entries: JournalEntry[], tags: (vin: string) => Record<string, string>): Promise<void> {
    const { journal, telemetry, stores, metrics } = this.deps;
    let written = 0;
    for (const e of entries) {
      const readings = e.readings ?? readingsOf(e);
      try {
        await telemetry.write(readings, tags);
        written += readings.length;
      } catch (err) {
        if (!(err instanceof TelemetryInputError)) throw err;
        // Done with for good at once: should InfluxDB fail later in this step, the retry must not
        // dead-letter this entry a second time.
        stores.transaction(() => {
          stores.deadLetters.add({
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
    await telemetry.flush();
    journal.markInfluxDone(entries.map((e) => e.id));
    this.deps.decoded.done('influx', entries);
    this.influxBackoffMs = 0;
    metrics.influxWritten.inc(written);
    this.updateLag();
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
