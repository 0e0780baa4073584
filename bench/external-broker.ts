// QoS 1 throughput through an external Mosquitto into ingest (ODOPULSE_MQTT_URL), counted at the
// journal (odopulse_telemetry_batches_total{result="new"}): not part of `odopulse bench`, run it as
// `npm run build && node dist/bench/external-broker.js [--vehicles 20] [--batches 4000] [--backlog 20000] [--samples 10]`.
// Mosquitto (/usr/sbin/mosquitto) gets the persistence and queue settings of
// deploy/mosquitto/mosquitto.conf on a temp dir, anonymous on a free loopback port.
//   live:     ingest running, the vehicles publish (8 QoS 1 in flight each): end-to-end readings/s
//   backlog:  ingest down while the vehicles publish, then started: how fast it drains the session
//   ceiling:  the same backlog drained by a bare MQTT.js client that acknowledges at once (no journal)
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { Database } from '../ingest/store/sqlite/driver.js';
import { PACKAGE_ROOT } from '../proto/paths.js';
import { freePort } from '../tools/free-port.js';
import { startLocalInfluxd } from '../tools/influxd-local.js';
import { startIngestProcess, type IngestProcess } from './ingest-process.js';
import { benchVin, closeAll, connectVehicles, publishLoad } from './load.js';
import { machine, round } from './stats.js';

const SHIPPED = join(PACKAGE_ROOT, 'deploy', 'mosquitto', 'mosquitto.conf');
const KEPT =
  /^(persistence|autosave_interval|autosave_on_changes|max_queued_messages|max_queued_bytes|max_inflight_messages|max_packet_size)\s/;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Broker {
  url: string;
  stop(): Promise<void>;
}

