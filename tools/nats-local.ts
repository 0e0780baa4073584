// Start a real nats-server (Debian's /usr/sbin/nats-server, 2.9.10 in CI) with JetStream on a temp
// dir and free loopback ports: one node, or a cluster of `nodes` with routes to each other. Each
// node has its own store dir under one temp dir and a monitoring port (/healthz, /jsz). Resolves
// once every node's /healthz says ok: JetStream has a meta leader, the node is current with it, and
// every stream it holds a replica of is current. kill(i) (SIGKILL), stop(i) (SIGTERM) and start(i)
// (same store dir, same ports) are for failover tests; start(i) resolves once the node has caught up.
// Used by the integration tests (test/support/nats.ts re-exports it) and `odopulse bench cluster`.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';

/** Debian installs it in /usr/sbin; NATS_SERVER_BIN overrides, else the first found, else PATH. */
export const NATS_SERVER =
  process.env.NATS_SERVER_BIN ??
  ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'].find((p) => existsSync(p)) ??
  'nats-server';

export interface NatsClusterOptions {
  /** 1 = a single server (no cluster block); 3 for a JetStream cluster with replicas 3. */
  nodes?: number;
  /** How long start-up (and each start(i)) may take before it fails (default 30 s). */
  readyTimeoutMs?: number;
}

export interface NatsNode {
  name: string;
  url: string;
  port: number;
  clusterPort: number;
  monitorPort: number;
  storeDir: string;
}

export interface NatsCluster {
  /** Client URLs, nats://127.0.0.1:port, one per node (also of nodes that are down). */
  urls: string[];
  nodes: NatsNode[];
  dir: string;
  /** SIGKILL node i; resolves once the process is gone. */
  kill(i: number): Promise<void>;
  /** SIGTERM node i (nats-server shuts down cleanly); resolves once the process is gone. */
  stop(i: number): Promise<void>;
  /** Start node i again (same store dir and ports); resolves once its /healthz is ok (caught up). */
  start(i: number): Promise<void>;
  /** Whether node i's process is running. */
  running(i: number): boolean;
  /** Node i's /healthz answer ({ status: 'ok' } when healthy). */
  healthz(i: number): Promise<{ status: string; error?: string }>;
  /** Node i's /jsz. */
  jsz(i: number): Promise<Jsz>;
  /** Until every running node's /healthz is ok. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** Node i's log so far (diagnostics). */
  log(i: number): string;
  /** Node i's process id while it runs (CPU accounting in the benchmarks), else undefined. */
  pid(i: number): number | undefined;
  /** Stop every node and remove the temp dir. */
  close(): Promise<void>;
}

/** The parts of /jsz the tests read. */
export interface Jsz {
  server_id: string;
  streams: number;
  messages: number;
  meta_cluster?: { name?: string; leader?: string; cluster_size?: number; replicas?: { name: string; current: boolean }[] };
}

/** Poll `ready` until it resolves true; a throw counts as not yet (its message is kept for the timeout), unless marked fatal. */
async function waitUntil(ready: () => Promise<boolean>, o: { timeoutMs: number; intervalMs: number; what: string }): Promise<void> {
  const deadline = Date.now() + o.timeoutMs;
  let last = 'no attempt finished';
  for (;;) {
    try {
      if (await ready()) return;
      last = 'not yet';
    } catch (err) {
      if ((err as { fatal?: boolean }).fatal) throw err;
      last = (err as Error).message;
    }
    if (Date.now() >= deadline) throw new Error(`timed out after ${o.timeoutMs} ms waiting for ${o.what}; last: ${last}`);
    await new Promise((r) => setTimeout(r, o.intervalMs));
  }
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  // /healthz answers 503 with a JSON body while unhealthy
  return (await res.json()) as T;
}

