// End-to-end benchmark: the whole stack on this machine against a real influxd, compared in the same
// run with that influxd's raw ceiling and the broker's own ceiling.
import mqtt from 'mqtt';
import { decodeHmiPrompt } from '../proto/codec.js';
import { startLocalInfluxd, influxQuery } from '../tools/influxd-local.js';
import { startEmbeddedBroker } from '../ingest/inbound/embedded.js';
import { freePort } from '../tools/free-port.js';
import { benchInfluxCeiling } from './influx-ceiling.js';
import { startIngestProcess, type IngestProcess } from './ingest-process.js';
import {
  BENCH_T0,
  benchVin,
  birth,
  closeAll,
  connectVehicles,
  drivingSample,
  publishLoad,
  publishQos1,
  registerVehicles,
  telemetryPayload,
} from './load.js';
import { cpuSeconds, percentiles, round, rssMb, slope } from './stats.js';
import type { Sample } from '../proto/domain.js';

export interface E2eOptions {
  quick: boolean;
  soakSeconds?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function countPoints(url: string, db: string): Promise<number> {
  const r = await influxQuery(url, db, 'SELECT count("Vehicle.Speed") FROM "telemetry"');
  return Number(r.results?.[0]?.series?.[0]?.values?.[0]?.[1] ?? 0);
}

/** The broker alone: aedes with a handler that acknowledges at once. */
async function brokerCeiling(vehicles: number, batches: number, samplesPerBatch: number) {
  const port = await freePort();
  const link = await startEmbeddedBroker(
    { prefix: 'v1', host: '127.0.0.1', port },
    { telemetry: async () => {}, status: async () => {}, ack: async () => {} },
  );
  const vins = Array.from({ length: vehicles }, (_, i) => benchVin(i, 'LCAP'));
  const clients = await connectVehicles(`mqtt://127.0.0.1:${port}`, vins);
  const r = await publishLoad({ clients, vins, batches, samplesPerBatch, inflight: 16 });
  await closeAll(clients);
  await link.close();
  return {
    batchesPerSec: round((r.batches / r.elapsedMs) * 1000),
    readingsPerSec: round((r.readings / r.elapsedMs) * 1000),
    samplesPerBatch,
  };
}

/** Probe vehicles: alternate re-arm (60 %) and critical (5 %) SOC; time publish -> HMI and -> SSE. */
async function latencyProbes(ingest: IngestProcess, probes: string[], cycles: number, gapMs: number) {
  const hmi: number[] = [];
  const sse: number[] = [];
  const sentAt = new Map<string, number>();
  const clients = await connectVehicles(ingest.mqttUrl, probes);
  for (let i = 0; i < probes.length; i++) {
    const c = clients[i];
    await new Promise<void>((res, rej) => c.subscribe(`v1/vehicles/${probes[i]}/prompts`, { qos: 1 }, (e) => (e ? rej(e) : res())));
    c.on('message', (_t, payload) => {
      const p = decodeHmiPrompt(payload);
      const t0 = sentAt.get(probes[i]);
      if (p.kind === 'charging.critical_soc' && !p.withdrawn && t0 !== undefined) hmi.push(performance.now() - t0);
    });
    await publishQos1(c, `v1/vehicles/${probes[i]}/status`, birth(probes[i]));
  }
  const ac = new AbortController();
  const stream = (async () => {
    const res = await fetch(`${ingest.api}/api/v1/stream?dealerId=bench`, { signal: ac.signal, headers: ingest.auth });
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = frame.split('\n').find((l) => l.startsWith('data:'));
        if (!data) continue;
        const ev = JSON.parse(data.slice(5));
        const t0 = sentAt.get(ev.prompt?.vin);
        if (ev.step === 'created' && ev.prompt?.kind === 'charging.critical_soc' && t0 !== undefined) sse.push(performance.now() - t0);
      }
    }
  })().catch(() => undefined);
  await sleep(500);
  let seq = 1_000_000;
  let ts = BENCH_T0 + 400 * 86_400_000;
  for (let cycle = 0; cycle < cycles; cycle++) {
    await Promise.all(
      probes.map(async (vin, i) => {
        const charged: Sample = {
          ...drivingSample(ts, 0, 60),
          signals: {
            ...drivingSample(ts, 0, 60).signals,
            'Vehicle.Powertrain.TractionBattery.Charging.IsCharging': true,
            'Vehicle.LowVoltageSystemState': 'OFF',
            'Vehicle.Speed': 0,
          },
        };
        await publishQos1(clients[i], `v1/vehicles/${vin}/telemetry`, telemetryPayload(vin, seq, [charged]));
        const low = {
          ts: ts + 1000,
          signals: {
            ...charged.signals,
            'Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed': 5,
            'Vehicle.Powertrain.TractionBattery.Charging.IsCharging': false,
          },
        };
        sentAt.set(vin, performance.now());
        await publishQos1(clients[i], `v1/vehicles/${vin}/telemetry`, telemetryPayload(vin, seq + 1, [low]));
      }),
    );
    seq += 2;
    ts += 3_600_000;
    await sleep(gapMs);
  }
  await sleep(2000);
  ac.abort();
  await stream;
  await closeAll(clients);
  return { hmiMs: percentiles(hmi), sseMs: percentiles(sse), expected: probes.length * cycles };
}

