// 10,000 fuzzed telemetry payloads through the real broker (the ingest process's embedded aedes),
// with valid batches from the ledger in between, on the same vehicles and on others. What ingest
// must do with each payload is decided beforehand by the product's own code (support/fuzz.ts); the
// test then holds ingest to it: never down, every dead letter counted under its reason (metric and
// dead_letters table, payload by payload), the ACL and packet-size refusals counted apart, every
// accepted batch and every valid one journalled and in InfluxDB.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeTelemetryBatch } from '../../proto/codec.js';
import { Database } from '../../ingest/store/sqlite/driver.js';
import { startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { metric, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { waitFor } from '../support/wait.js';
import { disagreements, fuzzCorpus, type FuzzItem } from './support/fuzz.js';
import { Ledger, sample, SAMPLES_PER_BATCH } from './support/ledger.js';
import { FleetLoad } from './support/load.js';
import { recordFault } from './support/table.js';

const SEED = Number(process.env.ODOPULSE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const COUNT = Number(process.env.ODOPULSE_FUZZ_COUNT ?? 10_000);
const MAX_PACKET = 263_168; // ODOPULSE_MQTT_MAX_PACKET_BYTES default (inbound/embedded.ts DEFAULT_MAX_PACKET_BYTES)
const LIMITS = { maxPacket: MAX_PACKET, skewS: 600, retentionDays: 3650 }; // the defaults of ingest/config.ts
const FUZZ_VINS = Array.from({ length: 4 }, (_, i) => `LFUZZ${String(i).padStart(12, '0')}`);
const LOAD_VINS = Array.from({ length: 4 }, (_, i) => `LFUZZVEH${String(i).padStart(9, '0')}`);
/** Payloads in flight per fuzz connection, and a ledger batch after every this many payloads. */
const WINDOW = 16;
const LEDGER_EVERY = 8;

const sha = (b: Uint8Array) => createHash('sha1').update(b).digest('hex');

/**
 * One fuzz connection (client id VIN:fz): payloads at QoS 1 with a window, ledger batches between
 * them. A payload that must close the connection (ACL, packet size) is sent alone once the window
 * is empty, so nothing else can be caught in the close, and the client waits to see the close.
 */
class FuzzPublisher {
  private client: MqttClient | undefined;
  private connecting: Promise<MqttClient> | undefined;
  private inflight = 0;
  private readonly idle: Array<() => void> = [];
  private ledgerSeq = 1;
  readonly stats = { connects: 0, closes: 0, resent: 0, fuzzResent: 0, mismatches: [] as string[] };

  constructor(
    private readonly url: string,
    private readonly vin: string,
    private readonly ledger: Ledger,
  ) {}

  /** The open connection, or one new one shared by every caller (two with one client id would take turns kicking each other out). */
  private conn(): Promise<MqttClient> {
    if (this.client?.connected) return Promise.resolve(this.client);
    this.connecting ??= this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async connect(): Promise<MqttClient> {
    for (;;) {
      try {
        // allowRetries false: a connection closed before its CONNACK rejects instead of never settling
        // (as in support/load.ts; mqtt.js with reconnectPeriod 0 only emits 'close' there)
        const c = await mqtt.connectAsync(
          this.url,
          {
            clientId: `${this.vin}:fz`,
            username: this.vin,
            reconnectPeriod: 0,
            connectTimeout: 5000,
          },
          false,
        );
        this.stats.connects++;
        // reconnectPeriod 0: what was in flight stays pending until end() fails it (then it is re-sent)
        c.once('close', () => c.end(true));
        c.on('error', () => {});
        this.client = c;
        return c;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  private async slot(): Promise<void> {
    while (this.inflight >= WINDOW) await new Promise<void>((r) => this.idle.push(r));
    this.inflight++;
  }

  private release(): void {
    this.inflight--;
    for (const w of this.idle.splice(0)) w();
  }

  private async drained(): Promise<void> {
    while (this.inflight > 0) await new Promise<void>((r) => this.idle.push(r));
  }

  /** Publish until a PUBACK comes, over as many connections as it takes (a few: one that closes each time is a finding). */
  private async deliver(topic: string, payload: Buffer, what: string): Promise<boolean> {
    for (let attempt = 0; attempt < 5; attempt++) {
      if (attempt > 0) this.stats.resent++;
      if (attempt > 0 && what !== 'ledger') this.stats.fuzzResent++;
      try {
        await (await this.conn()).publishAsync(topic, payload, { qos: 1 });
        return true;
      } catch {
        // the connection went: again on the next one
      }
    }
    this.stats.mismatches.push(`${what}: the connection closed at each of 5 attempts, never a PUBACK`);
    return false;
  }

  private ledgerBatch(): void {
    const seq = this.ledgerSeq++;
    void this.slot().then(async () => {
      if (await this.deliver(`v1/vehicles/${this.vin}/telemetry`, this.ledger.batch(this.vin, 0, seq), 'ledger'))
        this.ledger.acked.add(this.ledger.key(this.vin, 0, seq));
      this.release();
    });
  }

  async run(items: FuzzItem[]): Promise<void> {
    for (let i = 0; i < items.length; i++) {
      if (i % LEDGER_EVERY === 0) this.ledgerBatch();
      const it = items[i];
      if (it.outcome.kind === 'oversize-packet' || it.outcome.kind === 'denied') {
        await this.drained();
        const c = await this.conn();
        const closed = new Promise<'closed'>((r) => c.once('close', () => r('closed')));
        const acked = c.publishAsync(it.topic, it.payload, { qos: 1, retain: !!it.retain }).then(
          () => 'acknowledged',
          () => 'failed',
        );
        const timeout = new Promise<string>((r) => setTimeout(() => r('still open after 10 s'), 10_000).unref());
        const got = await Promise.race([closed, acked, timeout]);
        if (got !== 'closed') this.stats.mismatches.push(`${it.label} (${it.outcome.kind}, ${it.topic}): ${got}`);
        else this.stats.closes++;
        c.end(true);
        continue;
      }
      await this.slot();
      void this.deliver(it.topic, it.payload, `${it.label} (${it.outcome.kind})`).then(() => this.release());
    }
    await this.drained();
    await this.client?.endAsync();
  }
}

describe('10,000 fuzzed payloads', () => {
  let influx: InfluxdHandle;
  let ingest: IngestProcess;
  beforeAll(async () => {
    influx = await startInfluxd({ database: 'fuzz' });
    ingest = await startIngestProcess({ INFLUX_URL: influx.url, INFLUX_BUCKET: 'fuzz' });
  });
  afterAll(async () => {
    await ingest?.stop('SIGKILL');
    await influx?.stop();
  });

  it('never crashes, dead-letters exactly what it must, loses none of the valid batches in between', async () => {
    console.log(`fuzz seed ${SEED} (ODOPULSE_FUZZ_SEED=${SEED} repeats this run), ${COUNT} payloads`);
    const pid = ingest.proc.pid;
    const corpus = fuzzCorpus({ seed: SEED, count: COUNT, vins: FUZZ_VINS, others: LOAD_VINS, now: Date.now(), limits: LIMITS });
    const items = corpus.flat();
    expect(disagreements, 'the wire fast path and protobufjs + zod decode these differently').toEqual([]);

    // what ingest must do, from the classification
    const deadBy = new Map<string, number>();
    const expectRows = new Map<string, number>(); // `${reason} ${sha1(payload)}` -> how many
    const add = <K>(m: Map<K, number>, k: K) => m.set(k, (m.get(k) ?? 0) + 1);
    let denied = 0;
    let oversizePackets = 0;
    let acceptedGood = 0;
    let acceptedNone = 0;
    let deadPayloads = 0;
    let goodSamples = 0;
    for (const it of items) {
      const o = it.outcome;
      if (o.kind === 'denied') denied++;
      else if (o.kind === 'oversize-packet') oversizePackets++;
      else if (o.kind === 'dead') {
        deadPayloads++;
        add(deadBy, o.reason);
        add(expectRows, `${o.reason} ${sha(it.payload)}`);
      } else {
        for (const [reason, samples] of o.bad) {
          add(deadBy, reason);
          add(expectRows, `${reason} ${sha(encodeTelemetryBatch({ ...o.batch, samples, dropped: 0 }))}`);
        }
        if (o.good > 0) acceptedGood++;
        else acceptedNone++;
        goodSamples += o.good;
      }
    }

    const ledger = new Ledger();
    const load = new FleetLoad({ url: () => ingest.mqttUrl, vins: LOAD_VINS, ledger, ratePerVehicle: 10 }).start();
    const pubs = FUZZ_VINS.map((vin) => new FuzzPublisher(ingest.mqttUrl, vin, ledger));
    const t0 = Date.now();
    await Promise.all(pubs.map((p, i) => p.run(corpus[i])));
    const fuzzMs = Date.now() - t0;
    await load.stop();
    const stats = pubs.reduce(
      (s, p) => ({
        closes: s.closes + p.stats.closes,
        fuzzResent: s.fuzzResent + p.stats.fuzzResent,
        resent: s.resent + p.stats.resent,
        mismatches: [...s.mismatches, ...p.stats.mismatches],
      }),
      { closes: 0, fuzzResent: 0, resent: 0, mismatches: [] as string[] },
    );

    // the same process, alive and healthy
    expect(ingest.proc.exitCode, ingest.output().slice(-3000)).toBeNull();
    expect(ingest.proc.pid).toBe(pid);
    const health = await fetch(`${ingest.api}/healthz`);
    expect(health.status, await health.clone().text()).toBe(200);
    expect(((await health.json()) as { ok: boolean }).ok).toBe(true);

    // every refusal that closes the connection did, and nothing else closed one (a fuzzed payload
    // re-sent would make its fate uncertain)
    expect(stats.mismatches).toEqual([]);
    expect(stats.closes).toBe(denied + oversizePackets);
    expect(stats.fuzzResent).toBe(0);
    expect(await metric(ingest, 'odopulse_mqtt_denied_total')).toBe(denied + oversizePackets);

    // dead letters: the metric by reason, and the rows payload by payload
    const reasons = ['oversized', 'malformed', 'invalid', 'error', 'future_timestamp', 'too_old', 'influx_refused'];
    const got: Record<string, number> = {};
    for (const r of reasons) got[r] = await metric(ingest, `odopulse_dead_letters_total{reason="${r}"}`);
    const want = Object.fromEntries(reasons.map((r) => [r, deadBy.get(r) ?? 0]));
    expect(got).toEqual(want);
    const db = new Database(join(ingest.dataDir, 'odopulse.db'), { readonly: true });
    const rows = new Map<string, number>();
    try {
      for (const row of db.prepare('SELECT reason, payload FROM dead_letters').iterate() as Iterable<{ reason: string; payload: Buffer }>) {
        const reason = /^telemetry: (\w+):/.exec(row.reason)?.[1] ?? /^(future_timestamp|too_old):/.exec(row.reason)?.[1] ?? row.reason;
        add(rows, `${reason} ${sha(row.payload)}`);
      }
    } finally {
      db.close();
    }
    const diff = [...new Set([...rows.keys(), ...expectRows.keys()])].filter((k) => rows.get(k) !== expectRows.get(k));
    expect(
      diff.map((k) => {
        const it = items.find((x) => k.endsWith(sha(x.payload)));
        return `${k}: stored ${rows.get(k) ?? 0}, expected ${expectRows.get(k) ?? 0}${it ? ` (${it.label})` : ''}`;
      }),
    ).toEqual([]);

    // journalled: each acknowledged ledger batch once, each accepted fuzz batch once
    expect(await metric(ingest, 'odopulse_telemetry_batches_total{result="new"}')).toBe(ledger.acked.size + acceptedGood);
    expect(await metric(ingest, 'odopulse_telemetry_batches_total{result="dead_letter"}')).toBe(deadPayloads + acceptedNone);
    const expectSamples = ledger.acked.size * SAMPLES_PER_BATCH + goodSamples;
    expect(await metric(ingest, 'odopulse_readings_total')).toBe(expectSamples);

    // and in InfluxDB: every ledger batch, and every sample journalled
    const tDrain = Date.now();
    const stored = await waitFor(
      async () => {
        const s = await ledger.stored(influx.url, 'fuzz');
        const points = await metric(ingest, 'odopulse_influx_points_total');
        return ledger.lost(s).length === 0 && points >= expectSamples ? s : undefined;
      },
      { what: 'every acknowledged ledger batch and every journalled sample in InfluxDB', timeoutMs: 120_000, intervalMs: 500 },
    );
    const lost = ledger.lost(stored);
    expect(lost, sample(lost)).toEqual([]);
    expect(await metric(ingest, 'odopulse_influx_points_total')).toBe(expectSamples);
    expect(ingest.proc.exitCode).toBeNull();

    const dl = Object.entries(got)
      .filter(([, n]) => n > 0)
      .map(([r, n]) => `${r} ${n}`)
      .join(', ');
    recordFault({
      fault: `${items.length.toLocaleString('en')} fuzzed payloads`,
      load: `${FUZZ_VINS.length} fuzz connections (${WINDOW} in flight, a valid batch every ${LEDGER_EVERY}) + ${LOAD_VINS.length} vehicles, QoS 1, 8 in flight`,
      produced: ledger.acked.size * SAMPLES_PER_BATCH,
      stored: stored.size * SAMPLES_PER_BATCH,
      lost: lost.length * SAMPLES_PER_BATCH,
      promptsDuplicated: 0,
      notes:
        `seed ${SEED}; dead letters: ${dl}; accepted as valid: ${acceptedGood + acceptedNone} fuzzed batches (${goodSamples} samples); ` +
        `ACL denials ${denied}, packets over ${MAX_PACKET} B ${oversizePackets} (each closed the connection, no PUBACK); ` +
        `disconnects ${stats.closes}, valid batches re-sent ${stats.resent}; ingest pid unchanged, /healthz ok; fuzz ${(fuzzMs / 1000).toFixed(1)} s, InfluxDB caught up ${((Date.now() - tDrain) / 1000).toFixed(1)} s later`,
    });
  });
});
