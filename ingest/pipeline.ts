// The ingest pipeline: inbound MQTT payloads -> journal (PUBACK) -> InfluxDB and rules -> prompts.
// Two independent loops read the journal: the InfluxDB writer and the rules runner, so a slow or
// down InfluxDB never holds prompts back, and neither loses anything across a restart.
import { EventEmitter } from 'node:events';
import { CodecError, decodeAgentStatus, decodePromptAck, decodeTelemetryBatch } from '../proto/codec.js';
import type { Reading, TelemetryBatch } from '../proto/domain.js';
import type { HeldEntry, Journal, JournalEntry } from './journal.js';
import { TelemetryInputError } from './store/influx-schema.js';
import type { Metrics } from './metrics.js';
import type { IngestClock } from './clock.js';
import type { InboundHandlers } from './broker/topics.js';
import type { Stores } from './store/index.js';
import type { PromptChange, TelemetryStore } from './store/ports.js';
import type { RulesRunner } from './rules-runner.js';

export interface PipelineDeps {
  journal: Journal;
  stores: Stores;
  telemetry: TelemetryStore;
  rules: RulesRunner;
  clock: IngestClock;
  metrics: Metrics;
  log: { info(o: object, m?: string): void; warn(o: object, m?: string): void; error(o: object, m?: string): void };
  chunk?: number;
}

export function readingsOf(entry: JournalEntry): Reading[] {
  return readingsOfBatch(decodeTelemetryBatch(entry.payload));
}

