// Ceilings of the shared components alone, for the cluster benchmark (bench/cluster.ts): JetStream
// appends and PostgreSQL rules/prompt commits (InfluxDB's is bench/influx-ceiling.ts).
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import type { VehicleProfile } from '../proto/domain.js';
import { toStateJson } from '../rules/state-json.js';
import type { RuleEvent, VehicleRuleState } from '../rules/types.js';
import { PartitionLeases, type FenceItem } from '../ingest/cluster/leases.js';
import { JetStreamTelemetryLog, TELEMETRY_STREAM } from '../ingest/cluster/telemetry-log.js';
import { openPostgresBackend, type PostgresBackend } from '../ingest/store/postgres/index.js';
import { withPromptService } from '../ingest/stores.js';
import type { NatsCluster } from '../tools/nats-local.js';
import type { PostgresHandle } from '../tools/postgres-local.js';
import { BENCH_PROFILE, BENCH_T0, benchVin, drivingSample, telemetryPayload } from './load.js';
import { round } from './stats.js';
import { PARTITIONS, REPLICAS, SAMPLES_PER_BATCH, sleep } from './cluster-common.js';
import { snapshot, type Meter } from './proc-cpu.js';

/** A batch exactly as the load sends it: 50 driving samples (the payload JetStream stores). */
function loadBatch(vin: string, seq: number): Uint8Array {
  const samples = Array.from({ length: SAMPLES_PER_BATCH }, (_, i) => {
    const k = (seq - 1) * SAMPLES_PER_BATCH + i;
    return drivingSample(BENCH_T0 + k * 1000, k);
  });
  return telemetryPayload(vin, seq, samples);
}

/**
 * JetStream alone: the instances' own append path (JetStreamTelemetryLog.append: message id,
 * headers, PubAck from the R3 stream leader after a quorum wrote it) from `connections` client
 * connections (one per instance of the largest run), `publishers` appends in flight in all, each
 * publisher waiting for its ack before the next. Runs on the stream the instances use, deleted after.
 */
