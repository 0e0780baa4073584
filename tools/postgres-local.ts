// A real PostgreSQL server for tests and benchmarks (test/support/postgres.ts re-exports it;
// `odopulse bench cluster` uses it): initdb into a fresh temp dir, a random superuser password
// (initdb --pwfile, scram-sha-256 on every host and local line: no trust, no default password),
// listening only on 127.0.0.1 on a free port, its unix socket inside the temp dir, fsync on. Tests
// start it themselves (no globalSetup): one server per test file, a database or schema per case.
//
// PostgreSQL refuses to run as root. When this process is root (as CI is), initdb and postgres run
// as the `postgres` OS user (Debian's postgresql package creates it): spawned with that uid/gid
// (what `runuser -u postgres --` does, without a runuser process in between, so kill() reaches the
// postmaster itself). The temp dir is handed to that user. Otherwise both run as the current user.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './free-port.js';

export interface PostgresOptions {
  /** Directory of initdb and postgres (default: $ODOPULSE_PG_BIN, else the newest /usr/lib/postgresql/<v>/bin). */
  binDir?: string;
  /** Extra server settings (`-c name=value`), e.g. `{ max_connections: '200' }`. fsync stays on unless given here. */
  settings?: Record<string, string>;
  /** Give up waiting for the server after this long (default 30 s). */
  startTimeoutMs?: number;
}

export interface PostgresHandle {
  /** Superuser URL of the `postgres` database: postgres://postgres:<password>@127.0.0.1:<port>/postgres */
  url: string;
  host: '127.0.0.1';
  port: number;
  user: 'postgres';
  password: string;
  /** The temp dir: data in `data/`, the socket in `sock/`, the server's log in `postgres.log`. */
  dir: string;
  /** URL of another database on this server (same credentials). */
  urlFor(database: string): string;
  /** CREATE DATABASE `name` (optionally `TEMPLATE template`); resolves its URL. */
  createDatabase(name: string, opts?: { template?: string }): Promise<string>;
  /** Start the server again on the same port and data (after kill()). */
  restart(): Promise<void>;
  /** Fast shutdown (SIGINT: open sessions are ended), then remove the temp dir. */
  stop(): Promise<void>;
  /** SIGKILL the postmaster (its backends notice and exit); the dir stays for restart() until stop() or exit. */
  kill(): void;
  /** The server's log so far (diagnostics). */
  log(): string;
  /** The postmaster's process id while it runs (its backends are its children: CPU accounting), else undefined. */
  pid(): number | undefined;
}

const quoteIdent = (name: string) => `"${name.replace(/"/g, '""')}"`;

function defaultBinDir(): string {
  if (process.env.ODOPULSE_PG_BIN) return process.env.ODOPULSE_PG_BIN;
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => /^\d+$/.test(v) && existsSync(join(base, v, 'bin', 'postgres')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0)
    throw new Error(`no PostgreSQL server under ${base} (apt-get install postgresql) and ODOPULSE_PG_BIN is not set`);
  return join(base, versions[0], 'bin');
}

/** Whether a PostgreSQL server binary is available: `null` if so, else why not (for `describe.skipIf`). */
export function postgresUnavailable(binDir?: string): string | null {
  try {
    const dir = binDir ?? defaultBinDir();
    if (!existsSync(join(dir, 'postgres')) || !existsSync(join(dir, 'initdb'))) return `no postgres/initdb in ${dir}`;
    if (process.getuid?.() === 0) osUser('postgres');
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

function osUser(name: string): { uid: number; gid: number } {
  try {
    const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
    return { uid, gid };
  } catch {
    throw new Error(
      `running as root, and PostgreSQL refuses root: there is no OS user "${name}" to run it as (apt-get install postgresql creates it)`,
    );
  }
}

async function canQuery(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  c.on('error', () => {});
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => {});
  }
}

