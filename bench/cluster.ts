// Cluster benchmark (`odopulse bench cluster`): cluster mode on this one machine. A 3-node NATS
// cluster (the telemetry stream at replicas 3), one PostgreSQL, one influxd, then the end-to-end
// load against 1, 2 and 3 ingest instances (the vehicles spread over their MQTT ports), each run
// on a fresh stream, database and bucket. Beside every run: the same-run ceilings of each shared
// component alone (JetStream appends, PostgreSQL rules/prompt commits, InfluxDB writes) and the CPU
// each process spent per reading, from which bench/README.md#cluster projects capacity per machine.
//
// All of it shares the machine's cores: more instances here compete for the same CPUs, so the
// throughput does not scale with them; the per-reading costs are what carries over to a real cluster.
//
// This file: the orchestration (servers, the runs, the projection, the JSON). One run is
// bench/cluster-run.ts, its latency probes bench/cluster-probes.ts, the ceilings
// bench/cluster-ceilings.ts, the CPU accounting bench/proc-cpu.ts.
import { execFileSync } from 'node:child_process';
import { loadavg } from 'node:os';
import pg from 'pg';
import type { VehicleRuleState } from '../rules/types.js';
import { openPostgresBackend } from '../ingest/store/postgres/index.js';
import { influxQuery, startLocalInfluxd } from '../tools/influxd-local.js';
import { NATS_SERVER, startNatsCluster } from '../tools/nats-local.js';
import { startPostgres } from '../tools/postgres-local.js';
import { benchInfluxCeiling } from './influx-ceiling.js';
import { round } from './stats.js';
import { PARTITIONS, REPLICAS, SAMPLES_PER_BATCH } from './cluster-common.js';
import { jetstreamCeiling, postgresCeiling } from './cluster-ceilings.js';
import { runInstances } from './cluster-run.js';
import { childrenOf, ownCpu, treeCpu, type Meter } from './proc-cpu.js';

export interface ClusterBenchOptions {
  quick: boolean;
  /** Instance counts to run, in order (default 1, 2, 3; ODOPULSE_BENCH_CLUSTER_INSTANCES=1,3 overrides). */
  instances?: number[];
}

const NATS_NODES = 3;
/** The cores of each machine in the projection (this one's, and a typical small cloud VM). */
const CORES_PER_MACHINE = 2;

/**
 * Capacity when each component runs on machines of CORES_PER_MACHINE cores, from the CPU each
 * spent per reading in a run: ingest scales out (each instance takes its share of the vehicles and
 * of the partitions); the stream's RAFT group (its leader the busiest node: every append goes
 * through it), the PostgreSQL primary and influxd are one process each, whatever the instance count.
 */
function project(c: { natsPerNode: number[]; postgres: number; influxd: number; ingest: number }) {
  const cap = (usPerReading: number) => (usPerReading > 0 ? Math.round((CORES_PER_MACHINE * 1e6) / usPerReading) : null);
  const limits = {
    ingestPerMachine: cap(c.ingest),
    natsBusiestNode: cap(Math.max(...c.natsPerNode)),
    postgres: cap(c.postgres),
    influxd: cap(c.influxd),
  };
  const shared = Object.entries(limits)
    .filter(([k, v]) => k !== 'ingestPerMachine' && v !== null)
    .sort((a, b) => (a[1] as number) - (b[1] as number));
  const [bottleneck, bottleneckRate] = shared[0] ?? ['none', null];
  return {
    coresPerMachine: CORES_PER_MACHINE,
    readingsPerSec: limits,
    ingestMachinesUntilBottleneck:
      limits.ingestPerMachine && bottleneckRate ? round((bottleneckRate as number) / limits.ingestPerMachine, 1) : null,
    nextBottleneck: bottleneck,
    note: 'readings/s one component could take on a machine of its own, from its CPU per reading in this run (CPU-bound; disk and network not modelled)',
  };
}

function versions() {
  const run = (bin: string, args: string[]) => {
    try {
      return execFileSync(bin, args, { encoding: 'utf8' }).trim().split('\n')[0];
    } catch {
      return null;
    }
  };
  return { nats: run(NATS_SERVER, ['--version']), influxd: run(process.env.INFLUXD_BIN ?? '/usr/bin/influxd', ['version']) };
}