async function startBroker(): Promise<Broker> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-mosquitto-'));
  const port = await freePort();
  const shipped = readFileSync(SHIPPED, 'utf8')
    .split('\n')
    .filter((l) => KEPT.test(l));
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(
    conf,
    [
      'user root',
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      ...shipped,
      `persistence_location ${dir}/`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      '',
    ].join('\n'),
  );
  const fd = openSync(join(dir, 'mosquitto.log'), 'a');
  const proc: ChildProcess = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: ['ignore', fd, fd] });
  closeSync(fd);
  for (let i = 0; ; i++) {
    if (proc.exitCode !== null) throw new Error(`mosquitto exited: ${readFileSync(join(dir, 'mosquitto.log'), 'utf8')}`);
    const up = await new Promise<boolean>((resolve) => {
      const s = tcpConnect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (up) break;
    if (i > 200) throw new Error('mosquitto did not listen');
    await sleep(50);
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function journalled(ingest: IngestProcess): Promise<number> {
  const r = await fetch(`${ingest.api}/metrics`, { headers: ingest.auth });
  const series = 'odopulse_telemetry_batches_total{result="new"} ';
  for (const line of (await r.text()).split('\n')) if (line.startsWith(series)) return Number(line.slice(series.length));
  return 0;
}

/** Poll `count` until it reaches `total`: the rate (per second) between the first reading at or past 10 % and the first at or past 90 %. */
async function drainRate(count: () => Promise<number>, total: number, timeoutMs = 600_000): Promise<number> {
  const start = performance.now();
  let from: [number, number] | undefined;
  let to: [number, number] | undefined;
  for (;;) {
    const n = await count();
    const now = performance.now();
    if (!from && n >= total * 0.1) from = [n, now];
    if (!to && n >= total * 0.9) to = [n, now];
    if (n >= total) break;
    if (now - start > timeoutMs) throw new Error(`only ${n} of ${total} after ${timeoutMs} ms`);
    await sleep(20);
  }
  if (!from || !to || to[1] === from[1]) throw new Error('drained between two readings: make the backlog larger');
  return ((to[0] - from[0]) / (to[1] - from[1])) * 1000;
}

async function benchExternalBroker(o: { vehicles: number; batches: number; backlog: number; samples: number }) {
  const influx = await startLocalInfluxd({ database: 'extbench' });
  const broker = await startBroker();
  const env = {
    INFLUX_URL: influx.url,
    INFLUX_BUCKET: 'extbench',
    ODOPULSE_MQTT_URL: broker.url,
    ODOPULSE_CLOCK: 'event',
    ODOPULSE_SWEEP_MS: '3600000',
    ODOPULSE_LOG_LEVEL: 'error',
    ODOPULSE_MAX_CLOCK_SKEW_S: '315360000',
  };
  let ingest: IngestProcess | undefined;
  const result: Record<string, unknown> = { machine: machine(), settings: o };
  try {
    ingest = await startIngestProcess(env);
    const vins = Array.from({ length: o.vehicles }, (_, i) => benchVin(i, 'LEXTB'));
    const clients = await connectVehicles(broker.url, vins);

    // live: warm up first (a cold process spends its first seconds compiling), then measure
    const warm = Math.min(1000, o.batches);
    await publishLoad({ clients, vins, batches: warm, samplesPerBatch: o.samples, seqStart: 1_000_000 });
    while ((await journalled(ingest)) < warm) await sleep(20);
    const base = await journalled(ingest);
    const t0 = performance.now();
    const pub = await publishLoad({ clients, vins, batches: o.batches, samplesPerBatch: o.samples, inflight: 8 });
    while ((await journalled(ingest)) - base < o.batches) await sleep(10);
    const liveS = (performance.now() - t0) / 1000;
    result.live = {
      batchesPerSec: round(o.batches / liveS),
      readingsPerSec: round((o.batches * o.samples) / liveS),
      publishedMs: round(pub.elapsedMs),
      errors: pub.errors,
    };

    // backlog: ingest down (its session stays at the broker), the vehicles publish, ingest starts
    const reuse = { dataDir: ingest.dataDir, httpPort: ingest.httpPort, mqttPort: ingest.mqttPort, token: ingest.token };
    await ingest.stop();
    const queued = await publishLoad({ clients, vins, batches: o.backlog, samplesPerBatch: o.samples, inflight: 32, seqStart: 2_000_000 });
    // counted in journal.db itself: ingest drains the session before its HTTP API (and /metrics) is up
    const journal = new Database(join(reuse.dataDir, 'journal.db'), { readonly: true });
    const entries = () => (journal.prepare('SELECT count(*) AS n FROM entries').get() as { n: number }).n;
    const base2 = entries();
    const drainedP = drainRate(async () => entries() - base2, o.backlog);
    ingest = await startIngestProcess(env, reuse);
    const drained = await drainedP;
    journal.close();
    result.backlog = {
      batches: o.backlog,
      batchesPerSec: round(drained),
      readingsPerSec: round(drained * o.samples),
      queuedInMs: round(queued.elapsedMs),
    };
    await ingest.stop();
    ingest = undefined;

    // ceiling: a bare client with a persistent session, acknowledging every message at once
    const sinkOpts = {
      clientId: 'bench-sink',
      clean: false,
      protocolVersion: 5 as const,
      properties: { sessionExpiryInterval: 3600, receiveMaximum: 1000 },
    };
    const sink = await mqtt.connectAsync(broker.url, sinkOpts);
    await sink.subscribeAsync('v1/vehicles/+/telemetry', { qos: 1 });
    await sink.endAsync();
    await publishLoad({ clients, vins, batches: o.backlog, samplesPerBatch: o.samples, inflight: 32, seqStart: 3_000_000 });
    let got = 0;
    const drain = mqtt.connect(broker.url, { ...sinkOpts, manualConnect: true });
    drain.on('message', () => got++);
    drain.connect();
    const ceiling = await drainRate(async () => got, o.backlog);
    await drain.endAsync();
    result.ceiling = { batches: o.backlog, batchesPerSec: round(ceiling), readingsPerSec: round(ceiling * o.samples) };
    await closeAll(clients);
  } finally {
    await ingest?.stop();
    await broker.stop();
    await influx.stop();
  }
  return result;
}

const { values } = parseArgs({
  options: {
    vehicles: { type: 'string', default: '20' },
    batches: { type: 'string', default: '4000' },
    backlog: { type: 'string', default: '20000' },
    samples: { type: 'string', default: '10' },
  },
});
const out = await benchExternalBroker({
  vehicles: Number(values.vehicles),
  batches: Number(values.batches),
  backlog: Number(values.backlog),
  samples: Number(values.samples),
});
process.stdout.write(JSON.stringify(out, null, 2) + '\n');