export async function startPostgres(opts: PostgresOptions = {}): Promise<PostgresHandle> {
  const bin = opts.binDir ?? defaultBinDir();
  const as = process.getuid?.() === 0 ? osUser('postgres') : undefined;
  // The postgres user must be able to reach the temp dir: a private TMPDIR of root's would not do.
  const base = as && (statSync(tmpdir()).mode & 0o001) === 0 ? '/tmp' : tmpdir();
  const dir = mkdtempSync(join(base, 'odopulse-pg-'));
  const data = join(dir, 'data');
  const sock = join(dir, 'sock');
  const logPath = join(dir, 'postgres.log');
  mkdirSync(sock);
  if (as) {
    chownSync(dir, as.uid, as.gid);
    chownSync(sock, as.uid, as.gid);
  }
  chmodSync(dir, 0o700);

  const password = randomBytes(18).toString('base64url');
  const pwfile = join(dir, 'pwfile');
  writeFileSync(pwfile, password + '\n', { mode: 0o600 });
  if (as) chownSync(pwfile, as.uid, as.gid);
  try {
    // -N: initdb does not fsync its fresh files (saves ~1 s); the server itself runs with fsync on.
    execFileSync(
      join(bin, 'initdb'),
      [
        '-D',
        data,
        '-U',
        'postgres',
        `--pwfile=${pwfile}`,
        '--auth-host=scram-sha-256',
        '--auth-local=scram-sha-256',
        '-E',
        'UTF8',
        '--locale=C',
        '-N',
      ],
      { stdio: 'pipe', cwd: dir, ...as },
    );
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${e.stderr?.toString() || e.message}`);
  } finally {
    rmSync(pwfile, { force: true });
  }

  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1',
    unix_socket_directories: sock,
    fsync: 'on',
    password_encryption: 'scram-sha-256',
    shared_buffers: '32MB',
    max_connections: '200',
    ...opts.settings,
  };
  let port = 0;
  let url = '';
  const urlFor = (database: string) =>
    `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;

  const log = () => {
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };

  let proc: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const fd = openSync(logPath, 'a');
    if (as) chownSync(logPath, as.uid, as.gid);
    const args = ['-D', data, '-p', String(port), ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    let p: ChildProcess;
    try {
      p = spawn(join(bin, 'postgres'), args, { stdio: ['ignore', fd, fd], cwd: dir, ...as });
    } finally {
      closeSync(fd);
    }
    proc = p;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
    for (;;) {
      if (p.exitCode !== null || p.signalCode !== null)
        throw new Error(`postgres exited (${p.exitCode ?? p.signalCode}) on start:\n${log()}`);
      if (await canQuery(url)) return;
      if (Date.now() > deadline) {
        p.kill('SIGKILL');
        await exited;
        throw new Error(`postgres did not accept connections on 127.0.0.1:${port} within ${opts.startTimeoutMs ?? 30_000} ms:\n${log()}`);
      }
      await Promise.race([exited, new Promise((r) => setTimeout(r, 50))]);
    }
  };

  const halt = async (sig: NodeJS.Signals) => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(sig);
    await exited;
  };

  // The free port may be taken between freePort() and postgres binding it: try a few.
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    url = urlFor('postgres');
    try {
      await launch();
      break;
    } catch (err) {
      const busy = /could not bind|Address already in use/i.test(log());
      if (!busy || attempt >= 5) {
        rmSync(dir, { recursive: true, force: true });
        throw err;
      }
    }
  }

  const onExit = () => {
    proc?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  return {
    get url() {
      return url;
    },
    host: '127.0.0.1',
    get port() {
      return port;
    },
    user: 'postgres',
    password,
    dir,
    urlFor,
    async createDatabase(name, o = {}) {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${quoteIdent(name)}${o.template ? ` TEMPLATE ${quoteIdent(o.template)}` : ''}`);
      } finally {
        await c.end();
      }
      return urlFor(name);
    },
    async restart() {
      await halt('SIGINT');
      // After kill(), the old backends may hold the shared memory for a moment: retry until they are gone.
      for (let attempt = 1; ; attempt++) {
        const before = log().length;
        try {
          await launch();
          return;
        } catch (err) {
          if (attempt >= 50 || !/still in use|already running/i.test(log().slice(before))) throw err;
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    },
    async stop() {
      await halt('SIGINT');
      process.removeListener('exit', onExit);
      rmSync(dir, { recursive: true, force: true });
    },
    kill() {
      const p = proc;
      proc = undefined;
      p?.kill('SIGKILL');
    },
    log,
    pid: () => (proc && proc.exitCode === null && proc.signalCode === null ? proc.pid : undefined),
  };
}