export async function benchE2E(opts: E2eOptions): Promise<Record<string, unknown>> {
  const q = opts.quick;
  const influx = await startLocalInfluxd({ database: 'e2e' });
  const rss: Array<[number, number]> = [];
  let ingest: IngestProcess | undefined;
  try {
    await influxQuery(influx.url, 'ceiling', 'CREATE DATABASE "ceiling"');
    const ceiling = await benchInfluxCeiling({ url: influx.url, database: 'ceiling', lines: q ? 50_000 : 1_000_000, batch: 5000 });
    const ceilingRate: number = Math.max(ceiling.raw?.linesPerSec ?? 0, ceiling.rawConcurrent?.linesPerSec ?? 0);
    const broker = await brokerCeiling(q ? 20 : 200, q ? 2000 : 40_000, 50);

    ingest = await startIngestProcess({
      INFLUX_URL: influx.url,
      INFLUX_BUCKET: 'e2e',
      ODOPULSE_CLOCK: 'event',
      ODOPULSE_SWEEP_MS: '3600000',
      ODOPULSE_LOG_LEVEL: 'error',
      // registering 10,000 vehicles is the load generator's set-up, not what the HTTP limit guards against
      ODOPULSE_HTTP_RATE_LIMIT: '1000000',
      // the latency probes jump 400 simulated days past the load's readings on purpose (fresh dates)
      ODOPULSE_MAX_CLOCK_SKEW_S: '315360000',
    });
    const pid = ingest.proc.pid!;
    const t0 = performance.now();
    const sampler = setInterval(() => {
      const m = rssMb(pid);
      if (m !== null) rss.push([round((performance.now() - t0) / 1000, 1), m]);
    }, 1000);

    // 0. warm-up on other vehicles: a service runs warm, and in a 3 s quick run a cold process
    // spends much of its CPU compiling (ODOPULSE_BENCH_WARMUP=0 measures it cold)
    const vehicles = q ? 50 : 500;
    const samplesPerBatch = 50;
    const warmBatches = process.env.ODOPULSE_BENCH_WARMUP === '0' ? 0 : q ? 400 : 2000;
    let base = 0;
    if (warmBatches) {
      const warmVins = Array.from({ length: vehicles }, (_, i) => benchVin(i, 'LWARM'));
      await registerVehicles(ingest.api, ingest.auth, warmVins);
      const warm = await connectVehicles(ingest.mqttUrl, warmVins);
      const w = await publishLoad({ clients: warm, vins: warmVins, batches: warmBatches, samplesPerBatch, inflight: 16 });
      const until = Date.now() + 120_000;
      while ((base = await countPoints(influx.url, 'e2e')) < w.readings && Date.now() < until) await sleep(100);
      await closeAll(warm);
    }

    // 1. throughput with zero loss, counted in InfluxDB
    const batches = q ? 400 : 10_000;
    const vins = Array.from({ length: vehicles }, (_, i) => benchVin(i));
    await registerVehicles(ingest.api, ingest.auth, vins);
    const clients = await connectVehicles(ingest.mqttUrl, vins);
    const cpu0 = cpuSeconds(pid) ?? 0;
    const start = performance.now();
    const pub = await publishLoad({ clients, vins, batches, samplesPerBatch, inflight: 16 });
    let counted = 0;
    const deadline = Date.now() + 600_000;
    // polled often: in a quick run the poll interval alone would be a tenth of the time measured
    while ((counted = (await countPoints(influx.url, 'e2e')) - base) < pub.readings && Date.now() < deadline) await sleep(q ? 50 : 250);
    const elapsed = performance.now() - start;
    const cpu = (cpuSeconds(pid) ?? 0) - cpu0;
    const e2eRate = (counted / elapsed) * 1000;
    await closeAll(clients);

    // 2. latency at half of the maximum load, with probes
    const half = { batchesPerSec: e2eRate / samplesPerBatch / 2 };
    const probeVins = Array.from({ length: q ? 5 : 20 }, (_, i) => benchVin(i, 'LPRB'));
    await registerVehicles(ingest.api, ingest.auth, probeVins);
    const loadClients = await connectVehicles(ingest.mqttUrl, vins);
    const halfDurationS = q ? 5 : 30;
    const background = publishLoad({
      clients: loadClients,
      vins,
      batches: Math.ceil(half.batchesPerSec * halfDurationS),
      samplesPerBatch,
      batchesPerSec: half.batchesPerSec,
      seqStart: 1_000_000,
    });
    const latency = await latencyProbes(ingest, probeVins, q ? 3 : 10, q ? 500 : 2000);
    await background;
    await closeAll(loadClients);

    // 3. connected vehicles
    const target = q ? 500 : 10_000;
    const connVins = Array.from({ length: target }, (_, i) => benchVin(i, 'LCNX'));
    const conn = await connectVehicles(ingest.mqttUrl, connVins, 500).then(
      (cs) => ({ clients: cs, error: null as string | null }),
      (err: Error) => ({ clients: [] as mqtt.MqttClient[], error: err.message }),
    );
    const connectedRss = rssMb(pid);
    await closeAll(conn.clients);

    // 4. memory over a soak at half load
    const soakS = opts.soakSeconds ?? (q ? 5 : 120);
    const soakStart = rss.length;
    const soakClients = await connectVehicles(ingest.mqttUrl, vins);
    await publishLoad({
      clients: soakClients,
      vins,
      batches: Math.ceil(half.batchesPerSec * soakS),
      samplesPerBatch,
      batchesPerSec: half.batchesPerSec,
      seqStart: 2_000_000,
    });
    await closeAll(soakClients);
    clearInterval(sampler);
    const soak = rss.slice(soakStart);

    // What broker + InfluxDB together could carry if ingest cost nothing: each reading pays the
    // broker's time and InfluxDB's, on the same cores (same readings: bench/load.ts drivingSample).
    const combined = 1 / (1 / broker.readingsPerSec + 1 / ceilingRate);
    return {
      influxCeiling: ceiling,
      brokerCeiling: broker,
      combinedCeiling: {
        readingsPerSec: round(combined),
        brokerReadingsPerSec: broker.readingsPerSec,
        influxLinesPerSec: ceilingRate,
        formula: '1 / (1/broker + 1/influx), same run, same readings',
      },
      endToEnd: {
        warmUpReadings: warmBatches * samplesPerBatch,
        vehicles,
        samplesPerBatch,
        readingsPublished: pub.readings,
        readingsInInflux: counted,
        lost: pub.readings - counted,
        publishErrors: pub.errors,
        readingsPerSec: round(e2eRate),
        ingestCpuSharePerCore: round(cpu / (elapsed / 1000), 2),
        influxCeilingLinesPerSec: ceilingRate,
        ratioToInfluxCeiling: round(e2eRate / ceilingRate, 3),
        ratioToCombinedCeiling: round(e2eRate / combined, 3),
        target: '>= 80 % of the combined ceiling, 0 lost',
      },
      latencyAtHalfLoad: { ...latency, loadReadingsPerSec: round(half.batchesPerSec * samplesPerBatch), target: 'p99 < 200 ms' },
      connections: { target, connected: conn.clients.length, error: conn.error, ingestRssMb: connectedRss },
      memory: {
        ingestRssMb: rss.map((p) => p[1]),
        everySeconds: 1,
        soakSeconds: soakS,
        soakRssSlopeMbPerMin: round((slope(soak) ?? 0) * 60, 3),
        soakRssMinMb: Math.min(...soak.map((p) => p[1])),
        soakRssMaxMb: Math.max(...soak.map((p) => p[1])),
      },
    };
  } finally {
    await ingest?.stop().catch(() => undefined);
    await influx.stop();
  }
}
