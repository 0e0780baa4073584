// The two loops that read the journal (docs/architecture.md#data-flow): the InfluxDB writer and the
// rules runner, independent so a slow or down InfluxDB never holds prompts back; both resume from
// the journal after a restart, so neither loses anything.
import { EventEmitter } from 'node:events';
import type { DecodedCache } from '../journal/decoded-cache.js';
import type { JournalEntry, JournalPort } from '../journal/journal.js';
import { readingsOf } from '../journal/readings.js';
import type { Metrics } from '../metrics.js';
import type { IngestClock } from '../clock.js';
import type { PromptChange, Stores, TelemetryStore } from '../store/ports.js';
import { InfluxWrites } from './influx-writes.js';
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
  /** Readings per rules step, at most (default RULES_STEP_READINGS). */
  rulesStepReadings?: number;
  /** How long an InfluxDB chunk may wait to fill (default CHUNK_GATHER_MS, influx-writes.ts). */
  influxGatherMs?: number;
}

/**
 * Readings per rules step, at most (a step takes one entry at least): a step is one pool run and
 * one commit, and a prompt found in a batch that arrives meanwhile waits for the whole step. The
 * pool applies ~200,000 readings/s (bench/README.md#rules): ~10 ms of rules work per step. Steps of up
 * to 2,000 entries (100,000 readings) under load made every prompt wait for hundreds of ms. A rules
 * loop that falls behind takes larger steps (an eighth of its backlog), up to 2,000 entries.
 */
export const RULES_STEP_READINGS = 2_000;

export class Pipeline extends EventEmitter<{ changes: [PromptChange[]]; processed: [string[]] }> {
  private stopped = false;
  private wakeRules: (() => void) | null = null;
  private wakeInflux: (() => void) | null = null;
  private loops: Promise<void>[] = [];
  private readonly wokenDuringStep = new Set<string>();
  private readonly influx: InfluxWrites;
  /** Readings per pending entry, as the last rules step found (how many rows the next one reads). */
  private rulesReadingsPerEntry = 1;
  /** The part of the InfluxDB backlog that back-pressure leaves alone (backlogReadings). */
  private influxExcused: number;

  constructor(private readonly deps: PipelineDeps) {
    super();
    this.influx = new InfluxWrites({ ...deps, gatherMs: deps.influxGatherMs, onMarked: () => this.updateLag() });
    this.influxExcused = deps.journal.lag().influx; // what the last process left
  }

  wake(): void {
    this.wakeRules?.();
    // after a failed write the InfluxDB loop keeps its backoff: new telemetry is no reason to retry sooner
    if (this.influx.backoffMs === 0) this.wakeInflux?.();
  }

  /**
   * Readings journalled that a loop has still to take, for back-pressure (inbound/backlog-gate.ts,
   * docs/architecture.md#back-pressure), estimated from each loop's last step: the rules' backlog,
   * and the InfluxDB writer's (entries not yet taken into a chunk) except what an outage or the
   * last process left, which is the journal's to absorb: catching up on it must not stop the
   * intake. Only what piles up while InfluxDB answers counts.
   */
  backlogReadings(): number {
    const lag = this.deps.journal.lag();
    // the chunks being written are the writer's working set (two of 25,000 readings), not a backlog
    const waiting = Math.max(0, lag.influx - this.influx.inFlightEntries);
    this.influxExcused = this.influx.backoffMs > 0 ? waiting : Math.min(this.influxExcused, waiting);
    return Math.max(lag.rules * this.rulesReadingsPerEntry, (waiting - this.influxExcused) * this.influx.readingsPerEntry);
  }

  /** InfluxDB is back (connected): write the journal now instead of waiting out the backoff. */
  retryInfluxNow(): void {
    this.influx.backoffMs = 0;
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
        () => this.influx.step(),
        (w) => (this.wakeInflux = w),
      ),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeRules?.();
    this.wakeInflux?.();
    await Promise.all(this.loops);
    await this.influx.settle();
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
        const t = setTimeout(resolve, name === 'influx' ? Math.max(1000, this.influx.backoffMs) : 1000);
        setWake(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  private async rulesStep(): Promise<boolean> {
    const { journal, rules, metrics } = this.deps;
    // behind by more than 8 steps: larger steps (less commit and dispatch per reading) until caught up
    const backlog = journal.lag().rules * this.rulesReadingsPerEntry;
    const limit = Math.max(this.deps.rulesStepReadings ?? RULES_STEP_READINGS, Math.ceil(backlog / 8));
    const rows = Math.min(this.deps.chunk ?? 2000, Math.ceil(limit / this.rulesReadingsPerEntry) + 16);
    const entries = takeReadings(journal.pendingForRules(0, rows, this.deps.decoded.held), limit);
    if (entries.length === 0) return false;
    let readings = 0;
    for (const e of entries) readings += e.readings?.length ?? 0;
    this.rulesReadingsPerEntry = Math.max(1, readings / entries.length);
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

  private updateLag() {
    const lag = this.deps.journal.lag();
    this.deps.metrics.journalLag.set({ stage: 'influx' }, lag.influx);
    this.deps.metrics.journalLag.set({ stage: 'rules' }, lag.rules);
  }
}

/** The oldest entries holding at most `limit` readings (one entry at least), decoded where not held. */
function takeReadings(pending: JournalEntry[], limit: number): JournalEntry[] {
  let n = 0;
  let k = 0;
  for (; k < pending.length; k++) {
    const e = pending[k];
    try {
      e.readings ??= readingsOf(e);
    } catch {
      // left undecoded: the rules runner logs and skips it (validated before it was journalled)
    }
    const size = e.readings?.length ?? 0;
    if (k > 0 && n + size > limit) break;
    n += size;
  }
  return pending.slice(0, k);
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
