// Start the built `odopulse ingest` as a real child process on free ports and a temp data dir
// (integration tests and the end-to-end benchmark).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../proto/paths.js';
import { INGEST_NODE_FLAGS } from '../ingest/node-flags.js';
import { freePort } from '../tools/free-port.js';
import { keysCreate } from '../tools/keys.js';

export interface IngestProcess {
  httpPort: number;
  mqttPort: number;
  api: string;
  mqttUrl: string;
  dataDir: string;
  /** An operator key (with location:read) made in the data dir before the start. */
  token: string;
  /** `{ authorization: 'Bearer <token>' }` for fetch. */
  auth: { authorization: string };
  env: Record<string, string>;
  proc: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export const BIN = join(PACKAGE_ROOT, 'bin', 'odopulse.js');

export async function startIngestProcess(
  env: Record<string, string>,
  reuse?: { dataDir: string; httpPort: number; mqttPort: number; token?: string },
  /**
   * When to return: `ok` (default) once /healthz says everything is up, InfluxDB connected too;
   * `serving` as soon as it answers 200 (degraded included: serving without InfluxDB).
   */
  opts: { ready?: 'ok' | 'serving'; cpuProfDir?: string } = {},
): Promise<IngestProcess> {
  const dataDir = reuse?.dataDir ?? mkdtempSync(join(tmpdir(), 'odopulse-ingest-'));
  const token =
    reuse?.token ??
    (
      await keysCreate(
        { dataDir, databaseUrl: env.ODOPULSE_DATABASE_URL }, // cluster mode: the keys are in PostgreSQL
        { role: 'operator', name: 'test operator', permission: ['location:read'] },
      )
    ).at(-1)!;
  const httpPort = reuse?.httpPort ?? (await freePort());
  const mqttPort = reuse?.mqttPort ?? (await freePort());
  const fullEnv: Record<string, string> = {
    ODOPULSE_DATA_DIR: dataDir,
    ODOPULSE_HTTP_PORT: String(httpPort),
    ODOPULSE_HTTP_HOST: '127.0.0.1',
    ODOPULSE_MQTT_PORT: String(mqttPort),
    ODOPULSE_MQTT_HOST: '127.0.0.1',
    ODOPULSE_WORKERS: '2',
    ODOPULSE_LOG_LEVEL: 'warn',
    ...env,
  };
  // opts.cpuProfDir or ODOPULSE_BENCH_CPU_PROF=<dir>: a V8 CPU profile of every thread (main and rules
  // workers), written when the process exits (bench/README.md#profiles)
  const prof = opts.cpuProfDir ?? process.env.ODOPULSE_BENCH_CPU_PROF;
  const flags = prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : [];
  const proc = spawn(process.execPath, [...INGEST_NODE_FLAGS, ...flags, BIN, 'ingest'], {
    env: { ...process.env, ...fullEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const api = `http://127.0.0.1:${httpPort}`;
  const deadline = Date.now() + 45_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`ingest exited with ${proc.exitCode}:\n${out}`);
    try {
      const r = await fetch(`${api}/healthz`);
      const status = r.ok ? ((await r.json()) as { status?: string }).status : undefined;
      if (r.ok && (opts.ready === 'serving' || status === 'ok')) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`ingest did not become healthy:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    httpPort,
    mqttPort,
    api,
    mqttUrl: `mqtt://127.0.0.1:${mqttPort}`,
    dataDir,
    token,
    auth: { authorization: `Bearer ${token}` },
    env: fullEnv,
    proc,
    output: () => out,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode !== null) return proc.exitCode;
      proc.kill(signal);
      return exited;
    },
  };
}
