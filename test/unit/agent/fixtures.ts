// Shared helpers for the agent tests: replay files and an MQTT telemetry collector (wait on it with
// waitFor from test/support/wait.ts).
import { writeFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { decodeAgentStatus, decodeTelemetryBatch } from '../../../proto/codec.js';
import type { AgentStatus, TelemetryBatch } from '../../../proto/domain.js';

export const VIN = 'LSVAU2180N2183294';
export const VIN2 = 'LSVAU2180N2183295';
export const T0 = Date.parse('2026-03-01T08:00:00Z');

/** A replay line per sample i: odometer = 1000 + i/10 (so the sample is identifiable), DTC every `faultEvery`. */
export function replayLine(i: number, vin = VIN, faultEvery = 0): string {
  const line: Record<string, unknown> = {
    ts: new Date(T0 + i * 1000).toISOString(),
    vin,
    signals: {
      'Vehicle.TraveledDistance': 1000 + i / 10,
      'Vehicle.Speed': i % 120,
      'Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed': 80 - (i % 50),
      'Vehicle.LowVoltageSystemState': 'ON',
    },
  };
  if (faultEvery > 0 && i % faultEvery === 0) line.dtcs = ['P0A80'];
  return JSON.stringify(line);
}

export const VIN3 = 'LSVAU2180N2183296';

export function writeReplay(path: string, n: number, extra: { badLines?: boolean; vin?: string } = {}): void {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    lines.push(replayLine(i, extra.vin ?? VIN));
    if (extra.badLines && i === 3) lines.push('{not json', replayLine(9999, VIN2), JSON.stringify({ ts: 'x', vin: VIN, signals: {} }));
  }
  writeFileSync(path, lines.join('\n') + '\n');
}

export interface Collector {
  client: MqttClient;
  batches: TelemetryBatch[];
  statuses: AgentStatus[];
  /** Unique batches by seq, in seq order (of one VIN, or all). */
  bySeq(vin?: string): TelemetryBatch[];
  close(): Promise<void>;
}

/** Subscribe (QoS 1, persistent session) to every vehicle's telemetry and status. */
export async function collect(url: string, opts: IClientOptions = {}): Promise<Collector> {
  const client = mqtt.connect(url, {
    clientId: `collector-${Math.random().toString(16).slice(2)}`,
    clean: false,
    reconnectPeriod: 200,
    ...opts,
  });
  const batches: TelemetryBatch[] = [];
  const statuses: AgentStatus[] = [];
  client.on('message', (topic, payload) => {
    if (topic.endsWith('/telemetry')) batches.push(decodeTelemetryBatch(payload));
    else if (topic.endsWith('/status')) statuses.push(decodeAgentStatus(payload));
  });
  client.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(['v1/vehicles/+/telemetry', 'v1/vehicles/+/status'], { qos: 1 });
  return {
    client,
    batches,
    statuses,
    bySeq(vin?: string) {
      const m = new Map<number, TelemetryBatch>();
      for (const b of batches) if (!m.has(b.seq) && (!vin || b.vin === vin)) m.set(b.seq, b);
      return [...m.values()].sort((a, b) => a.seq - b.seq);
    },
    async close() {
      await client.endAsync(true);
    },
  };
}

/** The odometer values of the unique samples, in seq order: should be 1000 + i/10 for i = 0..n-1. */
export function odometers(batches: TelemetryBatch[]): number[] {
  return batches.flatMap((b) => b.samples.map((s) => s.signals['Vehicle.TraveledDistance'] as number));
}
export const expectedOdometers = (n: number) => Array.from({ length: n }, (_, i) => 1000 + i / 10);
