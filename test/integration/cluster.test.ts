// Cluster mode end to end on one box (docs/architecture.md#cluster-mode): two ingest processes on one
// NATS server (JetStream, replicas 1) and one PostgreSQL, a real influxd. The partitions are shared
// out; telemetry published to either instance reaches InfluxDB once and its prompt is made once by
// the vehicle's partition owner, listed by both instances, streamed by both, and delivered to the car
// through the instance it is connected to. The kill -9 / node-failure case is in test/faults/cluster.test.ts.
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeHmiPrompt, encodeAgentStatus } from '../../proto/codec.js';
import { VSS } from '../../proto/signals.js';
import { partitionOf } from '../../ingest/cluster/partition.js';
import { startInfluxd, influxNumber, type InfluxdHandle } from '../support/influxd.js';
import { apiRequest, getJson, promptsOf, publishBatch, putVehicle, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { startNatsCluster, type NatsCluster } from '../support/nats.js';
import { startPostgres, type PostgresHandle } from '../support/postgres.js';
import { PROFILE } from '../support/scenario.js';
import { readPromptStream } from '../support/sse.js';
import { waitFor } from '../support/wait.js';

const PARTITIONS = 8;
const T0 = Date.parse('2026-03-01T08:00:00Z');

let nats: NatsCluster;
let pg: PostgresHandle;
let influx: InfluxdHandle;
const ingests: IngestProcess[] = [];

const health = async (i: IngestProcess) =>
  (await (await fetch(`${i.api}/healthz`)).json()) as { status: string; checks: Record<string, string | boolean> };

/** VINs whose partitions differ, until there is one owned by each instance. */
function vinsSpread(n: number): string[] {
  const out: string[] = [];
  for (let k = 0; out.length < n; k++) {
    const vin = `LCLUSTER${String(k).padStart(9, '0')}`;
    if (!out.some((v) => partitionOf(v, PARTITIONS) === partitionOf(vin, PARTITIONS))) out.push(vin);
  }
  return out;
}

beforeAll(async () => {
  [nats, pg, influx] = await Promise.all([startNatsCluster({ nodes: 1 }), startPostgres(), startInfluxd()]);
  const databaseUrl = await pg.createDatabase('odopulse');
  for (const id of ['ingest-a', 'ingest-b']) {
    ingests.push(
      await startIngestProcess({
        ODOPULSE_NATS_URL: nats.urls.join(','),
        ODOPULSE_DATABASE_URL: databaseUrl,
        ODOPULSE_INSTANCE_ID: id,
        ODOPULSE_PARTITIONS: String(PARTITIONS),
        ODOPULSE_NATS_REPLICAS: '1',
        ODOPULSE_WORKERS: '1',
        INFLUX_URL: influx.url,
        INFLUX_BUCKET: influx.database,
      }),
    );
  }
}, 120_000);

afterAll(async () => {
  await Promise.all(ingests.map((i) => i.stop()));
  await Promise.allSettled([nats?.close(), pg?.stop(), influx?.stop()]);
});

describe('cluster mode on one box', () => {
  it('shares the partitions out: each held by exactly one live instance', async () => {
    await waitFor(
      async () => {
        const held = await Promise.all(ingests.map(async (i) => Number((await health(i)).checks.partitionsHeld)));
        return held[0] > 0 && held[1] > 0 && held[0] + held[1] === PARTITIONS;
      },
      { what: 'both instances holding partitions, all of them held', timeoutMs: 30_000, intervalMs: 300 },
    );
    const h = await health(ingests[0]);
    expect(h).toMatchObject({ status: 'ok', checks: { nats: true, clusterMembers: '2' } });
  });

  it('telemetry to either instance: stored once, its prompt made once, listed and streamed by both, delivered where the car is', async () => {
    const vins = vinsSpread(6);
    for (const vin of vins) await putVehicle(ingests[0], vin, { ...PROFILE, dealerId: 'D1' });
    const streams = ingests.map((i) => readPromptStream(`${i.api}/api/v1/stream`, i.auth));
    // one head unit per vehicle, on the other instance than the one it publishes to
    const heads = await Promise.all(
      vins.map(async (vin, k) => {
        const at = ingests[(k + 1) % 2];
        const c = await mqtt.connectAsync(at.mqttUrl, { clientId: `${vin}:hmi`, username: vin, reconnectPeriod: 0 });
        const got: string[] = [];
        c.on('message', (_t, payload) => got.push(decodeHmiPrompt(payload).kind));
        await c.subscribeAsync(`v1/vehicles/${vin}/prompts`, { qos: 1 });
        await c.publishAsync(
          `v1/vehicles/${vin}/status`,
          Buffer.from(
            encodeAgentStatus({
              vin,
              online: true,
              agentVersion: 't',
              configVersion: 0,
              bootId: 'b1',
              ts: T0,
              spoolDropped: 0,
              spoolPending: 0,
            }),
          ),
          {
            qos: 1,
            retain: true,
          },
        );
        return { c, got };
      }),
    );
    try {
      for (const [k, vin] of vins.entries()) {
        const to = ingests[k % 2].mqttUrl;
        // parked at 6 % (critical_soc: urgent, to the HMI at once), then the same batch again (a resend)
        const samples = [{ ts: T0 + k, signals: { [VSS.soc]: 6, [VSS.speed]: 0, [VSS.odometer]: 1000 } }];
        await publishBatch(to, vin, samples, { seq: 1, bootId: 'b1' });
        await publishBatch(ingests[(k + 1) % 2].mqttUrl, vin, samples, { seq: 1, bootId: 'b1' });
      }
      for (const vin of vins) {
        await waitFor(async () => (await promptsOf(ingests[1], vin)).some((p) => p.kind === 'charging.critical_soc'), {
          what: `critical_soc prompt of ${vin}`,
          timeoutMs: 30_000,
          intervalMs: 250,
        });
      }
      for (const i of ingests) {
        for (const vin of vins) expect((await promptsOf(i, vin)).filter((p) => p.kind === 'charging.critical_soc')).toHaveLength(1);
      }
      // every instance's SSE stream carries every created prompt, once
      for (const s of streams) {
        await waitFor(
          () =>
            vins.every((v) =>
              s.events.some((e) => e.prompt.vin === v && e.step === 'created' && e.prompt.kind === 'charging.critical_soc'),
            ),
          {
            what: 'created events on both streams',
            timeoutMs: 15_000,
          },
        );
        const created = (vin: string) =>
          s.events.filter((e) => e.prompt.vin === vin && e.step === 'created' && e.prompt.kind === 'charging.critical_soc');
        for (const vin of vins) expect(created(vin)).toHaveLength(1);
        // in sequence order, each change once
        const seqs = s.events.map((e) => e.seq);
        expect(seqs).toEqual([...new Set(seqs)].sort((a, b) => a - b));
      }
      // the car has it, from the instance it is connected to
      await waitFor(() => heads.every((h) => h.got.includes('charging.critical_soc')), {
        what: 'HMI prompts on the head units',
        timeoutMs: 15_000,
      });
      await waitFor(
        async () => {
          for (const vin of vins)
            if ((await promptsOf(ingests[0], vin)).some((p) => p.kind === 'charging.critical_soc' && p.hmiState !== 'delivered'))
              return false;
          return true;
        },
        { what: 'prompts delivered (the car PUBACKed them)', timeoutMs: 15_000 },
      );
      // InfluxDB: one point per vehicle, though each batch came twice
      await waitFor(
        async () => (await influxNumber(influx.url, influx.database, `SELECT count("${VSS.soc}") FROM telemetry`)) >= vins.length,
        {
          what: 'samples in InfluxDB',
          timeoutMs: 20_000,
        },
      );
      expect(await influxNumber(influx.url, influx.database, `SELECT count("${VSS.soc}") FROM telemetry`)).toBe(vins.length);
    } finally {
      await Promise.all(streams.map((s) => s.close()));
      await Promise.all(heads.map((h) => h.c.endAsync()));
    }
  });

  it('a service visit posted to either instance is applied once, by the owner of the vehicle', async () => {
    const vins = vinsSpread(4);
    for (const [k, vin] of vins.entries()) {
      const r = await apiRequest(ingests[k % 2], 'POST', `/api/v1/vehicles/${vin}/service-records`, {
        date: '2026-03-01',
        odometer: 1000 + k,
        items: ['inspection'],
      });
      expect(r.status).toBe(201);
      const other = await getJson<{ serviceRecords: Array<{ id: number; odometer: number }> }>(
        `${ingests[(k + 1) % 2].api}/api/v1/vehicles/${vin}`,
        ingests[0].auth,
      );
      expect(other.serviceRecords.map((x) => x.odometer)).toEqual([1000 + k]);
    }
  });

  it('an instance that leaves hands its partitions to the other at once', async () => {
    const leaving = ingests.pop()!;
    expect(await leaving.stop()).toBe(0);
    await waitFor(async () => Number((await health(ingests[0])).checks.partitionsHeld) === PARTITIONS, {
      what: 'the remaining instance holding every partition',
      timeoutMs: 15_000,
      intervalMs: 200,
    });
  });
});
