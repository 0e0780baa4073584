// Start a real Mosquitto (/usr/sbin/mosquitto) on a temp dir and free loopback ports:
// optional password file (mosquitto_passwd -b), ACL (each vehicle only under its own VIN, plus a
// full-access `ingest` user), TLS with certificates made by openssl (server + one client cert
// for mutual TLS). Persistence is on, so stop() + start() keeps persistent sessions. Or, with
// `shipped`, deploy/mosquitto/mosquitto.conf and acl as they are, only the listener, the file paths
// and persistence_location rewritten for the temp dir.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, openSync, closeSync, readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../proto/paths.js';
import { freePort } from '../../tools/free-port.js';
import { waitFor } from './wait.js';

export interface MosquittoOptions {
  acl?: boolean;
  tls?: boolean;
  /** Require a client certificate on the TLS listener (mutual TLS). */
  mtls?: boolean;
  passwords?: Record<string, string>;
  /**
   * Run the shipped deploy/mosquitto/mosquitto.conf (persistence, queue limits, hardening) and acl
   * (ingest is `odopulse-ingest`); `passwords` is then required. acl/tls/mtls do not apply.
   */
  shipped?: boolean;
}

export const SHIPPED_MOSQUITTO_DIR = join(PACKAGE_ROOT, 'deploy', 'mosquitto');

/**
 * deploy/mosquitto/mosquitto.conf for a temp dir: the listener on a loopback port, the password
 * file, the shipped acl by its path, persistence_location in `dir`. Each rewritten line must be in
 * the shipped file exactly once (so the test notices when it changes). Added for the test: `user
 * root` (as the other configs here: the tests run as root and Mosquitto would otherwise drop to a
 * user that cannot write the temp dir), the log on stderr and its "information" lines (each
 * autosave logs one: see saves()).
 */
export function shippedMosquittoConfig(dir: string, port: number, passwordFile: string): string[] {
  const rewrite = new Map([
    ['listener 1883', `listener ${port} 127.0.0.1`],
    ['password_file /mosquitto/config/passwords', `password_file ${passwordFile}`],
    ['acl_file /mosquitto/config/acl', `acl_file ${join(SHIPPED_MOSQUITTO_DIR, 'acl')}`],
    ['persistence_location /mosquitto/data/', `persistence_location ${dir}/`],
  ]);
  const lines = readFileSync(join(SHIPPED_MOSQUITTO_DIR, 'mosquitto.conf'), 'utf8').split('\n');
  for (const [from] of rewrite) {
    const n = lines.filter((l) => l.trim() === from).length;
    if (n !== 1) throw new Error(`deploy/mosquitto/mosquitto.conf: expected the line "${from}" once, found it ${n} times`);
  }
  return ['user root', ...lines.map((l) => rewrite.get(l.trim()) ?? l), 'log_dest stderr', 'log_type information'];
}

export interface MosquittoHandle {
  url: string;
  port: number;
  tlsUrl?: string;
  tlsPort?: number;
  /** Path of the CA certificate (PEM) that signed the server and client certificates. */
  ca?: string;
  /** Client certificate and key (PEM paths) for mutual TLS; CN = `odopulse-client`. */
  clientCert?: string;
  clientKey?: string;
  dir: string;
  /** Start again on the same ports and data (after stop() or kill9()). */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** SIGKILL (no save on exit); resolves once the process is gone. */
  kill9(): Promise<void>;
  /** Stop and remove the temp dir (config, certificates, persistence). */
  dispose(): Promise<void>;
  /** Mosquitto's log so far (diagnostics). */
  log(): string;
  /** How many times Mosquitto started saving its database so far (shipped config only: it logs each). */
  saves(): number;
}

export { freePort };

