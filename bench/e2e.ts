// End-to-end benchmark: the whole stack on this machine against a real influxd, compared in the same
// run with that influxd's raw ceiling and the broker's own ceiling; the ingest child's CPU per
// reading per thread, latency at half and 90 % of the sustained rate, and CPU profiles of a separate
// profiled run (bench/README.md#e2e).
import { rmSync } from 'node:fs';
import mqtt from 'mqtt';
import { startLocalInfluxd, influxQuery } from '../tools/influxd-local.js';
import { startEmbeddedBroker } from '../ingest/inbound/embedded.js';
import { freePort } from '../tools/free-port.js';
import { countPoints, metricSum, sleep } from './cluster-common.js';
import { summariseProfiles } from './cpu-profile.js';
import { benchInfluxCeiling } from './influx-ceiling.js';
import { startIngestProcess, type IngestProcess } from './ingest-process.js';
import { benchIngestEnv, benchVin, closeAll, connectVehicles, publishLoad, registerVehicles } from './load.js';
import { latencyProbesApart } from './probe-process.js';
import { processThreadsCpu, threadCpuDelta } from './proc-cpu.js';
import { round, rssMb, slope } from './stats.js';

export interface E2eOptions {
  quick: boolean;
  soakSeconds?: number;
  /** Where the profiled run writes the ingest child's .cpuprofile files; none: no profiled run. */
  profileDir?: string;
}

const SAMPLES_PER_BATCH = 50;
const INFLIGHT = 16;

