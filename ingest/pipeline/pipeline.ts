// The two loops that read the journal (docs/architecture.md#data-flow): the InfluxDB writer and the
// rules runner, independent so a slow or down InfluxDB never holds prompts back; both resume from
// the journal after a restart, so neither loses anything.
import { EventEmitter } from 'node:events';
import type { DecodedCache } from '../journal/decoded-cache.js';
import type { JournalPort } from '../journal/journal.js';
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
}

export class Pipeline extends EventEmitter<{ changes: [PromptChange[]]; processed: [string[]] }> {
  private stopped = false;
  private wakeRules: (() => void) | null = null;
  private wakeInflux: (() => void) | null = null;
  private loops: Promise<void>[] = [];
  private readonly wokenDuringStep = new Set<string>();
  private readonly influx: InfluxWrites;

  constructor(private readonly deps: PipelineDeps) {
    super();
    this.influx = new InfluxWrites({ ...deps, onMarked: () => this.updateLag() });
  }

  wake(): void {
    this.wakeRules?.();
    // after a failed write the InfluxDB loop keeps its backoff: new telemetry is no reason to retry sooner
    if (this.influx.backoffMs === 0) this.wakeInflux?.();
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

  private updateLag() {
    const lag = this.deps.journal.lag();
    this.deps.metrics.journalLag.set({ stage: 'influx' }, lag.influx);
    this.deps.metrics.journalLag.set({ stage: 'rules' }, lag.rules);
  }
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}
