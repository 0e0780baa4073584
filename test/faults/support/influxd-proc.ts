// An influxd 1.x for outage cases, with its process in hand: SIGKILL it and start a new one on the
// same data dir and port (what a crashed and restarted InfluxDB looks like to ingest), or freeze it
// with SIGSTOP and thaw it with SIGCONT. tools/influxd-local.ts (the product's launcher) stops only
// with SIGTERM and keeps its process to itself; the configuration is the launcher's.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../../tools/free-port.js';
import { influxdConfig as config, influxQuery, INFLUXD_BIN } from '../../../tools/influxd-local.js';

export interface InfluxdProcess {
  url: string;
  database: string;
  dataDir: string;
  /** The running influxd's pid (a new one after restart()). */
  readonly pid: number;
  /** SIGKILL, and wait until it is gone. */
  kill(): Promise<void>;
  /** SIGSTOP: it keeps its sockets, answers nothing. */
  freeze(): void;
  /** SIGCONT after freeze(). */
  thaw(): void;
  /** A new influxd on the same data dir and ports; resolves once it answers /ping. */
  restart(): Promise<void>;
  /** Kill it and remove its directory. */
  remove(): Promise<void>;
}

export async function startInfluxdProcess(o: { database: string }): Promise<InfluxdProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'odopulse-faults-influxd-'));
  const httpPort = await freePort();
  const rpcPort = await freePort();
  const cfg = join(dir, 'influxd.conf');
  await writeFile(cfg, config(dir, httpPort, rpcPort));
  const url = `http://127.0.0.1:${httpPort}`;
  let proc: ChildProcess | undefined;

  const gone = (p: ChildProcess) => p.exitCode !== null || p.signalCode !== null;
  const launch = async (deadline = Date.now() + 30_000): Promise<void> => {
    let err = '';
    const p = spawn(INFLUXD_BIN, ['-config', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    proc = p;
    // the port may still be held a moment by the killed one: influxd then exits, and is started again
    for (;;) {
      if (gone(p)) {
        if (Date.now() > deadline) throw new Error(`influxd exited (${p.exitCode ?? p.signalCode}): ${err}`);
        await new Promise((r) => setTimeout(r, 200));
        return launch(deadline);
      }
      const ok = await fetch(`${url}/ping`).then(
        (r) => r.status === 204,
        () => false,
      );
      if (ok) return;
      if (Date.now() > deadline) {
        p.kill('SIGKILL');
        throw new Error(`influxd did not answer /ping within 30 s: ${err}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const kill = async () => {
    const p = proc;
    if (!p || gone(p)) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGCONT'); // a frozen process dies of SIGKILL too, but let it not linger stopped
    p.kill('SIGKILL');
    await exited;
  };

  await launch();
  await influxQuery(url, o.database, `CREATE DATABASE "${o.database}"`);
  return {
    url,
    database: o.database,
    dataDir: dir,
    get pid() {
      return proc!.pid!;
    },
    kill,
    freeze: () => proc!.kill('SIGSTOP'),
    thaw: () => proc!.kill('SIGCONT'),
    restart: () => launch(),
    async remove() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