/** Until InfluxDB holds `expected` points (or the deadline): the count, and when it got there. */
async function waitCounted(url: string, db: string, expected: number, timeoutMs: number, pollMs: number) {
  const deadline = Date.now() + timeoutMs;
  let counted = 0;
  while ((counted = await countPoints(url, db)) < expected && Date.now() < deadline) await sleep(pollMs);
  return counted;
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

export async function benchE2E(opts: E2eOptions): Promise<Record<string, unknown>> {
  const q = opts.quick;
  const influx = await startLocalInfluxd({ database: 'e2e' });
  const rss: Array<[number, number]> = [];
  let ingest: IngestProcess | undefined;
  let sampler: NodeJS.Timeout | undefined;
  try {
    await influxQuery(influx.url, 'ceiling', 'CREATE DATABASE "ceiling"');
    const ceiling = await benchInfluxCeiling({ url: influx.url, database: 'ceiling', lines: q ? 50_000 : 1_000_000, batch: 5000 });
    const ceilingRate: number = Math.max(ceiling.raw?.linesPerSec ?? 0, ceiling.rawConcurrent?.linesPerSec ?? 0);
    await influxQuery(influx.url, 'ceiling', 'DROP DATABASE "ceiling"');
    const broker = await brokerCeiling(q ? 20 : 200, q ? 2000 : 40_000, SAMPLES_PER_BATCH);
    // What broker + InfluxDB together could carry if ingest cost nothing: each reading pays the
    // broker's time and InfluxDB's, on the same cores (same readings: bench/load.ts drivingSample).
    const combined = 1 / (1 / broker.readingsPerSec + 1 / ceilingRate);

    ingest = await startIngestProcess(benchIngestEnv(influx.url, 'e2e'));
    const pid = ingest.proc.pid!;
    const t0 = performance.now();
    sampler = setInterval(() => {
      const m = rssMb(pid);
      if (m !== null) rss.push([round((performance.now() - t0) / 1000, 1), m]);
    }, 1000);

    // 0. warm-up on other vehicles: a service runs warm, and in a 3 s quick run a cold process
    // spends much of its CPU compiling (ODOPULSE_BENCH_WARMUP=0 measures it cold)
    const vehicles = q ? 50 : 500;
    const warmBatches = process.env.ODOPULSE_BENCH_WARMUP === '0' ? 0 : q ? 400 : 2000;
    let base = 0;
    if (warmBatches) {
      const warmVins = Array.from({ length: vehicles }, (_, i) => benchVin(i, 'LWARM'));
      await registerVehicles(ingest.api, ingest.auth, warmVins);
      const warm = await connectVehicles(ingest.mqttUrl, warmVins);
      const w = await publishLoad({
        clients: warm,
        vins: warmVins,
        batches: warmBatches,
        samplesPerBatch: SAMPLES_PER_BATCH,
        inflight: INFLIGHT,
      });
      base = await waitCounted(influx.url, 'e2e', w.readings, 120_000, 100);
      await closeAll(warm);
    }

    // 1. sustained throughput with zero loss, counted in InfluxDB: at least `minReadings` and, in a
    // full run, published for at least 60 s; the ingest child's CPU per thread over the same window
    const minReadings = q ? 20_000 : 2_000_000;
    const minPublishMs = q ? 0 : 60_000;
    const vins = Array.from({ length: vehicles }, (_, i) => benchVin(i));
    await registerVehicles(ingest.api, ingest.auth, vins);
    const clients = await connectVehicles(ingest.mqttUrl, vins);
    // batches whose PUBACK waited for the loops, and gates opened at their 5 s bound (docs/architecture.md#back-pressure)
    const gated = async () => {
      const [held, forced] = await Promise.all(
        ['odopulse_backpressure_holds_total', 'odopulse_backpressure_forced_total'].map((m) => metricSum([ingest!], m)),
      );
      return { held, forced };
    };
    const since = async (b: { held: number; forced: number }) => {
      const a = await gated();
      return { batchesHeld: a.held - b.held, forcedOpens: a.forced - b.forced };
    };
    const gated0 = await gated();
    const cpu0 = processThreadsCpu(pid);
    const start = performance.now();
    const pub = await publishLoad({
      clients,
      vins,
      batches: minReadings / SAMPLES_PER_BATCH,
      samplesPerBatch: SAMPLES_PER_BATCH,
      inflight: INFLIGHT,
      minMs: minPublishMs,
    });
    const publishMs = performance.now() - start;
    // polled often: in a quick run the poll interval alone would be a tenth of the time measured
    const counted = (await waitCounted(influx.url, 'e2e', base + pub.readings, 600_000, q ? 50 : 250)) - base;
    const elapsed = performance.now() - start;
    const cpu = threadCpuDelta(pid, cpu0, processThreadsCpu(pid));
    const e2eRate = (counted / elapsed) * 1000;
    const sustainedGate = await since(gated0);
    await closeAll(clients);
    let published = base + pub.readings;
    // each vehicle's next seq: the later phases continue its event time (bench/load.ts derives the
    // timestamps from the seq); a jump of months would make every vehicle's maintenance and usage
    // prompts change at once, a burst of thousands of prompt changes that is not the steady state
    let nextSeq = pub.nextSeq;
    const usPerReading = (s: number) => round((s / Math.max(1, counted)) * 1e6, 2);

    // 2. latency under a paced background load at a share of the sustained rate, fresh probe vehicles each
    const latencyAt = async (share: number, prefix: string) => {
      const bps = (e2eRate / SAMPLES_PER_BATCH) * share;
      const probeVins = Array.from({ length: q ? 5 : 20 }, (_, i) => benchVin(i, prefix));
      await registerVehicles(ingest!.api, ingest!.auth, probeVins);
      const loadClients = await connectVehicles(ingest!.mqttUrl, vins);
      const phase0 = await gated();
      let stop = false;
      const background = publishLoad({
        clients: loadClients,
        vins,
        batches: Infinity,
        samplesPerBatch: SAMPLES_PER_BATCH,
        inflight: INFLIGHT,
        batchesPerSec: bps,
        seqStart: nextSeq,
        stop: () => stop,
      });
      // the load at its pace (and the pipeline at its steady state) before the first probe
      await sleep(q ? 1000 : 5000);
      const latency = await latencyProbesApart([ingest!], probeVins, q ? 3 : 15, q ? 500 : 1000, q ? 10_000 : 15_000);
      stop = true;
      const bg = await background;
      const backPressure = await since(phase0);
      await closeAll(loadClients);
      nextSeq = bg.nextSeq;
      published += bg.readings + latency.readingsPublished;
      // all of it in InfluxDB before the next phase (the backlog of an overloaded phase is not the next one's)
      const inInflux = await waitCounted(influx.url, 'e2e', published, 120_000, 100);
      return {
        hmiMs: latency.hmiMs,
        sseMs: latency.sseMs,
        expected: latency.expected,
        missingHmi: latency.missingHmi,
        missingSse: latency.missingSse,
        timedOutCycles: latency.timedOutCycles,
        cycleTimeoutMs: latency.cycleTimeoutMs,
        perCycle: latency.perCycle,
        probes: probeVins.length,
        loadShareOfSustained: share,
        loadReadingsPerSec: round(bps * SAMPLES_PER_BATCH),
        // what the paced load really published (below the target: the publisher could not keep pace)
        loadReadingsPerSecAchieved: round((bg.readings / bg.elapsedMs) * 1000),
        loadSeconds: round(bg.elapsedMs / 1000, 1),
        backgroundPublishErrors: bg.errors,
        backPressure,
        lostSoFar: published - inInflux,
      };
    };
    const latencyHalf = { ...(await latencyAt(0.5, 'LPRB')), target: 'p99 < 50 ms' };
    const latency90 = { ...(await latencyAt(0.9, 'LPRN')), target: 'p99 < 250 ms' };

    // 3. connected vehicles
    const target = q ? 500 : 10_000;
    const connVins = Array.from({ length: target }, (_, i) => benchVin(i, 'LCNX'));
    const conn = await connectVehicles(ingest.mqttUrl, connVins, 500).then(
      (cs) => ({ clients: cs, error: null as string | null }),
      (err: Error) => ({ clients: [] as mqtt.MqttClient[], error: err.message }),
    );
    const connectedRss = rssMb(pid);
    await closeAll(conn.clients);

    // 4. memory over a soak at half load (event time continued too)
    const soakS = opts.soakSeconds ?? (q ? 5 : 120);
    const halfBps = e2eRate / SAMPLES_PER_BATCH / 2;
    const soakStart = rss.length;
    const soakClients = await connectVehicles(ingest.mqttUrl, vins);
    const soakPub = await publishLoad({
      clients: soakClients,
      vins,
      batches: Math.ceil(halfBps * soakS),
      samplesPerBatch: SAMPLES_PER_BATCH,
      inflight: INFLIGHT,
      batchesPerSec: halfBps,
      seqStart: nextSeq,
    });
    await closeAll(soakClients);
    clearInterval(sampler);
    const soak = rss.slice(soakStart);
    published += soakPub.readings;
    const inInfluxAtEnd = await waitCounted(influx.url, 'e2e', published, 120_000, 100);
    await ingest.stop();
    ingest = undefined;

    // 5. a profiled run (--cpu-prof slows the process, so none of the figures above come from it):
    // a fresh ingest child, a warm-up, then the throughput phase's load for a while; the profiles are
    // written when it exits
    const profile = opts.profileDir ? await profiledRun(influx.url, opts.profileDir, q) : null;

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
        warmUpReadings: warmBatches * SAMPLES_PER_BATCH,
        vehicles,
        samplesPerBatch: SAMPLES_PER_BATCH,
        inflightPerVehicle: INFLIGHT,
        readingsPublished: pub.readings,
        readingsInInflux: counted,
        lost: pub.readings - counted,
        publishErrors: pub.errors,
        publishSeconds: round(publishMs / 1000, 2),
        seconds: round(elapsed / 1000, 2),
        // PUBACKs come once a batch is in the journal (later while the loops are behind: back-pressure),
        // so publishing can run ahead of InfluxDB; the rest of the window is ingest draining that backlog
        publishReadingsPerSec: round((pub.readings / publishMs) * 1000),
        drainSecondsAfterPublish: round((elapsed - publishMs) / 1000, 2),
        backPressure: sustainedGate,
        readingsPerSec: round(e2eRate),
        influxCeilingLinesPerSec: ceilingRate,
        ratioToInfluxCeiling: round(e2eRate / ceilingRate, 3),
        ratioToCombinedCeiling: round(e2eRate / combined, 3),
        target: q
          ? '>= 0.8 of the combined ceiling, 0 lost (quick: short, figures not meaningful)'
          : '>= 0.8 of the combined ceiling, 0 lost, >= 60 s and >= 2,000,000 readings',
      },
      ingestCpu: {
        // utime + stime from /proc/<pid>/task/<tid>/stat over the throughput window (publish start
        // to the last reading counted in InfluxDB), divided by the readings counted
        usPerReading: {
          total: usPerReading(cpu.total),
          mainThread: usPerReading(cpu.main),
          otherThreads: usPerReading(cpu.rest),
        },
        // by /proc comm (Node 20 leaves most of its threads named "node", so few groups)
        byThreadName: Object.fromEntries(
          Object.entries(cpu.byName)
            .sort((a, b) => b[1].seconds - a[1].seconds)
            .map(([name, g]) => [name, { threads: g.threads, usPerReading: usPerReading(g.seconds) }]),
        ),
        // the busiest threads one by one (the two rules workers, V8's GC helpers, libuv's pool)
        busiestThreads: cpu.threads
          .filter((t) => t.seconds > 0)
          .slice(0, 8)
          .map((t) => ({ tid: t.tid, name: t.tid === pid ? 'main' : t.comm, usPerReading: usPerReading(t.seconds) })),
        threadsLive: cpu.threads.length,
        coreSeconds: { total: round(cpu.total, 2), mainThread: round(cpu.main, 2), otherThreads: round(cpu.rest, 2) },
        shareOfOneCore: round(cpu.total / (elapsed / 1000), 2),
        target: '<= 8 µs per reading',
      },
      latencyAtHalfLoad: latencyHalf,
      latencyAt90PctLoad: latency90,
      connections: { target, connected: conn.clients.length, error: conn.error, ingestRssMb: connectedRss },
      memory: {
        ingestRssMb: rss.map((p) => p[1]),
        everySeconds: 1,
        soakSeconds: soakS,
        soakRssSlopeMbPerMin: round((slope(soak) ?? 0) * 60, 3),
        soakRssMinMb: Math.min(...soak.map((p) => p[1])),
        soakRssMaxMb: Math.max(...soak.map((p) => p[1])),
      },
      // every reading of every phase (warm-up, throughput, latency loads, soak) in InfluxDB at the end
      allPhases: { readingsPublished: published, readingsInInflux: inInfluxAtEnd, lost: published - inInfluxAtEnd },
      profile,
    };
  } finally {
    clearInterval(sampler);
    await ingest?.stop().catch(() => undefined);
    await influx.stop();
  }
}

