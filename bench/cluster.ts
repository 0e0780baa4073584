// Cluster benchmark (`odopulse bench cluster`): cluster mode on this one machine. A 3-node NATS
// cluster (the telemetry stream at replicas 3), one PostgreSQL, one influxd, then the end-to-end
// load against 1, 2 and 3 ingest instances (the vehicles spread over their MQTT ports), each run
// on a fresh stream, database and bucket. Beside every run: the same-run ceilings of each shared
// component alone (JetStream appends, PostgreSQL rules/prompt commits, InfluxDB writes) and the CPU
// each process spent per reading, from which bench/README.md#cluster projects capacity per machine.
//
// All of it shares the machine's cores: more instances here compete for the same CPUs, so the
// throughput does not scale with them; the per-reading costs are what carries over to a real cluster.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import type { MqttClient } from 'mqtt';
import { decodeHmiPrompt } from '../proto/codec.js';
import type { Sample, VehicleProfile } from '../proto/domain.js';
import type { RuleEvent, VehicleRuleState } from '../rules/types.js';
import { PartitionLeases, type FenceItem } from '../ingest/cluster/leases.js';
import { JetStreamTelemetryLog, TELEMETRY_STREAM } from '../ingest/cluster/telemetry-log.js';
import { openPostgresBackend, type PostgresBackend } from '../ingest/store/postgres/index.js';
import { withPromptService } from '../ingest/stores.js';
import { influxQuery, startLocalInfluxd, type InfluxdHandle } from '../tools/influxd-local.js';
import { NATS_SERVER, startNatsCluster, type NatsCluster } from '../tools/nats-local.js';
import { startPostgres, type PostgresHandle } from '../tools/postgres-local.js';
import { benchInfluxCeiling } from './influx-ceiling.js';
import { startIngestProcess, type IngestProcess } from './ingest-process.js';
import { BENCH_T0, benchVin, birth, closeAll, connectVehicles, drivingSample, publishLoad, publishQos1, telemetryPayload } from './load.js';
import { percentiles, round } from './stats.js';

export interface ClusterBenchOptions {
  quick: boolean;
  /** Instance counts to run, in order (default 1, 2, 3; ODOPULSE_BENCH_CLUSTER_INSTANCES=1,3 overrides). */
  instances?: number[];
}

const PARTITIONS = 64;
const REPLICAS = 3;
const NATS_NODES = 3;
const SAMPLES_PER_BATCH = 50;
/** The cores of each machine in the projection (this one's, and a typical small cloud VM). */
const CORES_PER_MACHINE = 2;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc (Linux): utime + stime of a process, in seconds.
// ---------------------------------------------------------------------------------------------

const CLK_TCK = 100;

