// What ingest does with each inbound MQTT message, for either broker adapter (embedded.ts,
// external.ts): decode and validate, journal telemetry (the broker PUBACKs once the promise
// resolves), dead-letter what is invalid with its reason (docs/contract.md#dead-letters).
// What cannot be stored (a full disk: docs/architecture.md#disk-full) is refused, never acknowledged:
// the handler rejects with a StorageWriteError.
import { CodecError, decodeAgentStatus, decodePromptAck, decodeTelemetryBatch, encodeTelemetryBatch } from '../../proto/codec.js';
import type { Sample, TelemetryBatch } from '../../proto/domain.js';
import type { IngestClock } from '../clock.js';
import { INGEST_SETTINGS } from '../config.js';
import type { DecodedCache } from '../journal/decoded-cache.js';
import type { AppendOutcome, BatchToAppend, JournalPort } from '../journal/journal.js';
import { readingsOfBatch } from '../journal/readings.js';
import type { Metrics } from '../metrics.js';
import type { PromptChange, Stores, VehicleSequence } from '../store/ports.js';
import { asStorageWriteError, StorageWriteError } from '../store/storage-errors.js';
import { PresenceWriter } from './presence.js';
import type { InboundHandlers } from './topics.js';

export interface InboundDeps {
  journal: JournalPort;
  decoded: DecodedCache;
  stores: Pick<Stores, 'deadLetters' | 'vehicles' | 'prompts'> & Partial<Pick<Stores, 'transaction'>>;
  metrics: Metrics;
  clock: IngestClock;
  /** ODOPULSE_MAX_CLOCK_SKEW_S and ODOPULSE_TELEMETRY_RETENTION_DAYS; unset = their defaults. */
  limits?: { maxClockSkewS?: number; telemetryRetentionDays?: number };
  /** How long a batch the journal could not write waits before its one retry (default STORAGE_RETRY_MS). */
  storageRetryMs?: number;
  /** New telemetry is in the journal: wake the loops that read it. */
  onJournalled(): void;
  /** Back-pressure (backlog-gate.ts): a promise to wait on before the PUBACK while the pipeline is too far behind. */
  gate?: { hold(): Promise<void> | undefined };
  /** A vehicle's birth message arrived (deliver its pending prompts, re-send the unconfirmed). */
  onOnline(vin: string): void;
  /** The car PUBACKed a prompt (embedded broker): it is delivered. */
  onDelivered?(vin: string, promptId: string): void;
  /** A client of the vehicle subscribed to its prompts topic: re-send what it has not confirmed. */
  onPromptsSubscribed?(vin: string): void;
  /** HMI acks changed prompts (outbox, stream). */
  onAcks(changes: PromptChange[]): void;
}

export type TimeRejection = 'future_timestamp' | 'too_old';

const DAY_MS = 86_400_000;
/** How often the vehicles' sequence view (GET /api/v1/vehicles/{vin} `sequence`) is written. */
const SEQUENCE_FLUSH_MS = 1000;
/**
 * A batch the journal could not write is tried once more after this long before it is refused: a
 * short outage costs the vehicle a late PUBACK instead of a reconnect, and a long one paces each
 * vehicle's refusals (and so its reconnects, docs/architecture.md#disk-full) to about one a second.
 */
export const STORAGE_RETRY_MS = 1000;
const iso = (t: number) => (Number.isFinite(t) ? new Date(t).toISOString() : String(t));
const ignore = (): void => {};

/**
 * Runs each vehicle's tasks one after another, in the order given: the store writes are
 * asynchronous, so without this a message waiting for one (a dead letter, a lock) could be
 * overtaken by the vehicle's next. A task with nothing before it starts at once (synchronously).
 */
function perVehicle() {
  const tails = new Map<string, Promise<void>>();
  const run = <T>(vin: string, task: () => Promise<T>): Promise<T> => {
    const prev = tails.get(vin);
    const done = prev ? prev.then(task) : task();
    const tail = done.then(ignore, ignore);
    tails.set(vin, tail);
    void tail.then(() => {
      if (tails.get(vin) === tail) tails.delete(vin);
    });
    return done;
  };
  /** Resolves once every task given so far has settled. */
  const drained = async (): Promise<void> => {
    while (tails.size > 0) await Promise.all(tails.values());
  };
  return { run, drained };
}

