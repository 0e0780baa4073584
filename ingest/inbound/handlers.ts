// What ingest does with each inbound MQTT message, for either broker adapter (embedded.ts,
// external.ts): decode and validate, journal telemetry (the broker PUBACKs once the promise
// resolves), dead-letter what is invalid with its reason (docs/contract.md#dead-letters).
import { CodecError, decodeAgentStatus, decodePromptAck, decodeTelemetryBatch } from '../../proto/codec.js';
import type { IngestClock } from '../clock.js';
import type { DecodedCache } from '../journal/decoded-cache.js';
import type { Journal } from '../journal/journal.js';
import { readingsOfBatch } from '../journal/readings.js';
import type { Metrics } from '../metrics.js';
import type { PromptChange, Stores } from '../store/ports.js';
import type { InboundHandlers } from './topics.js';

export interface InboundDeps {
  journal: Journal;
  decoded: DecodedCache;
  stores: Pick<Stores, 'deadLetters' | 'vehicles' | 'prompts'>;
  metrics: Metrics;
  clock: IngestClock;
  /** New telemetry is in the journal: wake the loops that read it. */
  onJournalled(): void;
  /** A vehicle's birth message arrived (deliver its pending prompts). */
  onOnline(vin: string): void;
  /** HMI acks changed prompts (outbox, stream). */
  onAcks(changes: PromptChange[]): void;
}

export function createInboundHandlers(deps: InboundDeps): InboundHandlers {
  function deadLetter(channel: string, vin: string, clientId: string | null, err: unknown, payload: Buffer) {
    const reason = err instanceof CodecError ? err.failure : 'error';
    deps.stores.deadLetters.add({ topic: `${channel}/${vin}`, clientId, reason: (err as Error).message, payload, at: Date.now() });
    deps.metrics.deadLetters.inc({ reason });
  }

  return {
    telemetry: async (vin, payload, clientId) => {
      const { metrics, stores, journal, clock } = deps;
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
        deps.decoded.put(vin, batch.seq, readingsOfBatch(batch));
        metrics.readings.inc(batch.samples.length);
        for (const s of batch.samples) clock.observe(s.ts);
        deps.onJournalled();
      }
    },
    status: (vin, payload, clientId) => {
      try {
        const s = decodeAgentStatus(payload);
        if (s.vin !== vin) throw new CodecError('status', 'invalid', `vin ${s.vin} does not match topic vin ${vin}`);
        deps.stores.vehicles.setOnline(vin, s.online, { agentVersion: s.agentVersion, configVersion: s.configVersion, at: Date.now() });
        if (s.online) deps.onOnline(vin);
      } catch (err) {
        deadLetter('status', vin, clientId, err, payload);
      }
    },
    ack: (vin, payload, clientId) => {
      try {
        const a = decodePromptAck(payload);
        const change = deps.stores.prompts.recordHmiAck(a.promptId, vin, a.outcome, a.ts);
        deps.metrics.acks.inc({ outcome: a.outcome });
        if (change) deps.onAcks([change]);
      } catch (err) {
        deadLetter('prompts/ack', vin, clientId, err, payload);
      }
    },
  };
}