export async function jetstreamCeiling(
  nats: NatsCluster,
  o: { batches: number; publishers: number; connections: number; meters: Meter[] },
) {
  const logs = await Promise.all(
    Array.from({ length: o.connections }, (_, i) =>
      JetStreamTelemetryLog.connect({ servers: nats.urls, name: `bench-ceiling-${i}`, partitions: PARTITIONS }),
    ),
  );
  try {
    await logs[0].ensureStream({ replicas: REPLICAS });
    const vins = Array.from({ length: o.publishers }, (_, i) => benchVin(i, 'LJSC'));
    const payloads = vins.map((v) => loadBatch(v, 1));
    // warm-up outside the timing: the stream's RAFT group and the connections' subscriptions
    await Promise.all(
      vins.map((vin, i) => logs[i % logs.length].append({ vin, bootId: 'warm', seq: 1, payload: payloads[i], receivedAt: Date.now() })),
    );
    const perPublisher = Math.ceil(o.batches / o.publishers);
    const before = snapshot(o.meters);
    const t0 = performance.now();
    let dup = 0;
    await Promise.all(
      vins.map(async (vin, i) => {
        const log = logs[i % logs.length];
        for (let b = 0; b < perPublisher; b++) {
          const r = await log.append({ vin, bootId: 'bench', seq: b + 1, payload: payloads[i], receivedAt: Date.now() });
          if (r === 'duplicate') dup++;
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const after = snapshot(o.meters);
    const batches = perPublisher * o.publishers;
    const natsCpu = nats.nodes.map((n) => (after.get(n.name) ?? 0) - (before.get(n.name) ?? 0));
    return {
      batches,
      duplicates: dup,
      publishers: o.publishers,
      connections: o.connections,
      replicas: REPLICAS,
      payloadBytes: payloads[0].length,
      samplesPerBatch: SAMPLES_PER_BATCH,
      seconds: round(seconds, 3),
      batchesPerSec: round(batches / seconds),
      readingsPerSec: round((batches * SAMPLES_PER_BATCH) / seconds),
      natsCpuUsPerBatch: natsCpu.map((c) => round((c / batches) * 1e6, 1)),
      natsCpuUsPerReading: natsCpu.map((c) => round((c / (batches * SAMPLES_PER_BATCH)) * 1e6, 2)),
      note: 'JetStreamTelemetryLog.append from this process (the instances’ code path): each publisher awaits its PubAck before the next; nats CPU per node n0..n2',
    };
  } finally {
    const nc = await connect({ servers: nats.urls });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(TELEMETRY_STREAM).catch(() => undefined);
    await nc.close();
    await Promise.all(logs.map((l) => l.close()));
  }
}

/** Fill the prompt draft fields the store keeps (a critical SOC prompt, as the detector opens it). */
function criticalDraft(vin: string, ts: number): RuleEvent {
  return {
    type: 'open',
    prompt: {
      kind: 'charging.critical_soc',
      dedupKey: `charging.critical_soc:${vin}`,
      severity: 'critical',
      audience: ['hmi', 'advisor'],
      urgent: true,
      ts,
      evidence: { soc: 5 },
      params: { soc: 5 },
    },
  };
}

/**
 * PostgreSQL alone, with the store's own code on a database of its own:
 * - rulesCommit: what a rules step of one instance commits at full load: its vehicles' profiles
 *   read (vehicles.get, before the transaction, as the runner does), then in one REPEATABLE READ
 *   transaction the fence of its partitions (leases.fenceMany, the lease rows share-locked and the
 *   positions raised) and ruleStates.save of every vehicle's state (real states, taken from the last
 *   run). `committers` instances at once, each with its share of the vehicles and partitions.
 * - promptCommit: PromptService.applyRuleEvents transactions (open, then resolve, of one vehicle's
 *   critical SOC prompt): each takes the cluster-wide prompt write lock, so they run one at a time
 *   whatever the number of committers.
 */
export async function postgresCeiling(
  pgh: PostgresHandle,
  o: { states: VehicleRuleState[]; committers: number; seconds: number; meters: Meter[] },
) {
  const url = await pgh.createDatabase('ceiling');
  const backend: PostgresBackend = await openPostgresBackend(url, { instanceId: 'bench-ceiling' });
  const stores = withPromptService(backend);
  const leasePool = new pg.Pool({ connectionString: url, max: 2 });
  leasePool.on('error', () => {});
  const quiet = { warn: () => {}, error: () => {}, info: () => {} };
  const leases = new PartitionLeases({
    pool: leasePool,
    instanceId: 'bench-ceiling',
    partitions: PARTITIONS,
    renewMs: 500,
    leaseMs: 6000,
    onAcquired: async () => {},
    onReleased: async () => {},
    log: quiet,
  });
  try {
    await leases.start();
    const deadline = Date.now() + 30_000;
    while (leases.owned().size < PARTITIONS) {
      if (Date.now() > deadline) throw new Error(`postgres ceiling: holding ${leases.owned().size} of ${PARTITIONS} partitions`);
      await sleep(100);
    }
    const epochs = leases.owned();
    const registered = o.states.map((s) => s.vin);
    await Promise.all(
      registered.map((vin) =>
        stores.vehicles.upsert(vin, { ...BENCH_PROFILE, quietHours: { ...BENCH_PROFILE.quietHours } } as VehicleProfile, Date.now()),
      ),
    );

    const timed = async <T>(fn: (committer: number, stop: () => boolean) => Promise<T>) => {
      const before = snapshot(o.meters);
      const t0 = performance.now();
      const end = t0 + o.seconds * 1000;
      const results = await Promise.all(Array.from({ length: o.committers }, (_, c) => fn(c, () => performance.now() >= end)));
      const seconds = (performance.now() - t0) / 1000;
      const after = snapshot(o.meters);
      return { results, seconds, pgCpu: (after.get('postgres') ?? 0) - (before.get('postgres') ?? 0) };
    };

    // rules commits
    let rulesSeq = 1;
    const rules = await timed(async (c, stop) => {
      const mine = o.states.filter((_, i) => i % o.committers === c);
      const parts = [...epochs.keys()].filter((p) => p % o.committers === c);
      let n = 0;
      while (!stop()) {
        await Promise.all(mine.map((s) => stores.vehicles.get(s.vin)));
        const seq = rulesSeq++;
        const items: FenceItem[] = parts.map((p) => ({ partition: p, epoch: epochs.get(p)!, rulesSeq: seq }));
        await stores.transaction(async () => {
          await leases.fenceMany(backend.sql, items);
          await stores.ruleStates.save(mine.map((s) => toStateJson({ ...s, journalId: seq })));
        });
        n++;
      }
      return { commits: n, statesPerCommit: mine.length, partitionsPerCommit: parts.length };
    });
    const commits = rules.results.reduce((a, r) => a + r.commits, 0);

    // prompt commits (the write lock): alternate open / resolve per vehicle
    const render = () => ({ title: 'Battery critically low', body: 'Charge now.', locale: 'en' as const });
    const prompts = await timed(async (c, stop) => {
      const mine = registered.filter((_, i) => i % o.committers === c);
      let n = 0;
      let changes = 0;
      let ts = BENCH_T0;
      while (!stop()) {
        const vin = mine[n % mine.length];
        const round2 = Math.floor(n / mine.length);
        ts += 1000;
        const ev: RuleEvent =
          round2 % 2 === 0 ? criticalDraft(vin, ts) : { type: 'resolve', dedupKey: `charging.critical_soc:${vin}`, ts, reason: 'charged' };
        changes += (await stores.prompts.applyRuleEvents(vin, [ev], render, 'bench', ts)).length;
        n++;
      }
      return { commits: n, changes };
    });
    const promptCommits = prompts.results.reduce((a, r) => a + r.commits, 0);
    return {
      rulesCommit: {
        committers: o.committers,
        statesPerCommit: rules.results.map((r) => r.statesPerCommit),
        partitionsPerCommit: rules.results.map((r) => r.partitionsPerCommit),
        stateBytes: Math.round(o.states.reduce((a, s) => a + JSON.stringify(s).length, 0) / Math.max(1, o.states.length)),
        seconds: round(rules.seconds, 2),
        commitsPerSec: round(commits / rules.seconds),
        statesPerSec: round(rules.results.reduce((a, r) => a + r.commits * r.statesPerCommit, 0) / rules.seconds),
        pgCpuMsPerCommit: round((rules.pgCpu / Math.max(1, commits)) * 1000, 2),
        pgCpuSharePerCore: round(rules.pgCpu / rules.seconds, 2),
      },
      promptCommit: {
        committers: o.committers,
        seconds: round(prompts.seconds, 2),
        commitsPerSec: round(promptCommits / prompts.seconds),
        changesPerSec: round(prompts.results.reduce((a, r) => a + r.changes, 0) / prompts.seconds),
        pgCpuMsPerCommit: round((prompts.pgCpu / Math.max(1, promptCommits)) * 1000, 2),
        pgCpuSharePerCore: round(prompts.pgCpu / prompts.seconds, 2),
        note: 'each takes LOCK TABLE prompt_write_lock IN EXCLUSIVE MODE (ingest/store/postgres/db.ts): one at a time cluster-wide',
      },
    };
  } finally {
    await leases.stop().catch(() => undefined);
    await leasePool.end().catch(() => undefined);
    await stores.close();
  }
}
