// Load generation for the end-to-end benchmark: MQTT vehicles publishing realistic batches.
import mqtt, { type MqttClient } from 'mqtt';
import { encodeAgentStatus, encodeTelemetryBatch } from '../proto/codec.js';
import type { Sample } from '../proto/domain.js';
import { VSS } from '../proto/signals.js';

export const BENCH_T0 = Date.parse('2026-01-05T00:00:00Z');

export function benchVin(i: number, prefix = 'LBENCH'): string {
  return (prefix + String(i).padStart(17 - prefix.length, '0')).slice(0, 17);
}

export async function connectVehicles(url: string, vins: string[], concurrency = 200): Promise<MqttClient[]> {
  const clients: MqttClient[] = new Array(vins.length);
  let next = 0;
  const worker = async () => {
    while (next < vins.length) {
      const i = next++;
      clients[i] = await mqtt.connectAsync(url, {
        clientId: `bench-${vins[i]}`,
        username: vins[i],
        clean: true,
        reconnectPeriod: 0,
        connectTimeout: 30_000,
        protocolVersion: 4,
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, vins.length) }, worker));
  return clients;
}

export async function closeAll(clients: MqttClient[]): Promise<void> {
  await Promise.all(clients.map((c) => c?.endAsync(true).catch(() => undefined)));
}

/** A realistic driving sample: odometer, speed, ignition, SOC, SOH, 12 V. */
export function drivingSample(ts: number, k: number, soc = 60): Sample {
  return {
    ts,
    signals: {
      [VSS.odometer]: 10_000 + k * 0.01,
      [VSS.speed]: 40 + (k % 50),
      [VSS.lowVoltageSystemState]: 'ON',
      [VSS.soc]: soc,
      [VSS.soh]: 97,
      [VSS.voltage12v]: 13.8,
      [VSS.isCharging]: false,
    },
  };
}

export function telemetryPayload(vin: string, seq: number, samples: Sample[]): Uint8Array {
  return encodeTelemetryBatch({ vin, bootId: 'bench', seq, samples, dropped: 0 });
}

export function birth(vin: string): Uint8Array {
  return encodeAgentStatus({
    vin,
    online: true,
    agentVersion: 'bench',
    configVersion: 0,
    bootId: 'bench',
    ts: Date.now(),
    spoolDropped: 0,
    spoolPending: 0,
  });
}

export function publishQos1(client: MqttClient, topic: string, payload: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) =>
    client.publish(topic, Buffer.from(payload), { qos: 1 }, (err) => (err ? reject(err) : resolve())),
  );
}

/**
 * Publish `batches` batches of `samplesPerBatch` samples spread over the vehicles, with at most
 * `inflight` unacknowledged per connection, optionally paced to `batchesPerSec`.
 * Timestamps are unique per vehicle (1 s apart, derived from the batch's seq), so every sample is a
 * distinct InfluxDB point; `seqStart` (one for all, or one per vehicle: a previous call's `nextSeq`)
 * continues a vehicle's event time where an earlier load left it. `minMs`: keep publishing past
 * `batches` until that long has passed; `stop`: end early (a background load).
 */
export async function publishLoad(opts: {
  clients: MqttClient[];
  vins: string[];
  batches: number;
  samplesPerBatch: number;
  inflight?: number;
  batchesPerSec?: number;
  seqStart?: number | number[];
  minMs?: number;
  stop?: () => boolean;
}): Promise<{ batches: number; readings: number; elapsedMs: number; errors: number; nextSeq: number[] }> {
  const { clients, vins, batches, samplesPerBatch } = opts;
  const inflight = opts.inflight ?? 8;
  const seqStart = opts.seqStart ?? 1;
  // without minMs the batches are shared out evenly; with it, each vehicle goes on while it lasts
  const perVehicle = opts.minMs ? Infinity : Math.ceil(batches / vins.length);
  const start = performance.now();
  const nextSeq: number[] = new Array(vins.length);
  let sent = 0;
  let errors = 0;
  await Promise.all(
    vins.map(async (vin, v) => {
      const client = clients[v];
      const topic = `v1/vehicles/${vin}/telemetry`;
      const pending = new Set<Promise<void>>();
      const first = typeof seqStart === 'number' ? seqStart : seqStart[v];
      let b = 0;
      for (; b < perVehicle; b++) {
        if (opts.stop?.()) break;
        if (sent >= batches && !(opts.minMs && performance.now() - start < opts.minMs)) break;
        const n = sent++;
        if (opts.batchesPerSec) {
          const due = start + (n / opts.batchesPerSec) * 1000;
          const wait = due - performance.now();
          if (wait > 1) await new Promise((r) => setTimeout(r, wait));
        }
        const seq = first + b;
        const samples = Array.from({ length: samplesPerBatch }, (_, i) => {
          const k = (seq - 1) * samplesPerBatch + i;
          return drivingSample(BENCH_T0 + k * 1000, k);
        });
        const p = publishQos1(client, topic, telemetryPayload(vin, seq, samples)).catch(() => void errors++);
        pending.add(p);
        void p.finally(() => pending.delete(p));
        if (pending.size >= inflight) await Promise.race(pending);
      }
      nextSeq[v] = first + b;
      await Promise.all(pending);
    }),
  );
  return { batches: sent, readings: sent * samplesPerBatch, elapsedMs: performance.now() - start, errors, nextSeq };
}

/** The ingest settings of the end-to-end and cluster benchmarks (cluster mode adds its own). */
export function benchIngestEnv(influxUrl: string, bucket: string): Record<string, string> {
  return {
    INFLUX_URL: influxUrl,
    INFLUX_BUCKET: bucket,
    ODOPULSE_CLOCK: 'event',
    ODOPULSE_SWEEP_MS: '3600000',
    ODOPULSE_LOG_LEVEL: 'error',
    // registering 10,000 vehicles is the load generator's set-up, not what the HTTP limit guards against
    ODOPULSE_HTTP_RATE_LIMIT: '1000000',
    // the latency probes are fresh vehicles 400 simulated days past the load's readings (fresh dates)
    ODOPULSE_MAX_CLOCK_SKEW_S: '315360000',
  };
}

/** The profile every bench vehicle is registered with (no quiet hours: HMI prompts go at once). */
export const BENCH_PROFILE = {
  model: 'Bench EV',
  powertrain: 'BEV',
  deliveryDate: '2025-06-01',
  dealerId: 'bench',
  locale: 'en',
  vehicleType: 'passenger',
  quietHours: { start: '00:00', end: '00:00' },
} as const;

/** Register (PUT) the vehicles through the API, 32 requests at a time. */
export async function registerVehicles(api: string, auth: Record<string, string>, vins: string[]) {
  let next = 0;
  const worker = async () => {
    while (next < vins.length) {
      const vin = vins[next++];
      const r = await fetch(`${api}/api/v1/vehicles/${vin}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify(BENCH_PROFILE),
      });
      if (!r.ok) throw new Error(`register ${vin}: ${r.status} ${await r.text()}`);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}