export async function benchCluster(opts: ClusterBenchOptions): Promise<Record<string, unknown>> {
  const q = opts.quick;
  const counts =
    opts.instances ??
    (process.env.ODOPULSE_BENCH_CLUSTER_INSTANCES ? process.env.ODOPULSE_BENCH_CLUSTER_INSTANCES.split(',').map(Number) : [1, 2, 3]);
  if (!counts.every((n) => Number.isInteger(n) && n >= 1 && n <= 8))
    throw new Error(`cluster bench: instance counts 1..8, got ${counts.join(',')}`);
  const loadAvgAtStart = loadavg().map((x) => round(x, 2));
  const [nats, pgh, influx] = await Promise.all([
    startNatsCluster({ nodes: NATS_NODES }),
    startPostgres({ settings: { max_connections: '300', shared_buffers: '128MB' } }),
    startLocalInfluxd({ database: 'ceiling' }),
  ]);
  try {
    const influxPid = childrenOf(process.pid, 'influxd')[0];
    const baseMeters: Meter[] = [
      ...nats.nodes.map((node, i) => {
        const pid = nats.pid(i)!;
        return { name: node.name, read: () => ownCpu(pid) };
      }),
      { name: 'postgres', read: () => treeCpu(pgh.pid()!) },
      { name: 'influxd', read: () => (influxPid ? ownCpu(influxPid) : 0) },
    ];
    const pgVersion = (await (async () => {
      const c = new pg.Client({ connectionString: pgh.url });
      await c.connect();
      try {
        return (await c.query<{ v: string }>('SELECT version() AS v')).rows[0].v.split(',')[0];
      } finally {
        await c.end();
      }
    })()) as string;

    // ceilings of InfluxDB and JetStream first, on a quiet machine
    const influxCeiling = await benchInfluxCeiling({ url: influx.url, database: 'ceiling', lines: q ? 50_000 : 200_000, batch: 5000 });
    await influxQuery(influx.url, 'ceiling', 'DROP DATABASE "ceiling"');
    const jetstream = await jetstreamCeiling(nats, {
      batches: q ? 3000 : 30_000,
      publishers: q ? 64 : 256,
      connections: Math.max(...counts),
      meters: baseMeters,
    });

    const runs = [];
    for (const n of counts) runs.push(await runInstances(n, { nats, pgh, influx, quick: q, baseMeters }));

    // PostgreSQL alone, with the rule states the last run stored (real sizes), as that many instances
    const last = runs[runs.length - 1];
    const src = await openPostgresBackend(last.databaseUrl, { instanceId: 'bench-read' });
    const states = (await Promise.all(last.vins.map((v) => src.ruleStates.load(v)))).filter((s): s is VehicleRuleState => !!s);
    await src.close();
    const postgres = await postgresCeiling(pgh, { states, committers: last.instances, seconds: q ? 3 : 10, meters: baseMeters });

    const influxRate = Math.max(influxCeiling.raw?.linesPerSec ?? 0, influxCeiling.rawConcurrent?.linesPerSec ?? 0);
    return {
      setup: {
        natsNodes: NATS_NODES,
        replicas: REPLICAS,
        partitions: PARTITIONS,
        samplesPerBatch: SAMPLES_PER_BATCH,
        versions: { ...versions(), postgres: pgVersion },
        loadAvgAtStart,
        note: 'everything on this one machine: more instances compete for the same cores',
      },
      ceilings: {
        jetstream,
        postgres: {
          ...postgres,
          rulesCommit: {
            ...postgres.rulesCommit,
            // a rules step's commit covers what the step applied: readings/s if each commit carried
            // as many readings as a step did in the last run
            readingsPerSecAtLastRunsStepSize:
              last.endToEnd.readingsPerRulesStep !== null
                ? round(postgres.rulesCommit.commitsPerSec * last.endToEnd.readingsPerRulesStep)
                : null,
          },
        },
        influx: { ...influxCeiling, linesPerSec: influxRate },
      },
      runs: runs.map((r) => {
        const { databaseUrl: _u, vins: _v, ...rest } = r;
        return {
          ...rest,
          ratioToJetstreamCeiling: round(r.endToEnd.readingsPerSec / jetstream.readingsPerSec, 3),
          ratioToInfluxCeiling: round(r.endToEnd.readingsPerSec / influxRate, 3),
          projection: project(r.cpuUsPerReading),
          projectionLessIdle: project(r.cpuUsPerReadingLessIdle),
        };
      }),
    };
  } finally {
    await Promise.allSettled([nats.close(), pgh.stop(), influx.stop()]);
  }
}
