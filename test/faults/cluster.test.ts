// Cluster mode (docs/architecture.md#cluster-mode) under a fleet load that never stops: three ingest
// instances on a 3-node NATS JetStream cluster (telemetry stream R3) and one PostgreSQL database,
// 200 vehicles spread over their MQTT ports (vehicle i on instance i % 3), QoS 1, re-sending after
// every reconnect. (1) kill -9 one instance (its vehicles reconnect to a survivor, its partitions
// move once their leases run out), then SIGKILL the NATS node leading the telemetry stream and bring
// it back; (2) a fourth instance joins under load and takes over some partitions. Both end with the
// same checks: every acknowledged batch in InfluxDB exactly once; every planned DTC prompted exactly
// once, listed alike by every live instance's API (so by another one than the partition owner that
// made it); one webhook event per prompt created, no id delivered twice, every signature valid; each
// vehicle's stored rule state at its newest sample (lastTs) and at the stream sequence of its last
// message (journalId): nothing applied out of order or left behind; every partition leased to a
// live instance. The seeded RNG (ODOPULSE_FAULT_SEED) picks the DTC plan.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { influxQuery, startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { startNatsCluster, type NatsCluster } from '../support/nats.js';
import { startPostgres, type PostgresHandle } from '../support/postgres.js';
import { readPromptStream, type SseReader } from '../support/sse.js';
import { waitFor } from '../support/wait.js';
import { DtcLedger, faultSeed, planDtcs, readings, seededRandom, vins, waitForPlanAcked } from './support/cases.js';
import { ClusterRig, WebhookReceiver } from './support/cluster.js';
import { expectOutcome, newestAcked, settle, type Mark } from './support/cluster-checks.js';
import { streamLastSeq, streamLeader } from './support/cluster-stream.js';
import { FleetLoad } from './support/load.js';
import { recordFault } from './support/table.js';

const PARTITIONS = 16;
const VEHICLES = 200;
const HOMES = 3;
const RATE = 2; // new batches per vehicle per second
/** A new instance must hold partitions this soon after its /healthz is ok (leases ~6 s). */
const JOIN_BOUND_MS = 20_000;

let postgres: PostgresHandle;
let influx: InfluxdHandle;

beforeAll(async () => {
  postgres = await startPostgres();
  influx = await startInfluxd({ database: 'faultcluster1' });
  await influxQuery(influx.url, 'faultcluster1', 'CREATE DATABASE "faultcluster2"');
});