/** Whether something accepts TCP connections on the loopback `port` right now. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const c = createConnection({ port, host: '127.0.0.1' });
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

async function waitForPort(port: number, proc: ChildProcess, timeoutMs = 15_000): Promise<void> {
  const r = await waitFor(async () => (proc.exitCode !== null ? 'exited' : (await canConnect(port)) && 'listening'), {
    timeoutMs,
    what: `mosquitto listening on ${port}`,
  });
  if (r === 'exited') throw new Error(`mosquitto exited with code ${proc.exitCode}`);
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM files in `dir`. */
export function makeCerts(dir: string): { ca: string; serverCert: string; serverKey: string; clientCert: string; clientKey: string } {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=odopulse-test-ca']);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(dir, ['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost']);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.crt',
    '-days',
    '2',
    '-extfile',
    'server.ext',
  ]);
  openssl(dir, ['req', ...ec, '-keyout', 'client.key', '-out', 'client.csr', '-subj', '/CN=odopulse-client']);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    'client.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'client.crt',
    '-days',
    '2',
  ]);
  const f = (n: string) => join(dir, n);
  return {
    ca: f('ca.crt'),
    serverCert: f('server.crt'),
    serverKey: f('server.key'),
    clientCert: f('client.crt'),
    clientKey: f('client.key'),
  };
}

export async function startMosquitto(opts: MosquittoOptions = {}): Promise<MosquittoHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'mosquitto-'));
  const port = await freePort();
  const tlsPort = !opts.shipped && (opts.tls || opts.mtls) ? await freePort() : undefined;
  const auth = !!opts.passwords && Object.keys(opts.passwords).length > 0;
  const pw = join(dir, 'passwd');
  if (auth) {
    writeFileSync(pw, '');
    for (const [user, pass] of Object.entries(opts.passwords!)) execFileSync('mosquitto_passwd', ['-b', pw, user, pass], { stdio: 'pipe' });
  }
  let lines: string[];
  if (opts.shipped) {
    if (!auth) throw new Error('startMosquitto({ shipped: true }) needs passwords (the shipped config refuses anonymous clients)');
    lines = shippedMosquittoConfig(dir, port, pw);
  } else {
    lines = [
      `user root`,
      `persistence true`,
      `persistence_location ${dir}/`,
      `log_dest stderr`,
      `log_type error`,
      `log_type warning`,
      `log_type notice`,
      `max_queued_messages 100000`,
      `listener ${port} 127.0.0.1`,
      `allow_anonymous ${auth ? 'false' : 'true'}`,
    ];
    if (auth) lines.push(`password_file ${pw}`);
    if (opts.acl) {
      const acl = join(dir, 'acl');
      writeFileSync(
        acl,
        [
          '# ingest sees and sends everything',
          'user ingest',
          'topic readwrite #',
          '',
          '# a vehicle only under its own VIN (username = VIN)',
          'pattern readwrite v1/vehicles/%u/#',
          '',
        ].join('\n'),
      );
      lines.push(`acl_file ${acl}`);
    }
    if (tlsPort) {
      makeCerts(dir);
      lines.push(`listener ${tlsPort} 127.0.0.1`, `cafile ${dir}/ca.crt`, `certfile ${dir}/server.crt`, `keyfile ${dir}/server.key`);
      if (opts.mtls) lines.push('require_certificate true');
    }
  }
  const conf = join(dir, 'mosquitto.conf');
  writeFileSync(conf, lines.join('\n') + '\n');
  const logPath = join(dir, 'mosquitto.log');

  const log = () => {
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };

  let proc: ChildProcess | undefined;
  const start = async () => {
    const fd = openSync(logPath, 'a');
    try {
      proc = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: ['ignore', fd, fd] });
    } finally {
      closeSync(fd);
    }
    try {
      await waitForPort(port, proc);
      if (tlsPort) await waitForPort(tlsPort, proc);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${readFileSync(logPath, 'utf8')}`);
    }
  };
  const stopProc = async (sig: NodeJS.Signals) => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill(sig);
    await exited;
  };
  await start();
  // stop() keeps the dir for a restart; whatever is left goes when the test process exits.
  process.once('exit', () => {
    proc?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    ...(tlsPort
      ? {
          tlsUrl: `mqtts://127.0.0.1:${tlsPort}`,
          tlsPort,
          ca: join(dir, 'ca.crt'),
          clientCert: join(dir, 'client.crt'),
          clientKey: join(dir, 'client.key'),
        }
      : {}),
    dir,
    start,
    async stop() {
      await stopProc('SIGTERM');
    },
    kill9: () => stopProc('SIGKILL'),
    log,
    saves: () =>
      log()
        .split('\n')
        .filter((l) => l.includes('Saving in-memory database')).length,
    async dispose() {
      await stopProc('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