/** A fresh, profiled ingest child under the throughput phase's load; the top frames per thread. */
async function profiledRun(influxUrl: string, dir: string, q: boolean) {
  rmSync(dir, { recursive: true, force: true });
  await influxQuery(influxUrl, 'profile', 'CREATE DATABASE "profile"');
  const ing = await startIngestProcess(benchIngestEnv(influxUrl, 'profile'), undefined, { cpuProfDir: dir });
  try {
    const vehicles = q ? 50 : 500;
    const vins = Array.from({ length: vehicles }, (_, i) => benchVin(i));
    await registerVehicles(ing.api, ing.auth, vins);
    const clients = await connectVehicles(ing.mqttUrl, vins);
    const warm = await publishLoad({ clients, vins, batches: q ? 200 : 2000, samplesPerBatch: SAMPLES_PER_BATCH, inflight: INFLIGHT });
    const start = performance.now();
    const pub = await publishLoad({
      clients,
      vins,
      batches: q ? 400 : 1,
      samplesPerBatch: SAMPLES_PER_BATCH,
      inflight: INFLIGHT,
      minMs: q ? undefined : 20_000,
      seqStart: warm.nextSeq,
    });
    const total = warm.readings + pub.readings;
    const counted = await waitCounted(influxUrl, 'profile', total, 300_000, 100);
    const elapsed = performance.now() - start;
    await closeAll(clients);
    const code = await ing.stop();
    const threads = summariseProfiles(dir, q ? 10 : 20);
    return {
      dir,
      note: 'a separate ingest child started with --cpu-prof (slower); its figures are not the ones above',
      readingsProfiled: pub.readings,
      warmUpReadings: warm.readings,
      lost: total - counted,
      // after the warm-up: to the last reading counted (the profiles cover the whole process life)
      seconds: round(elapsed / 1000, 2),
      readingsPerSec: round((pub.readings / elapsed) * 1000),
      exitCode: code,
      threads,
    };
  } finally {
    await ing.stop().catch(() => undefined);
    await influxQuery(influxUrl, 'profile', 'DROP DATABASE "profile"').catch(() => undefined);
  }
}
