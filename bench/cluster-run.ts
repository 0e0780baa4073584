// One run of the cluster benchmark (bench/cluster.ts): n ingest instances, the end-to-end load,
// the CPU of every process over it, the latency at half of it.
import { readFileSync, rmSync } from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { JetStreamTelemetryLog, TELEMETRY_STREAM } from '../ingest/cluster/telemetry-log.js';
import { influxQuery, type InfluxdHandle } from '../tools/influxd-local.js';
import type { NatsCluster } from '../tools/nats-local.js';
import type { PostgresHandle } from '../tools/postgres-local.js';
import { startIngestProcess, type IngestProcess } from './ingest-process.js';
import { benchIngestEnv, benchVin, closeAll, publishLoad, registerVehicles } from './load.js';
import { round } from './stats.js';
import {
  PARTITIONS,
  REPLICAS,
  SAMPLES_PER_BATCH,
  connectSpread,
  countPoints,
  metricSum,
  sleep,
  waitPartitionsShared,
} from './cluster-common.js';
import { latencyProbes } from './cluster-probes.js';
import { ownCpu, snapshot, type Meter } from './proc-cpu.js';

export interface RunContext {
  nats: NatsCluster;
  pgh: PostgresHandle;
  influx: InfluxdHandle;
  quick: boolean;
  baseMeters: Meter[];
}

async function deleteStream(urls: string[]): Promise<void> {
  const nc = await connect({ servers: urls });
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(TELEMETRY_STREAM).catch(() => undefined);
  } finally {
    await nc.close();
  }
}