/**
 * The samples of a batch whose time would poison state, by reason: later than `horizon` (a head
 * unit with a wrong clock: one reading in 2099 and the vehicle's rules would ignore every real one
 * after it as older), or before `oldest` (InfluxDB refuses points outside its retention).
 */
export function screenSamples(samples: Sample[], horizon: number, oldest: number): { good: Sample[]; bad: Map<TimeRejection, Sample[]> } {
  const bad = new Map<TimeRejection, Sample[]>();
  let good: Sample[] | undefined;
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i];
    const reason: TimeRejection | undefined = s.ts > horizon ? 'future_timestamp' : s.ts < oldest ? 'too_old' : undefined;
    if (reason && !good) good = samples.slice(0, i);
    if (reason) (bad.get(reason) ?? bad.set(reason, []).get(reason)!).push(s);
    else good?.push(s);
  }
  return { good: good ?? samples, bad };
}

export interface InboundHandlersControl {
  /** Write the vehicles' sequence view now (else within SEQUENCE_FLUSH_MS of a batch). */
  flushSequences(): Promise<void>;
  /**
   * Resolves once the status and acks received so far are applied, and the dead letters of the
   * telemetry so far written (shutdown: after the broker closed, before the stores do).
   */
  drained(): Promise<void>;
}

export function createInboundHandlers(deps: InboundDeps): InboundHandlers & InboundHandlersControl {
  const skewMs = (deps.limits?.maxClockSkewS ?? INGEST_SETTINGS.ODOPULSE_MAX_CLOCK_SKEW_S[1]) * 1000;
  const retentionDays = deps.limits?.telemetryRetentionDays ?? INGEST_SETTINGS.ODOPULSE_TELEMETRY_RETENTION_DAYS[1];
  const retryMs = deps.storageRetryMs ?? STORAGE_RETRY_MS;

  /** Store a dead letter, or throw a StorageWriteError (counted): then nothing has the payload, so it must not be acknowledged. */
  async function addDeadLetter(d: Parameters<Stores['deadLetters']['add']>[0]): Promise<void> {
    try {
      await deps.stores.deadLetters.add(d);
    } catch (err) {
      const e = asStorageWriteError('dead_letters', err);
      deps.metrics.deadLetterWriteFailures.inc({ reason: e.reason });
      throw e;
    }
  }

  async function deadLetter(channel: string, vin: string, clientId: string | null, err: unknown, payload: Buffer) {
    const reason = err instanceof CodecError ? err.failure : 'error';
    await addDeadLetter({ topic: `${channel}/${vin}`, clientId, reason: (err as Error).message, payload, at: Date.now() });
    deps.metrics.deadLetters.inc({ reason });
  }

  /** Journal a batch; a failed write is retried once after `retryMs`, then refused (counted). */
  async function journalBatch(b: BatchToAppend): Promise<AppendOutcome> {
    try {
      return await deps.journal.appendBatch(b);
    } catch (err) {
      if (!(err instanceof StorageWriteError)) throw err;
    }
    await new Promise((r) => setTimeout(r, retryMs).unref());
    try {
      return await deps.journal.appendBatch(b);
    } catch (err) {
      if (err instanceof StorageWriteError) deps.metrics.journalWriteFailures.inc({ reason: err.reason });
      throw err;
    }
  }

  // The journal keeps each vehicle's sequence exactly, in its commit; the vehicle store holds a view
  // of it for the API, written at most once a second (one fsync of odopulse.db, not one per batch),
  // in full each time, and copied whole from the journal at start-up: a crash loses at most a second
  // of the view, never of the count.
  const unsaved = new Map<string, VehicleSequence>();
  let flushTimer: NodeJS.Timeout | null = null;
  // one write at a time, in order: an older view never lands over a newer one
  const sequenceWrites = perVehicle();
  const save = (list: Parameters<Stores['vehicles']['setSequences']>[0]): Promise<void> =>
    sequenceWrites.run('', async () => {
      try {
        await deps.stores.vehicles.setSequences(list, Date.now());
      } catch {
        // the store is closing (shutdown) or full: the journal has the counts; the view catches up on the next batch
      }
    });
  function flushSequences(): Promise<void> {
    if (flushTimer) clearTimeout(flushTimer);
    flushTimer = null;
    if (unsaved.size === 0) return sequenceWrites.drained();
    const list = [...unsaved].map(([vin, s]) => ({ vin, ...s }));
    unsaved.clear();
    return save(list);
  }
  void save([...deps.journal.sequences()]);
  const telemetryOrder = perVehicle();
  const controlOrder = perVehicle();
  const presence = new PresenceWriter(deps.stores);

  /** Dead-letter a batch's samples refused for their time; the payload is those samples as a batch of their own. */
  async function deadLetterSamples(
    batch: TelemetryBatch,
    clientId: string | null,
    reason: TimeRejection,
    samples: Sample[],
    limit: number,
  ) {
    const times = samples.map((s) => s.ts);
    const what =
      reason === 'future_timestamp'
        ? `more than ODOPULSE_MAX_CLOCK_SKEW_S (${skewMs / 1000} s) ahead of ${deps.clock.mode === 'wall' ? 'their arrival' : 'the fleet clock, at its pace'}: newest ${iso(Math.max(...times))}, limit ${iso(limit)}`
        : `older than ODOPULSE_TELEMETRY_RETENTION_DAYS (${retentionDays} d): oldest ${iso(Math.min(...times))}, limit ${iso(limit)}`;
    await addDeadLetter({
      topic: `telemetry/${batch.vin}`,
      clientId,
      reason: `${reason}: ${samples.length} of ${batch.samples.length} samples of seq ${batch.seq} (boot ${batch.bootId}) ${what}`,
      payload: Buffer.from(encodeTelemetryBatch({ ...batch, samples, dropped: 0 })),
      at: Date.now(),
    });
    deps.metrics.deadLetters.inc({ reason });
  }

  /**
   * Decode and screen a batch, write its dead letters, and start its journal append (`appended`,
   * not awaited: the caller does); null when the whole batch was dead-lettered.
   */
  async function screenAndAppend(vin: string, payload: Buffer, clientId: string | null, arrival: number) {
    const { metrics, journal, clock } = deps;
    let batch;
    try {
      batch = decodeTelemetryBatch(payload);
      if (batch.vin !== vin) throw new CodecError('telemetry', 'invalid', `vin ${batch.vin} does not match topic vin ${vin}`);
    } catch (err) {
      // dead-lettered and acknowledged: a refused batch would come back forever
      const reason = err instanceof CodecError ? err.failure : 'malformed';
      await addDeadLetter({ topic: `telemetry/${vin}`, clientId, reason: (err as Error).message, payload, at: arrival });
      metrics.deadLetters.inc({ reason });
      metrics.batches.inc({ result: 'dead_letter' });
      return null;
    }
    // Sample granularity, not batch: one bad clock reading must not cost the good ones beside it.
    // The journal keeps the batch re-encoded without the refused samples (same vin, boot id, seq:
    // dedup and gap counting are unchanged), and the refused ones go to the dead letters as a
    // batch of their own, with the reason, so nothing is lost. A batch with nothing left is still
    // journalled (as already processed) so a resend is a duplicate and its seq no gap. Dead letters
    // are written before the journal, and not for a batch the journal already has: a crash in
    // between repeats a dead letter at worst, never loses one.
    const horizon = clock.horizon(skewMs, arrival);
    const oldest = retentionDays > 0 ? arrival - retentionDays * DAY_MS : -Infinity;
    const { good, bad } = screenSamples(batch.samples, horizon, oldest);
    let journalled: Uint8Array | null = payload;
    if (bad.size > 0) {
      if (!journal.has(vin, batch.bootId, batch.seq)) {
        for (const [reason, samples] of bad)
          await deadLetterSamples(batch, clientId, reason, samples, reason === 'too_old' ? oldest : horizon);
      }
      journalled = good.length > 0 ? encodeTelemetryBatch({ ...batch, samples: good }) : null;
    }
    const appended = journalBatch({ vin, bootId: batch.bootId, seq: batch.seq, payload: journalled, receivedAt: arrival });
    appended.catch(ignore); // awaited by the caller a few microtasks on; never reported unhandled before that
    return { batch, good, appended };
  }

  return {
    flushSequences,
    drained: async () => {
      await Promise.all([telemetryOrder.drained(), controlOrder.drained()]);
    },
    telemetry: async (vin, payload, clientId) => {
      const { metrics, clock } = deps;
      const arrival = Date.now();
      // In order per vehicle up to the start of its journal append (the journal keeps a vehicle's
      // batches in the order they are appended); the rest follows each append's commit, as before.
      const step = await telemetryOrder.run(vin, () => screenAndAppend(vin, payload, clientId, arrival));
      if (!step) return;
      const { batch, good } = step;
      const out = await step.appended;
      metrics.batches.inc({ result: out.result === 'new' && good.length === 0 ? 'dead_letter' : out.result });
      if (out.result !== 'new') return;
      if (out.missingAdded > 0) metrics.seqGaps.inc(out.missingAdded);
      if (out.filled) metrics.seqGapsFilled.inc();
      if (out.sequence) {
        unsaved.set(vin, out.sequence);
        if (!flushTimer) flushTimer = setTimeout(() => void flushSequences(), SEQUENCE_FLUSH_MS).unref();
      }
      if (good.length === 0) return;
      deps.decoded.put(vin, batch.seq, readingsOfBatch({ ...batch, samples: good }), batch.bootId);
      metrics.readings.inc(good.length);
      let newest = good[0].ts;
      for (const s of good) if (s.ts > newest) newest = s.ts;
      clock.observe(newest, vin);
      deps.onJournalled();
      // journalled already (durable): only the PUBACK waits, and with it the vehicle's next packets
      const held = deps.gate?.hold();
      if (held) await held;
    },
    // A vehicle's births, wills and acks are applied in the order they came (online then offline, shown then acted).
    status: (vin, payload, clientId) => {
      const at = Date.now(); // when it came, not when its turn did
      return controlOrder.run(vin, async () => {
        try {
          const s = decodeAgentStatus(payload);
          if (s.vin !== vin) throw new CodecError('status', 'invalid', `vin ${s.vin} does not match topic vin ${vin}`);
          await presence.write(vin, s.online, { agentVersion: s.agentVersion, configVersion: s.configVersion, at });
          if (s.online) deps.onOnline(vin);
        } catch (err) {
          await deadLetter('status', vin, clientId, err, payload);
        }
      });
    },
    ack: (vin, payload, clientId) =>
      controlOrder.run(vin, async () => {
        try {
          const a = decodePromptAck(payload);
          // Any ack means the car has the prompt: its one 'delivered' step first, if no PUBACK
          // recorded it (always so through an external broker, BrokerLink.confirmsDelivery).
          // one transaction: their two change seqs are consecutive, so no other change is published between them
          const both = async () => [
            await deps.stores.prompts.markHmiDelivered(a.promptId, vin, a.ts),
            await deps.stores.prompts.recordHmiAck(a.promptId, vin, a.outcome, a.ts),
          ];
          const [delivered, change] = deps.stores.transaction ? await deps.stores.transaction(both) : await both();
          deps.metrics.acks.inc({ outcome: a.outcome });
          const changes = [delivered, change].filter((c): c is PromptChange => c !== undefined);
          if (changes.length) deps.onAcks(changes);
        } catch (err) {
          await deadLetter('prompts/ack', vin, clientId, err, payload);
        }
      }),
    delivered: (vin, promptId) => deps.onDelivered?.(vin, promptId),
    promptsSubscribed: (vin) => deps.onPromptsSubscribed?.(vin),
  };
}
