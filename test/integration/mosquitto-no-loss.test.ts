// Nothing lost between the vehicles and ingest with the shipped Mosquitto (deploy/mosquitto as it
// is: persistence, autosave, queue limits, ACL). Ingest's MQTT client (ingest/inbound/external.ts)
// journals many QoS 1 messages at once, so the journal's group commit shares its fsyncs, and
// PUBACKs each only after its handler resolved. An ingest outage, a broker restart (SIGTERM) and a
// broker kill after an autosave lose nothing the vehicles got a PUBACK for (at least once: ingest
// answers repeats as duplicates).
import mqtt, { type MqttClient } from 'mqtt';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectExternalBroker } from '../../ingest/inbound/external.js';
import type { BrokerLink, InboundHandlers } from '../../ingest/inbound/topics.js';
import { Journal } from '../../ingest/journal/journal.js';
import { decodeTelemetryBatch, encodeTelemetryBatch } from '../../proto/codec.js';
import { VSS } from '../../proto/signals.js';
import { influxQuery, startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { metric, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { startMosquitto, type MosquittoHandle } from '../support/mosquitto.js';
import { waitFor } from '../support/wait.js';

const VINS = Array.from({ length: 20 }, (_, i) => `LNLSS${String(i).padStart(12, '0')}`);
const INGEST_USER = 'odopulse-ingest'; // the shipped acl's ingest user
const BOOT = 'noloss';
const SAMPLES = 2;
/** Sample times: unique per (vin, seq, sample), a few hours back (inside retention, not in the future). */
const T0 = Date.now() - 6 * 3600_000;
const sampleTs = (seq: number, i: number) => T0 + (seq * SAMPLES + i) * 1000;

const tmp = mkdtempSync(join(tmpdir(), 'odopulse-noloss-'));
const passwords: Record<string, string> = { [INGEST_USER]: 'ingest-secret', ...Object.fromEntries(VINS.map((v) => [v, `pw-${v}`])) };
writeFileSync(join(tmp, 'ingest.pw'), 'ingest-secret\n');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function batch(vin: string, seq: number): Buffer {
  const samples = Array.from({ length: SAMPLES }, (_, i) => ({ ts: sampleTs(seq, i), signals: { [VSS.soc]: 50 + i } }));
  return Buffer.from(encodeTelemetryBatch({ vin, bootId: BOOT, seq, dropped: 0, samples }));
}

/**
 * Every vehicle publishes its `seqs` at QoS 1, at most 8 unacknowledged at a time (as the agent's
 * uplink does), and disconnects. Resolves with the (vin, seq) keys the broker PUBACKed.
 */
async function publishAll(url: string, vins: string[], seqs: number[]): Promise<string[]> {
  const acked: string[] = [];
  await Promise.all(
    vins.map(async (vin) => {
      const c: MqttClient = await mqtt.connectAsync(url, { clientId: vin, username: vin, password: passwords[vin], reconnectPeriod: 0 });
      try {
        const pending = new Set<Promise<void>>();
        for (const seq of seqs) {
          const p = c
            .publishAsync(`v1/vehicles/${vin}/telemetry`, batch(vin, seq), { qos: 1 })
            .then(() => void acked.push(`${vin}/${seq}`));
          pending.add(p);
          void p.finally(() => pending.delete(p)).catch(() => {});
          if (pending.size >= 8) await Promise.race(pending);
        }
        await Promise.all(pending);
      } finally {
        await c.endAsync();
      }
    }),
  );
  return acked;
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
const sorted = (xs: Iterable<string>) => [...xs].sort();

describe("ingest's MQTT client against the shipped Mosquitto (in process, real journal)", () => {
  let broker: MosquittoHandle;
  let journal: Journal;
  let link: BrokerLink | undefined;
  let commits = 0;
  const seen = new Map<string, number>();
  let outstanding = 0;
  let maxOutstanding = 0;
  const errors: string[] = [];
  /** Handlers held by a test (released in afterAll should it fail first). */
  const held: Array<() => void> = [];
  /** Per test: what the handler does before journalling (hold or fail a delivery). */
  let before: ((key: string, delivery: number) => Promise<void> | undefined) | undefined;

  const handlers: InboundHandlers = {
    telemetry: async (vin, payload) => {
      const b = decodeTelemetryBatch(payload);
      const key = `${vin}/${b.seq}`;
      const delivery = (seen.get(key) ?? 0) + 1;
      seen.set(key, delivery);
      maxOutstanding = Math.max(maxOutstanding, ++outstanding);
      try {
        await before?.(key, delivery);
        await journal.append(vin, b.seq, payload, Date.now(), b.bootId);
      } finally {
        outstanding--;
      }
    },
    status: async () => {},
    ack: async () => {},
  };
  const connect = () =>
    connectExternalBroker(
      {
        url: broker.url,
        prefix: 'v1',
        username: INGEST_USER,
        passwordFile: join(tmp, 'ingest.pw'),
        onError: (e) => errors.push(e.message),
      },
      handlers,
    );
  const journalled = () => new Set(journal.pendingForInflux(0, 100_000).map((e) => `${e.vin}/${e.seq}`));

  const journalDir = mkdtempSync(join(tmpdir(), 'odopulse-noloss-journal-'));

  beforeAll(async () => {
    broker = await startMosquitto({ shipped: true, passwords });
    journal = new Journal(journalDir);
    // journal.ts has no commit counter: count its group commits (one transaction, one fsync each)
    // through its private commit(), which its timer calls as this.commit()
    const j = journal as unknown as { commit(): void; queue: unknown[] };
    const commit = j.commit.bind(journal);
    j.commit = () => {
      if (j.queue.length > 0) commits++;
      commit();
    };
  }, 60_000);
  afterAll(async () => {
    before = undefined;
    for (const r of held.splice(0)) r();
    await link?.close();
    journal?.close();
    await broker?.dispose();
    rmSync(journalDir, { recursive: true, force: true });
  });

  it('journals 2,000 batches from 20 vehicles, each once, in fewer commits than batches', async () => {
    link = await connect();
    const acked = await publishAll(broker.url, VINS, range(1, 100));
    expect(acked.length).toBe(2000);
    await waitFor(() => journal.lag().total === 2000, { what: '2,000 batches journalled' });
    expect(sorted(journalled())).toEqual(sorted(acked));
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    // handled at once, so the journal grouped them (one message at a time made one commit each)
    expect(maxOutstanding).toBeGreaterThan(1);
    expect(commits).toBeLessThan(2000);
  });

  it('PUBACKs nothing before the handler resolves: held messages come again after a broker restart', async () => {
    before = (_key, delivery) => (delivery === 1 ? new Promise<void>((r) => held.push(r)) : undefined);
    const seqs = range(1001, 50);
    const keys = seqs.map((s) => `${VINS[0]}/${s}`);
    await publishAll(broker.url, [VINS[0]], seqs);
    // all 50 are being handled at once, none resolved, so none acknowledged
    await waitFor(() => held.length === 50, { what: '50 messages handled at once' });
    expect(outstanding).toBe(50);

    await broker.stop(); // SIGTERM: Mosquitto saves the 50 it has in flight to ingest
    await broker.start();
    // ingest reconnects; the broker resends what ingest never acknowledged
    await waitFor(() => keys.every((k) => seen.get(k) === 2), { what: 'all 50 delivered again' });
    await waitFor(() => keys.every((k) => journalled().has(k)), { what: 'all 50 journalled' });
    for (const r of held.splice(0)) r(); // their PUBACKs belong to the closed connection: dropped
    await waitFor(() => outstanding === 0, { what: 'the held handlers finished' });
    before = undefined;
  });

  it('does not acknowledge a message whose handling failed: it comes again and is journalled', async () => {
    const failing = `${VINS[1]}/2001`;
    before = (key, delivery) => (key === failing && delivery === 1 ? Promise.reject(new Error('journal unavailable')) : undefined);
    const seqs = range(2001, 20);
    await publishAll(broker.url, [VINS[1]], seqs);
    await waitFor(() => seqs.every((s) => journalled().has(`${VINS[1]}/${s}`)), { what: 'all 20 journalled' });
    expect(seen.get(failing)).toBe(2);
    expect(errors).toContain('journal unavailable');
    before = undefined;
  });
});

describe('vehicles -> shipped Mosquitto -> ingest process: nothing PUBACKed is lost', () => {
  let influx: InfluxdHandle;
  let broker: MosquittoHandle;
  let ingest: IngestProcess | undefined;
  let env: Record<string, string>;
  /** Every (vin, seq) a vehicle got a PUBACK for, over all the tests. */
  const acked = new Set<string>();

  /** (vin, sample time) pairs stored in InfluxDB. */
  async function stored(): Promise<Set<string>> {
    const r = await influxQuery(influx.url, 'noloss', `SELECT "${VSS.soc}" FROM "telemetry" GROUP BY "vin"`);
    const out = new Set<string>();
    for (const s of r.results?.[0]?.series ?? []) for (const v of s.values) out.add(`${s.tags?.vin}@${v[0] as number}`);
    return out;
  }
  const expectedPoints = () =>
    new Set(
      [...acked].flatMap((k) => {
        const [vin, seq] = k.split('/');
        return range(0, SAMPLES).map((i) => `${vin}@${sampleTs(Number(seq), i)}`);
      }),
    );
  /** Every PUBACKed batch's samples are in InfluxDB, and nothing else is. */
  async function expectAllStored(what: string): Promise<void> {
    const want = expectedPoints();
    await waitFor(async () => (await stored()).size >= want.size, { what, timeoutMs: 60_000, intervalMs: 250 });
    expect(sorted(await stored())).toEqual(sorted(want));
  }
  const reuse = () => ({ dataDir: ingest!.dataDir, httpPort: ingest!.httpPort, mqttPort: ingest!.mqttPort, token: ingest!.token });

  beforeAll(async () => {
    influx = await startInfluxd({ database: 'noloss' });
    broker = await startMosquitto({ shipped: true, passwords });
    env = {
      INFLUX_URL: influx.url,
      INFLUX_BUCKET: 'noloss',
      ODOPULSE_MQTT_URL: broker.url,
      ODOPULSE_MQTT_USERNAME: INGEST_USER,
      ODOPULSE_MQTT_PASSWORD_FILE: join(tmp, 'ingest.pw'),
    };
    ingest = await startIngestProcess(env);
  }, 120_000);
  afterAll(async () => {
    await ingest?.stop();
    await broker?.dispose();
    await influx?.stop();
  });

  it('2,000 batches from 20 vehicles while ingest runs: every one journalled once and stored', async () => {
    for (const k of await publishAll(broker.url, VINS, range(1, 100))) acked.add(k);
    expect(acked.size).toBe(2000);
    const fresh = () => metric(ingest!, 'odopulse_telemetry_batches_total{result="new"}');
    await waitFor(async () => (await fresh()) >= 2000, { what: '2,000 new batches journalled', intervalMs: 200 });
    expect(await fresh()).toBe(2000);
    await expectAllStored('the 2,000 batches in InfluxDB');
  }, 120_000);

  it('ingest down while the vehicles publish, Mosquitto restarted (SIGTERM), ingest up: all stored', async () => {
    const keep = reuse();
    await ingest!.stop();
    ingest = undefined;
    for (const k of await publishAll(broker.url, VINS, range(101, 20))) acked.add(k);
    expect(acked.size).toBe(2400);
    await broker.stop(); // saves the database on exit, the queue for ingest's session included
    await broker.start();
    ingest = await startIngestProcess(env, keep);
    await expectAllStored('the batches queued across the broker restart in InfluxDB');
  }, 120_000);

  it('ingest down, Mosquitto killed (SIGKILL) after an autosave, ingest up: all stored', async () => {
    const keep = reuse();
    await ingest!.stop();
    ingest = undefined;
    for (const k of await publishAll(broker.url, VINS, range(121, 20))) acked.add(k);
    expect(acked.size).toBe(2800);
    // Mosquitto logs each save as it starts, on its only thread: a save that started after the
    // last PUBACK has the messages, and the one after it starting means that save finished.
    const saves = broker.saves();
    await waitFor(() => broker.saves() >= saves + 2, { what: 'two autosaves after the last PUBACK', timeoutMs: 15_000 });
    await broker.kill9(); // no save on exit: only what the autosave wrote survives
    await broker.start();
    ingest = await startIngestProcess(env, keep);
    await expectAllStored('the batches of the last autosave in InfluxDB');
  }, 120_000);
});
