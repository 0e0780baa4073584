// Agent benchmark: (1) the agent process's RSS and CPU share while it samples every signal at
// 1 Hz from the simulated vehicle and publishes to a local broker (targets: RSS < 60 MB,
// < 2 % of one core); (2) spool write throughput (records/s, MB/s) with and without group commit.
// Needs the build (dist/), like every bench: `npm run bench` builds first.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { DEFAULT_POLICY } from '../agent/policy.js';
import { Spool } from '../agent/spool.js';
import { encodeAgentConfig } from '../proto/codec.js';
import type { Sample } from '../proto/domain.js';
import { distModule } from '../proto/paths.js';
import { SIGNAL_PATHS } from '../proto/signals.js';

export interface BenchAgentOptions {
  quick?: boolean;
  /** Measured seconds of the 1 Hz run (default 20; quick: 6). */
  durationS?: number;
  /** Spool records to write (default 20,000; quick: 3,000). */
  spoolRecords?: number;
}

const VIN = 'LSVAU2180N2BENCH1';
const TARGET_RSS_MB = 60;
const TARGET_CPU_PCT = 2;

const CHILD = `
const { runAgent } = await import(process.argv[2]);
const ac = new AbortController();
process.on('message', (m) => {
  if (m === 'stop') ac.abort();
  else process.send({ rss: process.memoryUsage().rss, cpu: process.cpuUsage() });
});
process.exitCode = await runAgent(JSON.parse(process.argv[3]), ac.signal, { log: () => {} });
process.disconnect?.();
`;

interface Probe {
  rss: number;
  cpu: { user: number; system: number };
}

async function startBroker(): Promise<{ url: string; published: () => number; stop(): Promise<void> }> {
  const broker = await Aedes.createBroker();
  let count = 0;
  broker.on('publish', (p) => {
    if (p.topic.endsWith('/telemetry')) count++;
  });
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    published: () => count,
    async stop() {
      server.close();
      await new Promise<void>((r) => broker.close(() => r()));
    },
  };
}

/** Node flags for a memory-lean agent on a head unit: no optimising JIT (the agent is idle-bound), small young generation. */
export const LEAN_NODE_FLAGS = ['--lite-mode', '--max-semi-space-size=1', '--v8-pool-size=1'];