afterAll(async () => {
  await influx?.stop();
  await postgres?.stop();
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const fmtOwners = (o: Map<string, number[]>) =>
  [...o]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([id, ps]) => `${id} ${ps.length}`)
    .join(', ');

interface Case {
  name: string;
  db: string;
  prefix: string;
  /** The DTC plan's last seq: about maxSeq / RATE seconds into the load. */
  maxSeq: number;
  /** Instances whose SSE stream is read from the start to the end (not one that is killed). */
  sseOn: string[];
  /** Inject the fault under load; returns notes for the row. */
  fault(ctx: Ctx): Promise<string>;
}

interface Ctx {
  rig: ClusterRig;
  nats: NatsCluster;
  ledger: DtcLedger;
  loads: FleetLoad[];
  homes: string[][];
  /** Moments of the fault, as the stream's last sequence then (late batches are counted per phase). */
  marks: Mark[];
  receiver: WebhookReceiver;
}

async function runCase(c: Case): Promise<void> {
  const seed = faultSeed(c.name);
  const rnd = seededRandom(seed);
  const VINS = vins(c.prefix, VEHICLES);
  const nats = await startNatsCluster({ nodes: 3 });
  const receiver = await new WebhookReceiver().start();
  const databaseUrl = await postgres.createDatabase(c.db);
  const rig = await new ClusterRig({
    name: c.db,
    natsUrls: nats.urls,
    databaseUrl,
    influxUrl: influx.url,
    influxDb: c.db,
    webhookUrl: receiver.url,
    partitions: PARTITIONS,
  }).init();
  let failed = true;
  const loads: FleetLoad[] = [];
  const streams = new Map<string, SseReader>();
  try {
    await Promise.all(['i0', 'i1', 'i2'].map((id) => rig.start(id)));
    for (const id of c.sseOn) streams.set(id, readPromptStream(`${rig.member(id).api}/api/v1/stream`, rig.member(id).auth));
    await waitFor(
      async () => {
        const o = await rig.owners();
        return [...o.values()].flat().length === PARTITIONS && ['i0', 'i1', 'i2'].every((id) => (o.get(id)?.length ?? 0) > 0);
      },
      { what: `all ${PARTITIONS} partitions leased, each of the 3 instances holding some`, timeoutMs: 30_000, intervalMs: 200 },
    );

    // half the vehicles report two DTCs each, spread over the faults
    const ledger = new DtcLedger(
      planDtcs(
        rnd,
        VINS.filter((_, i) => i % 2 === 0),
        { perVehicle: 2, minSeq: 3, maxSeq: c.maxSeq },
      ),
    );
    const homes = Array.from({ length: HOMES }, (_, g) => VINS.filter((_, i) => i % HOMES === g));
    for (const [g, group] of homes.entries())
      loads.push(new FleetLoad({ url: () => rig.mqttUrlFor(g), vins: group, ledger, ratePerVehicle: RATE }).start());
    const started = Date.now();
    await waitFor(() => ledger.acked.size >= VEHICLES * 4, { what: 'the load acknowledged on every instance', timeoutMs: 60_000 });

    const marks: Mark[] = [];
    const faultNotes = await c.fault({ rig, nats, ledger, loads, homes, marks, receiver });

    await waitForPlanAcked(ledger, loads, { timeoutMs: 120_000, intervalMs: 200 });
    const loadMs = Date.now() - started;
    await Promise.all(loads.map((l) => l.stop()));
    const o = await settle(rig, nats, ledger, receiver, VINS, streams, marks);

    const connects = loads.reduce((n, l) => n + l.connects, 0);
    const stalls = loads.reduce((n, l) => n + l.stalls, 0);
    recordFault({
      fault: c.name,
      load: `${VEHICLES} vehicles × ${RATE} batches/s over 3 instances' MQTT, QoS 1, 8 in flight, ${Math.round(loadMs / 1000)} s`,
      produced: readings(ledger.acked.size),
      stored: readings(o.stored.stored),
      lost: readings(o.stored.lost.length),
      promptsDuplicated: o.dups.count,
      notes:
        `seed ${seed}; ${ledger.acked.size} batches acked, ${o.stored.lost.length} lost, ${o.stored.duplicated.length} duplicated; ${faultNotes}; ` +
        `${o.expected.length} DTC prompts expected, ${o.expected.length - o.missing.length} found on each of ${o.views.size} APIs; ` +
        `${o.created.length} created events, ${o.webhookDups.length} ids twice, ${receiver.takenOver().length} sent again after the killed instance's claim ran out, ${o.missingCreated.length} missing; ` +
        `rule states out of order ${o.outOfOrder.length}, journal behind ${o.journalBehind.length}, ` +
        `batches late in the stream ${o.lateInStream.length} (${o.lateByPhase}); ` +
        `SSE ${[...o.sse].map(([id, x]) => `${id} ${x.changes} changes, ${x.missing.length} created missing`).join(', ')}; ` +
        `${connects} vehicle connects, ${stalls} stalls; ` +
        `drain ${o.drainMs} ms, settle ${o.settleMs} ms`,
    });

    expectOutcome(o);
    failed = false;
  } finally {
    await Promise.all(loads.map((l) => l.stop(5_000).catch(() => {})));
    await Promise.all([...streams.values()].map((s) => s.close().catch(() => {})));
    if (failed) {
      console.error(`[${c.name}] failed; ingest logs in ${rig.dir}:\n${rig.tails()}`);
      for (const [i, n] of nats.nodes.entries()) console.error(`--- nats ${n.name}\n${nats.log(i).slice(-1500)}`);
    }
    await rig.close(failed);
    await receiver.stop();
    await nats.close();
  }
}

/** Until each vehicle of `vins` got a PUBACK for a batch newer than `before` had; how long that took. */
async function vehiclesBack(ledger: DtcLedger, vinsOf: string[], before: Map<string, number>, what: string): Promise<number> {
  const t = Date.now();
  await waitFor(
    () => {
      const now = newestAcked(ledger);
      return vinsOf.every((v) => (now.get(v) ?? 0) > (before.get(v) ?? 0));
    },
    { what, timeoutMs: 60_000, intervalMs: 100 },
  );
  return Date.now() - t;
}

describe('cluster mode: 3 ingest instances, 3 NATS nodes, one PostgreSQL', () => {
  it('kill -9 of an instance, then SIGKILL of the stream leader node: nothing lost, nothing twice, partitions move', async () => {
    await runCase({
      name: 'cluster: ingest kill -9, then NATS stream leader SIGKILL',
      db: 'faultcluster1',
      prefix: 'LCLKA',
      maxSeq: 90,
      sseOn: ['i0', 'i1'],
      async fault({ rig, nats, ledger, homes, marks, receiver }) {
        const victim = 'i2';
        const before = await rig.owners();
        const held = before.get(victim) ?? [];
        expect(held.length, `${victim} held partitions before the kill`).toBeGreaterThan(0);

        const acked = newestAcked(ledger);
        marks.push({ at: `${victim} kill`, streamSeq: await streamLastSeq(nats) });
        await rig.kill(victim);
        const killedAt = Date.now();
        receiver.instanceKilled(killedAt);
        // its vehicles are on a survivor's MQTT at once; its partitions once their leases run out
        const back = vehiclesBack(ledger, homes[2], acked, `${victim}'s vehicles acknowledged by a survivor`);
        back.catch(() => {}); // awaited below
        await waitFor(
          async () => {
            const rows = await rig.partitions();
            return rows.every((r) => r.owner !== null && r.owner !== victim && r.live);
          },
          { what: `no partition owned by ${victim}, every one leased to a survivor`, timeoutMs: 30_000, intervalMs: 100 },
        );
        const takeoverMs = Date.now() - killedAt;
        const vehiclesBackMs = await back;
        const after = await rig.owners();
        expect(after.has(victim)).toBe(false);

        await pause(3_000); // the fault's timing: the load on two instances for a while
        const leader = (await streamLeader(nats)) ?? 0;
        const beforeNats = newestAcked(ledger);
        marks.push({ at: 'NATS kill', streamSeq: await streamLastSeq(nats) });
        await nats.kill(leader);
        const natsKilledAt = Date.now();
        const resumeMs = await vehiclesBack(ledger, homes.flat(), beforeNats, 'every vehicle acknowledged again after the NATS kill');
        marks.push({ at: 'acks resumed', streamSeq: await streamLastSeq(nats) });
        await pause(Math.max(0, 8_000 - (Date.now() - natsKilledAt))); // down for 8 s at least
        const downMs = Date.now() - natsKilledAt;
        marks.push({ at: 'NATS restart', streamSeq: await streamLastSeq(nats) });
        await nats.start(leader);
        marks.push({ at: 'NATS back', streamSeq: await streamLastSeq(nats) });
        await pause(3_000);

        return (
          `time to take over ${takeoverMs} ms (${victim}'s ${held.length} partitions → ` +
          `${fmtOwners(after)}), its vehicles back in ${vehiclesBackMs} ms; ` +
          `NATS ${nats.nodes[leader].name} (stream leader) down ${secs(downMs)}, every vehicle acked again in ${resumeMs} ms`
        );
      },
    });
  }, 300_000);

  it('a fourth instance joins under load: it takes partitions within 20 s, nothing lost, nothing twice', async () => {
    await runCase({
      name: 'cluster: a 4th ingest instance joins under load',
      db: 'faultcluster2',
      prefix: 'LCLKB',
      maxSeq: 60,
      sseOn: ['i0', 'i1', 'i2'],
      async fault({ rig, nats, marks }) {
        const before = await rig.owners();
        marks.push({ at: 'i3 start', streamSeq: await streamLastSeq(nats) });
        const t = Date.now();
        await rig.start('i3');
        const healthyMs = Date.now() - t;
        const healthyAt = Date.now();
        const held = await waitFor(
          async () => {
            const ps = (await rig.owners()).get('i3') ?? [];
            return ps.length > 0 ? ps : undefined;
          },
          { what: 'i3 holding partitions', timeoutMs: JOIN_BOUND_MS, intervalMs: 100 },
        );
        const joinMs = Date.now() - healthyAt;
        await pause(6_000); // the fault's timing: the load on the rebalanced cluster for a while
        const after = await rig.owners();
        expect(after.get('i3')?.length ?? 0).toBeGreaterThan(0);
        return (
          `i3 healthy in ${healthyMs} ms, first partitions (${held.length}) ${joinMs} ms later (time to take over); ` +
          `partitions ${fmtOwners(before)} → ${fmtOwners(after)}`
        );
      },
    });
  }, 300_000);
});