function statFields(pid: number): string[] | null {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return f.slice(f.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Own CPU of a process (all its threads), seconds. */
function ownCpu(pid: number): number {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / CLK_TCK : 0;
}

/** The live children of `ppid` (from /proc/<pid>/stat), optionally only those named `comm`. */
function childrenOf(ppid: number, comm?: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = readFileSync(`/proc/${name}/stat`, 'utf8');
      const c = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === ppid && (comm === undefined || c === comm)) out.push(Number(name));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/**
 * CPU of a process tree one level deep (the postmaster and its backends): the parent's own time,
 * the time of the children it has reaped (cutime + cstime) and the live children's own time. A
 * backend that exits between two readings moves from the last term to the second: still counted.
 */
function treeCpu(pid: number): number {
  const f = statFields(pid);
  if (!f) return 0;
  let s = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
  for (const c of childrenOf(pid)) s += ownCpu(c);
  return s;
}

/** Busy core-seconds of the whole machine so far (/proc/stat: everything but idle and iowait). */
function machineBusy(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = line.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - line[3] - line[4]) / CLK_TCK;
}

interface Meter {
  name: string;
  read(): number;
}

function snapshot(meters: Meter[]): Map<string, number> {
  const m = new Map(meters.map((x) => [x.name, x.read()]));
  m.set('__machine', machineBusy());
  return m;
}

// ---------------------------------------------------------------------------------------------
// Small helpers over the ingest API and InfluxDB (as bench/e2e.ts, for several instances).
// ---------------------------------------------------------------------------------------------

async function countPoints(url: string, db: string): Promise<number> {
  const r = await influxQuery(url, db, 'SELECT count("Vehicle.Speed") FROM "telemetry"');
  return Number(r.results?.[0]?.series?.[0]?.values?.[0]?.[1] ?? 0);
}

async function registerVehicles(api: string, auth: Record<string, string>, vins: string[]) {
  let next = 0;
  const worker = async () => {
    while (next < vins.length) {
      const vin = vins[next++];
      const r = await fetch(`${api}/api/v1/vehicles/${vin}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify({
          model: 'Bench EV',
          powertrain: 'BEV',
          deliveryDate: '2025-06-01',
          dealerId: 'bench',
          locale: 'en',
          vehicleType: 'passenger',
          quietHours: { start: '00:00', end: '00:00' },
        }),
      });
      if (!r.ok) throw new Error(`register ${vin}: ${r.status} ${await r.text()}`);
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

/** Vehicle i on instance i mod n: the clients in the order of `vins`. */
async function connectSpread(ingests: IngestProcess[], vins: string[]): Promise<MqttClient[]> {
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
async function waitPartitionsShared(ingests: IngestProcess[], timeoutMs: number): Promise<number[]> {
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
async function metricSum(ingests: IngestProcess[], name: string): Promise<number> {
  let total = 0;
  for (const i of ingests) {
    const text = await (await fetch(`${i.api}/metrics`, { headers: i.auth })).text();
    for (const line of text.split('\n')) {
      if (line.startsWith(name + ' ') || line.startsWith(name + '{')) total += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
  }
  return total;
}

interface CreatedEvent {
  vin: string;
  kind: string;
  promptId: string;
  /** The evidence's event time (the reading that opened it). */
  ts: number | undefined;
}

/** The SSE stream of one instance: calls onCreated per `created` event until closed. */
function readStream(ingest: IngestProcess, onCreated: (e: CreatedEvent) => void): { ready: Promise<void>; close(): Promise<void> } {
  const ac = new AbortController();
  let opened!: () => void;
  const ready = new Promise<void>((r) => (opened = r));
  const done = (async () => {
    const res = await fetch(`${ingest.api}/api/v1/stream?dealerId=bench`, { signal: ac.signal, headers: ingest.auth });
    opened();
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) return;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = frame.split('\n').find((l) => l.startsWith('data:'));
        if (!data) continue;
        const ev = JSON.parse(data.slice(5));
        if (ev.step === 'created' && ev.prompt?.vin)
          onCreated({ vin: ev.prompt.vin, kind: ev.prompt.kind, promptId: ev.prompt.id, ts: Number(ev.prompt.evidence?.ts) || undefined });
      }
    }
  })().catch(() => opened());
  return {
    ready,
    async close() {
      ac.abort();
      await done;
    },
  };
}

/**
 * Probe vehicles, probe i on instance i mod n, its head unit subscribed there: alternate re-arm
 * (60 %, charging) and critical (5 %) SOC; time the publish -> HmiPrompt on the probe's instance,
 * and -> the `created` event on the SSE stream of the probe's instance (every instance streams
 * every prompt: also timed, the first instance to stream it, and the slowest). A cycle's prompts
 * are awaited (up to cycleTimeoutMs) before the next cycle, and each prompt is put to the cycle
 * whose reading opened it (the SSE event's evidence.ts; an HmiPrompt by its prompt id), so a slow
 * prompt is measured as slow, never against a later send.
 */
async function latencyProbes(ingests: IngestProcess[], probes: string[], cycles: number, gapMs: number, cycleTimeoutMs: number) {
  const n = ingests.length;
  const instanceOf = (vin: string) => probes.indexOf(vin) % n;
  /** `${vin}|${cycle}` -> publish time of the critical reading */
  const sentAt = new Map<string, number>();
  const cycleOfTs = new Map<number, number>();
  const cycleOfPrompt = new Map<string, number>();
  const currentCycle = new Map<string, number>();
  const hmi = new Map<string, number>();
  const sseOwn = new Map<string, number>();
  const sseAll = new Map<string, number[]>();
  const clients = await connectSpread(ingests, probes);
  for (let i = 0; i < probes.length; i++) {
    const c = clients[i];
    const vin = probes[i];
    await new Promise<void>((res, rej) => c.subscribe(`v1/vehicles/${vin}/prompts`, { qos: 1 }, (e) => (e ? rej(e) : res())));
    c.on('message', (_t, payload) => {
      const p = decodeHmiPrompt(payload);
      if (p.kind !== 'charging.critical_soc' || p.withdrawn) return;
      const cycle = cycleOfPrompt.get(p.promptId) ?? currentCycle.get(vin);
      const key = `${vin}|${cycle}`;
      const t0 = sentAt.get(key);
      if (t0 !== undefined && !hmi.has(key)) hmi.set(key, performance.now() - t0);
    });
    await publishQos1(c, `v1/vehicles/${vin}/status`, birth(vin));
  }
  const streams = ingests.map((ing, k) =>
    readStream(ing, (e) => {
      if (e.kind !== 'charging.critical_soc') return;
      const cycle = (e.ts !== undefined ? cycleOfTs.get(e.ts) : undefined) ?? currentCycle.get(e.vin);
      if (cycle === undefined) return;
      cycleOfPrompt.set(e.promptId, cycle);
      const key = `${e.vin}|${cycle}`;
      const t0 = sentAt.get(key);
      if (t0 === undefined) return;
      const ms = performance.now() - t0;
      if (instanceOf(e.vin) === k && !sseOwn.has(key)) sseOwn.set(key, ms);
      const all = sseAll.get(key) ?? [];
      if (all.length < n) all.push(ms);
      sseAll.set(key, all);
    }),
  );
  await Promise.all(streams.map((s) => s.ready));
  await sleep(500);
  const perCycle: Array<{ at: number; hmiMaxMs: number; hmiMinMs: number }> = [];
  const t00 = performance.now();
  let seq = 1_000_000;
  let ts = BENCH_T0 + 400 * 86_400_000;
  let timedOutCycles = 0;
  for (let cycle = 0; cycle < cycles; cycle++) {
    const lowTs = ts + 1000;
    cycleOfTs.set(lowTs, cycle);
    await Promise.all(
      probes.map(async (vin, i) => {
        const base = drivingSample(ts, 0, 60);
        const charged: Sample = {
          ...base,
          signals: {
            ...base.signals,
            'Vehicle.Powertrain.TractionBattery.Charging.IsCharging': true,
            'Vehicle.LowVoltageSystemState': 'OFF',
            'Vehicle.Speed': 0,
          },
        };
        await publishQos1(clients[i], `v1/vehicles/${vin}/telemetry`, telemetryPayload(vin, seq, [charged]));
        const low = {
          ts: lowTs,
          signals: {
            ...charged.signals,
            'Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed': 5,
            'Vehicle.Powertrain.TractionBattery.Charging.IsCharging': false,
          },
        };
        currentCycle.set(vin, cycle);
        sentAt.set(`${vin}|${cycle}`, performance.now());
        await publishQos1(clients[i], `v1/vehicles/${vin}/telemetry`, telemetryPayload(vin, seq + 1, [low]));
      }),
    );
    const until = performance.now() + cycleTimeoutMs;
    const complete = () =>
      probes.every((vin) => {
        const key = `${vin}|${cycle}`;
        return hmi.has(key) && (sseAll.get(key)?.length ?? 0) === n;
      });
    while (!complete() && performance.now() < until) await sleep(20);
    if (!complete()) timedOutCycles++;
    const these = probes.map((vin) => hmi.get(`${vin}|${cycle}`) ?? Infinity);
    perCycle.push({
      at: round((performance.now() - t00) / 1000, 1),
      hmiMaxMs: round(Math.max(...these)),
      hmiMinMs: round(Math.min(...these)),
    });
    seq += 2;
    ts += 3_600_000;
    await sleep(gapMs);
  }
  await Promise.all(streams.map((s) => s.close()));
  await closeAll(clients);
  const all = [...sseAll.values()];
  return {
    hmiMs: percentiles([...hmi.values()]),
    sseMs: percentiles([...sseOwn.values()]),
    sseFirstInstanceMs: percentiles(all.map((v) => Math.min(...v))),
    sseLastInstanceMs: percentiles(all.filter((v) => v.length === n).map((v) => Math.max(...v))),
    expected: probes.length * cycles,
    timedOutCycles,
    cycleTimeoutMs,
    perCycle,
    probesPerInstance: ingests.map((_, k) => probes.filter((v) => instanceOf(v) === k).length),
  };
}

// ---------------------------------------------------------------------------------------------
// Ceilings of the shared components alone.
// ---------------------------------------------------------------------------------------------

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
async function jetstreamCeiling(nats: NatsCluster, o: { batches: number; publishers: number; connections: number; meters: Meter[] }) {
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
async function postgresCeiling(
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
        stores.vehicles.upsert(
          vin,
          {
            model: 'Bench EV',
            powertrain: 'BEV',
            deliveryDate: '2025-06-01',
            dealerId: 'bench',
            locale: 'en',
            vehicleType: 'passenger',
            quietHours: { start: '00:00', end: '00:00' },
          } as VehicleProfile,
          Date.now(),
        ),
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
          await stores.ruleStates.save(mine.map((s) => ({ ...s, journalId: seq })));
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

// ---------------------------------------------------------------------------------------------
// One run: n instances, the end-to-end load, the latency at half of it.
// ---------------------------------------------------------------------------------------------

interface RunContext {
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

async function runInstances(n: number, ctx: RunContext) {
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
    INFLUX_URL: influx.url,
    INFLUX_BUCKET: bucket,
    ODOPULSE_CLOCK: 'event',
    ODOPULSE_SWEEP_MS: '3600000',
    ODOPULSE_LOG_LEVEL: 'error',
    ODOPULSE_HTTP_RATE_LIMIT: '1000000',
    ODOPULSE_MAX_CLOCK_SKEW_S: '315360000',
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
