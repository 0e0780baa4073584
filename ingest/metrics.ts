// Prometheus metrics of the ingest service (GET /metrics).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Read at scrape time; unset, the gauges stay 0 (tests, tools). */
export interface MetricSources {
  /** Outbox events in one state (Outbox.count). */
  outboxCount?(state: 'pending' | 'dead'): Promise<number>;
}

export function createMetrics(sources: MetricSources = {}) {
  const registry = new Registry();
  const outboxCount = async (state: 'pending' | 'dead'): Promise<number | undefined> => {
    try {
      return await sources.outboxCount?.(state);
    } catch {
      return undefined; // storage trouble: the scrape still answers, the gauge keeps its last value
    }
  };
  collectDefaultMetrics({ register: registry, prefix: 'odopulse_' });
  const m = {
    registry,
    batches: new Counter({
      name: 'odopulse_telemetry_batches_total',
      help: 'Telemetry batches received, by result',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    readings: new Counter({ name: 'odopulse_readings_total', help: 'Samples journalled', registers: [registry] }),
    deadLetters: new Counter({
      name: 'odopulse_dead_letters_total',
      help: 'Payloads rejected to the dead-letter store, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    // docs/architecture.md#disk-full
    journalWriteFailures: new Counter({
      name: 'odopulse_journal_write_failures_total',
      help: 'Telemetry batches refused (no PUBACK; the vehicle sends them again) because the journal could not be written, by reason: full, io, other',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    deadLetterWriteFailures: new Counter({
      name: 'odopulse_dead_letter_write_failures_total',
      help: 'Payloads for the dead-letter store that could not be written, by reason (telemetry and prompt acks refused, no PUBACK; status lost if already acknowledged)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    seqGaps: new Counter({
      name: 'odopulse_seq_gaps_total',
      help: 'Telemetry seqs found missing within one boot id (a batch skipped ahead), counted when found',
      registers: [registry],
    }),
    seqGapsFilled: new Counter({
      name: 'odopulse_seq_gaps_filled_total',
      help: 'Late telemetry batches that filled a missing seq of their boot id',
      registers: [registry],
    }),
    hmiInvalidTimeZones: new Counter({
      name: 'odopulse_hmi_invalid_time_zone_total',
      help: "HMI timing decisions that fell back to the locale's time zone because the stored profile's is not a valid IANA zone",
      registers: [registry],
    }),
    influxWritten: new Counter({ name: 'odopulse_influx_points_total', help: 'Samples accepted by InfluxDB', registers: [registry] }),
    influxErrors: new Counter({
      name: 'odopulse_influx_write_errors_total',
      help: 'Failed InfluxDB flushes (retried from the journal)',
      registers: [registry],
    }),
    prompts: new Counter({
      name: 'odopulse_prompt_changes_total',
      help: 'Prompt changes, by step and kind',
      labelNames: ['step', 'kind'] as const,
      registers: [registry],
    }),
    detectorFailures: new Counter({
      name: 'odopulse_detector_failures_total',
      help: 'Exceptions in detectors (isolated), by family',
      labelNames: ['family'] as const,
      registers: [registry],
    }),
    loopErrors: new Counter({
      name: 'odopulse_loop_errors_total',
      help: 'Failures of a background loop or timer, logged and retried (pipeline rules/influx, sweep, prune, HMI delivery/withdraw)',
      labelNames: ['loop'] as const,
      registers: [registry],
    }),
    hmiSent: new Counter({
      name: 'odopulse_hmi_prompts_sent_total',
      help: 'Prompts published to the HMI topic',
      labelNames: ['urgent'] as const,
      registers: [registry],
    }),
    acks: new Counter({
      name: 'odopulse_hmi_acks_total',
      help: 'HMI acks, by outcome',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    denied: new Counter({
      name: 'odopulse_mqtt_denied_total',
      help: 'Connections, publishes and subscriptions refused by the broker ACL',
      registers: [registry],
    }),
    outboxDead: new Counter({
      name: 'odopulse_outbox_dead_total',
      help: 'Webhook events given up after ODOPULSE_WEBHOOK_GIVE_UP_HOURS (moved to dead, kept until retried)',
      registers: [registry],
    }),
    outboxPending: new Gauge({
      name: 'odopulse_outbox_pending',
      help: 'Webhook events waiting for delivery (not delivered, not dead)',
      registers: [registry],
      // async collect: prom-client awaits it at scrape time
      async collect() {
        const n = await outboxCount('pending');
        if (n !== undefined) this.set(n);
      },
    }),
    outboxDeadNow: new Gauge({
      name: 'odopulse_outbox_dead',
      help: 'Webhook events dead right now (given up, not yet retried)',
      registers: [registry],
      async collect() {
        const n = await outboxCount('dead');
        if (n !== undefined) this.set(n);
      },
    }),
    backpressureHolds: new Counter({
      name: 'odopulse_backpressure_holds_total',
      help: 'Telemetry batches whose PUBACK waited because the rules or the InfluxDB writer were behind (ODOPULSE_BACKLOG_READINGS)',
      registers: [registry],
    }),
    backpressureClosed: new Gauge({
      name: 'odopulse_backpressure_closed',
      help: '1 while PUBACKs of new telemetry wait for the loops to catch up, else 0',
      registers: [registry],
    }),
    backpressureForced: new Counter({
      name: 'odopulse_backpressure_forced_total',
      help: 'Times the back-pressure gate opened after its 5 s limit with the loops still behind',
      registers: [registry],
    }),
    journalLag: new Gauge({
      name: 'odopulse_journal_pending',
      help: 'Journal entries not yet processed',
      labelNames: ['stage'] as const,
      registers: [registry],
    }),
    ruleLatency: new Histogram({
      name: 'odopulse_rules_batch_seconds',
      help: 'Rules pool time per processed chunk',
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [registry],
    }),
  };
  return m;
}
export type Metrics = ReturnType<typeof createMetrics>;