async function measureAgentProcess(durationS: number, execArgv: string[]): Promise<Record<string, unknown>> {
  const broker = await startBroker();
  const dir = mkdtempSync(join(tmpdir(), 'bench-agent-'));
  let child: ReturnType<typeof fork> | undefined;
  try {
    // 1 Hz for every signal, location on: the cloud sets this policy on the retained config topic.
    const policy = {
      ...DEFAULT_POLICY,
      version: 1,
      locationEnabled: true,
      batchMaxSamples: 10,
      batchMaxDelayMs: 10_000,
      signals: SIGNAL_PATHS.map((path) => ({ path, periodMs: 1000, deadband: 0 })),
    };
    const cloud = await mqtt.connectAsync(broker.url, { clientId: 'bench-cloud' });
    await cloud.publishAsync(`v1/vehicles/${VIN}/config`, Buffer.from(encodeAgentConfig(policy)), { qos: 1, retain: true });
    await cloud.endAsync();
    const script = join(dir, 'child.mjs');
    writeFileSync(script, CHILD);
    const opts = { vin: VIN, broker: broker.url, simulate: true, simStepMs: 1000, speed: 1, spoolDir: join(dir, 'spool') };
    const proc = fork(script, [distModule('agent/main.js'), JSON.stringify(opts)], {
      execArgv,
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    child = proc;
    let waiting: { resolve: (p: Probe) => void; reject: (e: Error) => void } | undefined;
    proc.on('message', (m) => waiting?.resolve(m as Probe));
    proc.on('exit', (code) => waiting?.reject(new Error(`agent process exited (${code})`)));
    proc.on('error', (err) => waiting?.reject(err)); // e.g. IPC closed: the agent died (out of memory)
    const probe = () =>
      new Promise<Probe>((resolve, reject) => {
        waiting = { resolve, reject };
        if (proc.connected) proc.send('probe');
        else reject(new Error(`agent process is gone (exit ${proc.exitCode})`));
      });
    await new Promise((r) => setTimeout(r, 3000)); // start-up (module loading, connect) is not steady state
    const first = await probe();
    const t0 = process.hrtime.bigint();
    const pub0 = broker.published();
    let peakRss = first.rss;
    for (let i = 0; i < durationS; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      peakRss = Math.max(peakRss, (await probe()).rss);
    }
    const last = await probe();
    peakRss = Math.max(peakRss, last.rss);
    const wallUs = Number(process.hrtime.bigint() - t0) / 1000;
    const cpuUs = last.cpu.user + last.cpu.system - first.cpu.user - first.cpu.system;
    const exited = new Promise((r) => proc.once('exit', r));
    waiting = undefined;
    if (proc.connected) proc.send('stop');
    else proc.kill();
    await exited;
    const cpuPct = (100 * cpuUs) / wallUs;
    const rssMb = peakRss / 1024 / 1024;
    return {
      nodeFlags: execArgv.join(' ') || '(none)',
      durationS,
      sampleHz: 1,
      signals: SIGNAL_PATHS.length,
      batchesPublished: broker.published() - pub0,
      // the figure compared with the target: the highest RSS seen from 3 s after start to the end
      rssMb: Number(rssMb.toFixed(1)),
      // at the last probe, for reference (V8 shrinks the young generation some seconds after start)
      rssMbAtEnd: Number((last.rss / 1024 / 1024).toFixed(1)),
      cpuPctOfOneCore: Number(cpuPct.toFixed(2)),
      targets: { rssMb: TARGET_RSS_MB, cpuPct: TARGET_CPU_PCT },
      meetsTargets: rssMb < TARGET_RSS_MB && cpuPct < TARGET_CPU_PCT,
    };
  } finally {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await broker.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function benchSample(i: number): Sample {
  return {
    ts: 1_772_352_000_000 + i * 1000,
    signals: Object.fromEntries(
      SIGNAL_PATHS.filter((p) => !p.includes('Charging.') && !p.includes('LowVoltageSystemState')).map((p) => [p, (i % 50) + 1]),
    ),
  };
}

async function measureSpool(records: number): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-spool-'));
  const samples = Array.from({ length: 10 }, (_, i) => benchSample(i));
  const bytesPer = Buffer.byteLength(JSON.stringify({ seq: 1, bootId: 'b'.repeat(36), at: Date.now(), dropped: 0, samples })) + 8;
  try {
    const run = async (concurrency: number, n: number) => {
      const spool = await Spool.open({ dir: join(dir, `c${concurrency}`), maxBytes: 1024 * 1024 * 1024 });
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < n; i += concurrency) {
        await Promise.all(Array.from({ length: Math.min(concurrency, n - i) }, () => spool.append('b'.repeat(36), samples)));
      }
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      await spool.close();
      return { records: n, recordsPerS: Math.round(n / s), mbPerS: Number(((n * bytesPer) / s / 1024 / 1024).toFixed(2)) };
    };
    return {
      recordBytes: bytesPer,
      samplesPerRecord: samples.length,
      oneAtATime: await run(1, Math.max(200, Math.floor(records / 10))),
      groupCommit32: await run(32, records),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchAgent(opts: BenchAgentOptions = {}): Promise<object> {
  const durationS = opts.durationS ?? (opts.quick ? 6 : 20);
  const spoolRecords = opts.spoolRecords ?? (opts.quick ? 3000 : 20_000);
  return {
    process: await measureAgentProcess(durationS, []),
    processLean: await measureAgentProcess(durationS, LEAN_NODE_FLAGS),
    spool: await measureSpool(spoolRecords),
  };
}