export async function runInstances(n: number, ctx: RunContext) {
  const { nats, pgh, influx, quick: q } = ctx;
  await deleteStream(nats.urls);
  const databaseUrl = await pgh.createDatabase(`odopulse_n${n}`);
  const bucket = `cluster_n${n}`;
  await influxQuery(influx.url, bucket, `CREATE DATABASE "${bucket}"`);
  const env = (i: number): Record<string, string> => ({
    ODOPULSE_NATS_URL: nats.urls.join(','),
    ODOPULSE_DATABASE_URL: databaseUrl,
    ODOPULSE_INSTANCE_ID: `bench-${i}`,
    ODOPULSE_PARTITIONS: String(PARTITIONS),
    ODOPULSE_NATS_REPLICAS: String(REPLICAS),
    ...benchIngestEnv(influx.url, bucket),
  });
  const ingests: IngestProcess[] = [];
  let observer: JetStreamTelemetryLog | undefined;
  let positions: pg.Pool | undefined;
  try {
    // the first alone (it migrates the database and creates the stream), the others together
    ingests.push(await startIngestProcess(env(0)));
    ingests.push(...(await Promise.all(Array.from({ length: n - 1 }, (_, i) => startIngestProcess(env(i + 1))))));
    const held = await waitPartitionsShared(ingests, 60_000);
    const obs = (observer = await JetStreamTelemetryLog.connect({ servers: nats.urls, name: 'bench-observer', partitions: PARTITIONS }));
    const posPool = (positions = new pg.Pool({ connectionString: databaseUrl, max: 1 }));
    posPool.on('error', () => {});
    const api = ingests[0];
    const meters: Meter[] = [...ctx.baseMeters, ...ingests.map((ing, i) => ({ name: `ingest${i}`, read: () => ownCpu(ing.proc.pid!) }))];

    const vehicles = q ? 60 : 600;
    // 0. warm-up on other vehicles (compiled code, connections, the stream's RAFT group, PostgreSQL caches)
    const warmBatches = process.env.ODOPULSE_BENCH_WARMUP === '0' ? 0 : q ? 300 : 1000;
    let base = 0;
    if (warmBatches) {
      const warmVins = Array.from({ length: vehicles }, (_, i) => benchVin(i, 'LWARM'));
      await registerVehicles(api.api, api.auth, warmVins);
      const warm = await connectSpread(ingests, warmVins);
      const w = await publishLoad({
        clients: warm,
        vins: warmVins,
        batches: warmBatches,
        samplesPerBatch: SAMPLES_PER_BATCH,
        inflight: 16,
      });
      const until = Date.now() + 180_000;
      while ((base = await countPoints(influx.url, bucket)) < w.readings && Date.now() < until) await sleep(100);
      // and the rules loop too: it may run behind the InfluxDB one, and its backlog is no idle time
      const warmSeqs = await Promise.all(Array.from({ length: PARTITIONS }, (_, p) => obs.lastSeq(p)));
      while ((await partitionsBehind(posPool, warmSeqs)) > 0 && Date.now() < until) await sleep(100);
      await closeAll(warm);
    }

    // idle: what each process spends with no telemetry (lease ticks, heartbeats, polls, RAFT)
    const idleS = q ? 2 : 6;
    const idle0 = snapshot(meters);
    await sleep(idleS * 1000);
    const idle1 = snapshot(meters);
    const idleCores = (name: string) => ((idle1.get(name) ?? 0) - (idle0.get(name) ?? 0)) / idleS;

    // 1. throughput with zero loss, counted in InfluxDB; CPU of every process over it
    const batches = q ? 400 : 4000;
    const vins = Array.from({ length: vehicles }, (_, i) => benchVin(i));
    await registerVehicles(api.api, api.auth, vins);
    const clients = await connectSpread(ingests, vins);
    const steps0 = await metricSum(ingests, 'odopulse_rules_batch_seconds_count');
    const before = snapshot(meters);
    const self0 = process.cpuUsage();
    const start = performance.now();
    const pub = await publishLoad({ clients, vins, batches, samplesPerBatch: SAMPLES_PER_BATCH, inflight: 16 });
    const publishMs = performance.now() - start;
    // done when both loops are: every reading counted in InfluxDB, and the rules position of every
    // partition at its last stream sequence (the rules applied everything; prompts wait on that loop)
    const lastSeqs = await Promise.all(Array.from({ length: PARTITIONS }, (_, p) => obs.lastSeq(p)));
    let counted = 0;
    let influxMs: number | null = null;
    let rulesMs: number | null = null;
    let behind = PARTITIONS;
    const deadline = Date.now() + (q ? 120_000 : 300_000);
    while ((influxMs === null || rulesMs === null) && Date.now() < deadline) {
      if (influxMs === null && (counted = (await countPoints(influx.url, bucket)) - base) >= pub.readings)
        influxMs = performance.now() - start;
      if (rulesMs === null && (behind = await partitionsBehind(posPool, lastSeqs)) === 0) rulesMs = performance.now() - start;
      if (influxMs === null || rulesMs === null) await sleep(q ? 50 : 200);
    }
    const elapsed = performance.now() - start;
    const after = snapshot(meters);
    const self = process.cpuUsage(self0);
    const steps = (await metricSum(ingests, 'odopulse_rules_batch_seconds_count')) - steps0;
    await closeAll(clients);
    // sustained: all of it through both loops (what bench/e2e.ts counts is the InfluxDB loop alone)
    const rate = (counted / elapsed) * 1000;
    const influxRate = influxMs ? (counted / influxMs) * 1000 : null;
    const cpu = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    const us = (s: number) => round((s / Math.max(1, counted)) * 1e6, 2);
    const natsS = nats.nodes.map((x) => cpu(x.name));
    const ingestS = ingests.map((_, i) => cpu(`ingest${i}`));
    const loadS = (self.user + self.system) / 1e6;
    const ours = natsS.reduce((a, b) => a + b, 0) + cpu('postgres') + cpu('influxd') + ingestS.reduce((a, b) => a + b, 0) + loadS;
    const wall = elapsed / 1000;
    const costs = {
      natsPerNode: natsS.map(us),
      nats: us(natsS.reduce((a, b) => a + b, 0)),
      postgres: us(cpu('postgres')),
      influxd: us(cpu('influxd')),
      ingestPerInstance: ingestS.map(us),
      ingest: us(ingestS.reduce((a, b) => a + b, 0)),
      loadGenerator: us(loadS),
    };
    // the same costs less what the process spends idle over as long a time: the cost of readings alone
    const marginal = (name: string) => us(Math.max(0, cpu(name) - idleCores(name) * wall));
    const marginalCosts = {
      natsPerNode: nats.nodes.map((x) => marginal(x.name)),
      postgres: marginal('postgres'),
      influxd: marginal('influxd'),
      ingestPerInstance: ingests.map((_, i) => marginal(`ingest${i}`)),
      ingest: round(
        ingests.reduce((a, _, i) => a + marginal(`ingest${i}`), 0),
        2,
      ),
    };
    const idleCoresOut = {
      natsPerNode: nats.nodes.map((x) => round(idleCores(x.name), 3)),
      postgres: round(idleCores('postgres'), 3),
      influxd: round(idleCores('influxd'), 3),
      ingestPerInstance: ingests.map((_, i) => round(idleCores(`ingest${i}`), 3)),
      seconds: idleS,
    };
    const coreSeconds = {
      natsPerNode: natsS.map((s) => round(s, 2)),
      postgres: round(cpu('postgres'), 2),
      influxd: round(cpu('influxd'), 2),
      ingestPerInstance: ingestS.map((s) => round(s, 2)),
      loadGenerator: round(loadS, 2),
      machineBusy: round(cpu('__machine'), 2),
      // other processes on the machine (other jobs, the kernel's own threads) during the window
      notOurs: round(cpu('__machine') - ours, 2),
      available: round(wall * (readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm) ?? []).length, 2),
    };

    // 2. latency at half of that load, with probes spread over the instances
    const halfBps = rate / SAMPLES_PER_BATCH / 2;
    const probeVins = Array.from({ length: q ? 6 : 12 }, (_, i) => benchVin(i, 'LPRB'));
    await registerVehicles(api.api, api.auth, probeVins);
    const loadClients = await connectSpread(ingests, vins);
    const halfS = q ? 8 : 20;
    let backgroundEnded = false;
    const background = publishLoad({
      clients: loadClients,
      vins,
      batches: Math.ceil(halfBps * halfS),
      samplesPerBatch: SAMPLES_PER_BATCH,
      batchesPerSec: halfBps,
      // right after the throughput phase's readings (about 14 h of event time later); not the
      // 1,000,000 bench/e2e.ts uses: a jump of ~580 days makes maintenance and usage prompts for every
      // vehicle at once, and that burst (several thousand prompt changes under the prompt write lock)
      // stalls the rules loop for seconds in cluster mode: not the steady state measured here
      seqStart: 1000,
    }).finally(() => (backgroundEnded = true));
    const latency = await latencyProbes(ingests, probeVins, q ? 3 : 8, q ? 300 : 1000, 15_000);
    const probesOutlastedLoad = backgroundEnded;
    const bg = await background;
    await closeAll(loadClients);

    return {
      instances: n,
      partitionsHeld: held,
      endToEnd: {
        vehicles,
        vehiclesPerInstance: ingests.map((_, k) => vins.filter((__, i) => i % n === k).length),
        samplesPerBatch: SAMPLES_PER_BATCH,
        warmUpReadings: warmBatches * SAMPLES_PER_BATCH,
        readingsPublished: pub.readings,
        readingsInInflux: counted,
        lost: pub.readings - counted,
        publishErrors: pub.errors,
        publishSeconds: round(publishMs / 1000, 2),
        influxDoneSeconds: influxMs === null ? null : round(influxMs / 1000, 2),
        rulesDoneSeconds: rulesMs === null ? null : round(rulesMs / 1000, 2),
        partitionsRulesBehindAtEnd: behind,
        seconds: round(wall, 2),
        readingsPerSec: round(rate),
        readingsPerSecInfluxOnly: influxRate === null ? null : round(influxRate),
        rulesSteps: steps,
        readingsPerRulesStep: steps ? round(counted / steps) : null,
      },
      cpuUsPerReading: costs,
      cpuUsPerReadingLessIdle: marginalCosts,
      idleCores: idleCoresOut,
      coreSeconds,
      latencyAtHalfLoad: {
        ...latency,
        loadReadingsPerSec: round(halfBps * SAMPLES_PER_BATCH),
        backgroundPublishErrors: bg.errors,
        probesOutlastedLoad,
        target: 'p99 < 200 ms',
      },
      // the last run's rule states feed the PostgreSQL ceiling
      databaseUrl,
      vins,
    };
  } finally {
    await observer?.close().catch(() => undefined);
    await positions?.end().catch(() => undefined);
    await Promise.all(ingests.map((i) => i.stop().catch(() => undefined)));
    // their temp data dirs (the keys and state are in PostgreSQL; little is kept there in cluster mode)
    for (const i of ingests) rmSync(i.dataDir, { recursive: true, force: true });
    await influxQuery(influx.url, bucket, `DROP DATABASE "${bucket}"`).catch(() => undefined);
  }
}

/** How many partitions' rules position (cluster_positions) is still short of its last stream sequence. */
async function partitionsBehind(db: pg.Pool, lastSeqs: number[]): Promise<number> {
  const { rows } = await db.query<{ p: number; seq: string }>("SELECT p, seq FROM cluster_positions WHERE loop = 'rules'");
  const at = new Map(rows.map((r) => [Number(r.p), Number(r.seq)]));
  return lastSeqs.filter((last, p) => (at.get(p) ?? 0) < last).length;
}