export async function startNatsCluster(opts: NatsClusterOptions = {}): Promise<NatsCluster> {
  const n = opts.nodes ?? 3;
  if (!Number.isInteger(n) || n < 1) throw new Error(`startNatsCluster: nodes must be a positive integer, got ${n}`);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const dir = mkdtempSync(join(tmpdir(), 'odopulse-nats-'));
  const nodes: NatsNode[] = [];
  for (let i = 0; i < n; i++) {
    const storeDir = join(dir, `n${i}`);
    nodes.push({ name: `n${i}`, url: '', port: 0, clusterPort: 0, monitorPort: 0, storeDir });
  }
  const confOf = (i: number) => join(dir, `n${i}.conf`);
  const logOf = (i: number) => join(dir, `n${i}.log`);
  // Fresh ports, empty store dirs and logs, and the config files (again on a retry).
  const configure = async () => {
    for (const node of nodes) {
      node.port = await freePort();
      node.url = `nats://127.0.0.1:${node.port}`;
      node.clusterPort = await freePort();
      node.monitorPort = await freePort();
      rmSync(node.storeDir, { recursive: true, force: true });
      mkdirSync(node.storeDir);
    }
    for (const [i, node] of nodes.entries()) {
      rmSync(logOf(i), { force: true });
      const lines = [
        `server_name: "${node.name}"`,
        `listen: "127.0.0.1:${node.port}"`,
        `http: "127.0.0.1:${node.monitorPort}"`,
        'jetstream {',
        `  store_dir: "${node.storeDir}"`,
        '  max_memory_store: 256MB',
        '  max_file_store: 4GB',
        '}',
      ];
      if (n > 1) {
        const routes = nodes.filter((_, j) => j !== i).map((o) => `"nats-route://127.0.0.1:${o.clusterPort}"`);
        lines.push(
          'cluster {',
          '  name: "odopulse-test"',
          `  listen: "127.0.0.1:${node.clusterPort}"`,
          `  routes: [${routes.join(', ')}]`,
          '}',
        );
      }
      writeFileSync(confOf(i), lines.join('\n') + '\n');
    }
  };

  const procs: (ChildProcess | undefined)[] = new Array(n).fill(undefined);
  const alive = (p: ChildProcess | undefined): boolean => !!p && p.exitCode === null && p.signalCode === null;
  const log = (i: number) => {
    try {
      return readFileSync(logOf(i), 'utf8');
    } catch {
      return '';
    }
  };
  const spawnNode = (i: number) => {
    if (alive(procs[i])) throw new Error(`nats node ${i} is already running`);
    const fd = openSync(logOf(i), 'a');
    try {
      procs[i] = spawn(NATS_SERVER, ['-c', confOf(i)], { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
  };
  const healthz = (i: number) => getJson<{ status: string; error?: string }>(`http://127.0.0.1:${nodes[i].monitorPort}/healthz`);
  const jsz = (i: number) => getJson<Jsz>(`http://127.0.0.1:${nodes[i].monitorPort}/jsz`);
  const healthy = async (i: number, failIfExited: boolean) => {
    const p = procs[i];
    if (!alive(p)) {
      const e = new Error(`nats node ${i} is not running (${p?.exitCode ?? p?.signalCode ?? 'not started'}):\n${log(i).slice(-2000)}`);
      // a node that exited while starting will not become healthy: no need to wait out the timeout
      if (failIfExited && p) throw Object.assign(e, { fatal: true });
      throw e;
    }
    const h = await healthz(i);
    if (h.status !== 'ok') return false;
    if (n === 1) return true;
    const j = await jsz(i);
    return !!j.meta_cluster?.leader;
  };
  const waitNodes = async (which: number[], timeoutMs: number, o: { failIfExited?: boolean } = {}) => {
    await waitUntil(async () => (await Promise.all(which.map((i) => healthy(i, o.failIfExited ?? false)))).every(Boolean), {
      timeoutMs,
      intervalMs: 100,
      what: `nats node(s) ${which.join(', ')} healthy (/healthz ok, a meta leader)`,
    });
  };
  const stopProc = async (i: number, sig: NodeJS.Signals) => {
    const p = procs[i];
    procs[i] = undefined;
    if (!p || !alive(p)) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(sig);
    await exited;
  };

  const cleanup = () => {
    for (const p of procs) if (alive(p)) p!.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', cleanup);
  // A free port can be taken by another process between freePort() and nats-server's bind (tests
  // run in parallel): such a start is tried again on new ports, like tools/postgres-local.ts does.
  for (let attempt = 1; ; attempt++) {
    try {
      await configure();
      for (let i = 0; i < n; i++) spawnNode(i);
      await waitNodes([...nodes.keys()], readyTimeoutMs, { failIfExited: true });
      break;
    } catch (err) {
      const logs = nodes.map((_, i) => `--- n${i}\n${log(i).slice(-1500)}`).join('\n');
      await Promise.all(nodes.map((_, i) => stopProc(i, 'SIGKILL')));
      if (/address already in use/i.test(logs) && attempt < 5) continue;
      cleanup();
      process.removeListener('exit', cleanup);
      throw new Error(`${(err as Error).message}\n${logs}`);
    }
  }
  return {
    urls: nodes.map((x) => x.url),
    nodes,
    dir,
    kill: (i) => stopProc(i, 'SIGKILL'),
    stop: (i) => stopProc(i, 'SIGTERM'),
    async start(i) {
      spawnNode(i);
      await waitNodes([i], readyTimeoutMs);
    },
    running: (i) => alive(procs[i]),
    healthz,
    jsz,
    waitHealthy: (timeoutMs = readyTimeoutMs) =>
      waitNodes(
        nodes.flatMap((_, i) => (alive(procs[i]) ? [i] : [])),
        timeoutMs,
      ),
    log,
    pid: (i) => (alive(procs[i]) ? procs[i]!.pid : undefined),
    async close() {
      await Promise.all(nodes.map((_, i) => stopProc(i, 'SIGTERM')));
      rmSync(dir, { recursive: true, force: true });
      process.removeListener('exit', cleanup);
    },
  };
}
