// Starts a local influxd 1.x (Debian's 1.6.7) on loopback: throw-away in a temp dir for tests and
// benches (stop() removes it), or on a kept data dir for the one-machine demo.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mkdir } from 'node:fs/promises';
import { freePort } from './free-port.js';
import type { InfluxQLResponse } from '../ingest/store/influx/store.js';

export const INFLUXD_BIN = process.env.INFLUXD_BIN ?? '/usr/bin/influxd';

export interface InfluxdHandle {
  url: string;
  database: string;
  /** Kill the server and remove its directory (unless it was given one to keep). */
  stop(): Promise<void>;
  /** Kill the server but keep its data (to simulate an outage). */
  pause(): Promise<void>;
  /** Start it again on the same port and data after pause(). */
  resume(): Promise<void>;
}

/** The influxd.conf of a launcher-started influxd (also used by the fault suite's own launcher). */
export function influxdConfig(dir: string, httpPort: number, rpcPort: number): string {
  // Only what differs from the defaults: everything in the temp dir, loopback only, quiet, no
  // _internal monitor database (it would add writes and skew counts).
  return `reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${join(dir, 'meta')}"
  logging-enabled = false
[data]
  dir = "${join(dir, 'data')}"
  wal-dir = "${join(dir, 'wal')}"
  query-log-enabled = false
  trace-logging-enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:${httpPort}"
  log-enabled = false
  suppress-write-log = true
  pprof-enabled = false
[logging]
  level = "warn"
  suppress-logo = true
[continuous_queries]
  enabled = false
  log-enabled = false
`;
}

async function waitForPing(url: string, proc: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`influxd exited (${proc.exitCode ?? proc.signalCode}) before answering /ping: ${stderr()}`);
    }
    try {
      const res = await fetch(`${url}/ping`);
      if (res.status === 204) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`influxd did not answer /ping within 30 s: ${stderr()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function killAndWait(proc: ChildProcess | undefined): Promise<void> {
  if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Run one InfluxQL statement (POST, so writes like CREATE/DROP are allowed). */
export async function influxQuery(url: string, db: string, q: string): Promise<InfluxQLResponse> {
  const body = new URLSearchParams({ q, db, epoch: 'ms' });
  const res = await fetch(`${url}/query`, { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const json = (await res.json()) as InfluxQLResponse;
  if (!res.ok || json.error) throw new Error(`influx query failed (${res.status}): ${json.error ?? JSON.stringify(json)}`);
  const stmtErr = (json.results ?? []).find((r) => r.error);
  if (stmtErr) throw new Error(`influx statement failed: ${stmtErr.error}`);
  return json;
}

export async function startLocalInfluxd(opts: { database?: string; dataDir?: string } = {}): Promise<InfluxdHandle> {
  const keep = opts.dataDir !== undefined;
  const dir = keep ? opts.dataDir! : await mkdtemp(join(tmpdir(), 'odopulse-influxd-'));
  if (keep) await mkdir(dir, { recursive: true });
  const httpPort = await freePort();
  const rpcPort = await freePort();
  const cfgPath = join(dir, 'influxd.conf');
  await writeFile(cfgPath, influxdConfig(dir, httpPort, rpcPort));
  const url = `http://127.0.0.1:${httpPort}`;
  const database = opts.database ?? 'odopulse_test';
  let proc: ChildProcess | undefined;
  let errText = '';

  const launch = async (): Promise<void> => {
    errText = '';
    const p = spawn(INFLUXD_BIN, ['-config', cfgPath], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc = p;
    p.stderr?.on('data', (d: Buffer) => {
      errText = (errText + d.toString()).slice(-4000);
    });
    try {
      await waitForPing(url, p, () => errText);
    } catch (err) {
      await killAndWait(p);
      throw err;
    }
  };

  try {
    await launch();
    await influxQuery(url, database, `CREATE DATABASE "${database.replace(/["\\]/g, '\\$&')}"`);
  } catch (err) {
    if (!keep) await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    url,
    database,
    async stop() {
      await killAndWait(proc);
      if (!keep) await rm(dir, { recursive: true, force: true });
    },
    async pause() {
      await killAndWait(proc);
    },
    async resume() {
      await launch();
    },
  };
}