function readingsOfBatch(batch: TelemetryBatch): Reading[] {
  return batch.samples.map((s) => (s.dtcs ? { vin: batch.vin, ts: s.ts, signals: s.signals, dtcs: s.dtcs } : { vin: batch.vin, ts: s.ts, signals: s.signals }));
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
const INFLUX = 1;
const RULES = 2;

/**
 * Readings decoded at the broker, kept for the two journal loops so a batch is decoded once, not
 * three times. Only an optimisation: an entry missing here (evicted, or journalled before a
 * restart) is decoded again from its journalled payload, which stays the source of truth.
 */
export class DecodedCache {
  private readonly map = new Map<string, { readings: Reading[]; pending: number }>();
  private heldReadings = 0;

  /** `maxReadings` bounds memory while a loop is behind (e.g. InfluxDB down): oldest go first. */
  constructor(private readonly maxReadings = 100_000) {}

  /** A batch the journal took as new: both loops will want it. */
  put(vin: string, seq: number, readings: Reading[]): void {
    const key = `${vin}:${seq}`;
    this.drop(key);
    this.map.set(key, { readings, pending: INFLUX | RULES });
    this.heldReadings += readings.length;
    while (this.heldReadings > this.maxReadings) {
      const first = this.map.keys().next();
      if (first.done) break;
      this.drop(first.value);
    }
  }

  /** For Journal.pendingFor*: the batch's readings when held here. */
  readonly held = (vin: string, seq: number): HeldEntry => this.map.get(`${vin}:${seq}`);

  /** The loop is done with these entries for good (marked done in the journal). */
  done(loop: 'influx' | 'rules', entries: JournalEntry[]): void {
    const bit = loop === 'influx' ? INFLUX : RULES;
    for (const e of entries) {
      const key = `${e.vin}:${e.seq}`;
      const c = this.map.get(key);
      if (!c) continue;
      c.pending &= ~bit;
      if (c.pending === 0) this.drop(key);
    }
  }

  get size(): { batches: number; readings: number } {
    return { batches: this.map.size, readings: this.heldReadings };
  }

  private drop(key: string): void {
    const c = this.map.get(key);
    if (!c) return;
    this.heldReadings -= c.readings.length;
    this.map.delete(key);
  }
}

export class Pipeline extends EventEmitter<{ changes: [PromptChange[]]; acks: [PromptChange[]]; online: [string]; processed: [string[]] }> {
  private stopped = false;
  private wakeRules: (() => void) | null = null;
  private wakeInflux: (() => void) | null = null;
  private loops: Promise<void>[] = [];
  private influxBackoffMs = 0;
  readonly decoded = new DecodedCache();

  constructor(private readonly deps: PipelineDeps) {
    super();
  }

  /** The broker adapters' handlers. */
  readonly handlers: InboundHandlers = {
    telemetry: async (vin, payload, clientId) => {
      const { metrics, stores, journal, clock } = this.deps;
      let batch;
      try {
        batch = decodeTelemetryBatch(payload);
        if (batch.vin !== vin) throw new CodecError('telemetry', 'invalid', `vin ${batch.vin} does not match topic vin ${vin}`);
      } catch (err) {
        // dead-lettered and acknowledged: a refused batch would come back forever
        const reason = err instanceof CodecError ? err.failure : 'malformed';
        stores.deadLetters.add({ topic: `telemetry/${vin}`, clientId, reason: (err as Error).message, payload, at: Date.now() });
        metrics.deadLetters.inc({ reason });
        metrics.batches.inc({ result: 'dead_letter' });
        return;
      }
      const result = await journal.append(vin, batch.seq, payload, Date.now());
      metrics.batches.inc({ result });
      if (result === 'new') {
        this.decoded.put(vin, batch.seq, readingsOfBatch(batch));
        metrics.readings.inc(batch.samples.length);
        for (const s of batch.samples) clock.observe(s.ts);
        this.wake();
      }
    },
    status: (vin, payload, clientId) => {
      try {
        const s = decodeAgentStatus(payload);
        if (s.vin !== vin) throw new CodecError('status', 'invalid', `vin ${s.vin} does not match topic vin ${vin}`);
        this.deps.stores.vehicles.setOnline(vin, s.online, { agentVersion: s.agentVersion, configVersion: s.configVersion, at: Date.now() });
        if (s.online) this.emit('online', vin);
      } catch (err) {
        this.deadLetter('status', vin, clientId, err, payload);
      }
    },
    ack: (vin, payload, clientId) => {
      try {
        const a = decodePromptAck(payload);
        const change = this.deps.stores.prompts.recordHmiAck(a.promptId, vin, a.outcome, a.ts);
        this.deps.metrics.acks.inc({ outcome: a.outcome });
        if (change) this.emit('acks', [change]);
      } catch (err) {
        this.deadLetter('prompts/ack', vin, clientId, err, payload);
      }
    },
  };

  private deadLetter(channel: string, vin: string, clientId: string | null, err: unknown, payload: Buffer) {
    const reason = err instanceof CodecError ? err.failure : 'error';
    this.deps.stores.deadLetters.add({ topic: `${channel}/${vin}`, clientId, reason: (err as Error).message, payload, at: Date.now() });
    this.deps.metrics.deadLetters.inc({ reason });
  }

  wake(): void {
    this.wakeRules?.();
    this.wakeInflux?.();
  }

  start(): void {
    this.loops.push(this.loop('rules', () => this.rulesStep(), (w) => (this.wakeRules = w)));
    this.loops.push(this.loop('influx', () => this.influxStep(), (w) => (this.wakeInflux = w)));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake();
    await Promise.all(this.loops);
  }

  /** Run `step` until it reports no work, then sleep until woken (or a timeout, to retry). */
  private async loop(name: string, step: () => Promise<boolean>, setWake: (w: () => void) => void): Promise<void> {
    while (!this.stopped) {
      let more = false;
      try {
        more = await step();
      } catch (err) {
        this.deps.log.error({ err, loop: name }, 'pipeline step failed; retrying');
        await sleep(1000);
      }
      if (more || this.stopped) continue;
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
    const entries = journal.pendingForRules(0, this.deps.chunk ?? 2000, this.decoded.held);
    if (entries.length === 0) return false;
    const end = metrics.ruleLatency.startTimer();
    const changes = await rules.applyEntries(entries);
    end();
    journal.markRulesDone(entries.map((e) => e.id));
    this.decoded.done('rules', entries);
    if (changes.length) this.emit('changes', changes);
    this.emit('processed', [...new Set(entries.map((e) => e.vin))]);
    this.updateLag();
    return true;
  }

  private async influxStep(): Promise<boolean> {
    const { journal, telemetry, stores, metrics } = this.deps;
    // One flush per at most INFLUX_LINES_PER_FLUSH lines: the WriteApi has no back-pressure of its
    // own, and a flood of concurrent requests makes influxd time out (then everything is retried).
    const { entries, readings } = takeByReadings(journal.pendingForInflux(0, this.deps.chunk ?? 2000, this.decoded.held), INFLUX_LINES_PER_FLUSH);
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
    this.decoded.done('influx', entries);
    metrics.influxWritten.inc(readings.length);
    this.updateLag();
    return true;
  }

  private async writeOneByOne(entries: JournalEntry[], tags: (vin: string) => Record<string, string>): Promise<void> {
    const { journal, telemetry, stores, metrics } = this.deps;
    for (const e of entries) {
      try {
        await telemetry.write(e.readings ?? readingsOf(e), tags);
      } catch (err) {
        if (!(err instanceof TelemetryInputError)) throw err;
        stores.deadLetters.add({ topic: `telemetry/${e.vin}`, clientId: null, reason: `influx: ${err.message}`, payload: e.payload, at: Date.now() });
        metrics.deadLetters.inc({ reason: 'influx_refused' });
      }
    }
    await telemetry.flush();
    journal.markInfluxDone(entries.map((e) => e.id));
    this.decoded.done('influx', entries);
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
