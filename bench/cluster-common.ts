// Shared by the cluster benchmark's parts (bench/cluster*.ts): the cluster's shape, and small
// helpers over the ingest API and InfluxDB (as bench/e2e.ts, for several instances).
import type { MqttClient } from 'mqtt';
import { influxQuery } from '../tools/influxd-local.js';
import type { IngestProcess } from './ingest-process.js';
import { connectVehicles } from './load.js';

export const PARTITIONS = 64;
export const REPLICAS = 3;
export const SAMPLES_PER_BATCH = 50;

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function countPoints(url: string, db: string): Promise<number> {
  const r = await influxQuery(url, db, 'SELECT count("Vehicle.Speed") FROM "telemetry"');
  return Number(r.results?.[0]?.series?.[0]?.values?.[0]?.[1] ?? 0);
}

/** Vehicle i on instance i mod n: the clients in the order of `vins`. */
export async function connectSpread(ingests: Pick<IngestProcess, 'mqttUrl'>[], vins: string[]): Promise<MqttClient[]> {
  const out: MqttClient[] = new Array(vins.length);
  await Promise.all(
    ingests.map(async (ing, k) => {
      const idx = vins.map((_, i) => i).filter((i) => i % ingests.length === k);
      const cs = await connectVehicles(
        ing.mqttUrl,
        idx.map((i) => vins[i]),
      );
      idx.forEach((i, j) => (out[i] = cs[j]));
    }),
  );
  return out;
}

interface Health {
  status: string;
  checks: Record<string, string | boolean>;
}

async function health(i: IngestProcess): Promise<Health> {
  return (await (await fetch(`${i.api}/healthz`)).json()) as Health;
}

/** Until the instances hold every partition between them, each some, each seeing all n members. */
export async function waitPartitionsShared(ingests: IngestProcess[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let held: number[] = [];
  for (;;) {
    const hs = await Promise.all(ingests.map(health)).catch(() => null);
    if (hs) {
      held = hs.map((h) => Number(h.checks.partitionsHeld));
      const members = hs.map((h) => Number(h.checks.clusterMembers));
      if (held.every((x) => x > 0) && held.reduce((a, b) => a + b, 0) === PARTITIONS && members.every((m) => m === ingests.length))
        return held;
    }
    if (Date.now() > deadline) throw new Error(`partitions not shared out within ${timeoutMs} ms: held ${held.join('+')}`);
    await sleep(250);
  }
}

/** Sum of one Prometheus counter/histogram series (no labels or all label sets) over the instances. */
export async function metricSum(ingests: IngestProcess[], name: string): Promise<number> {
  let total = 0;
  for (const i of ingests) {
    const text = await (await fetch(`${i.api}/metrics`, { headers: i.auth })).text();
    for (const line of text.split('\n')) {
      if (line.startsWith(name + ' ') || line.startsWith(name + '{')) total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}
