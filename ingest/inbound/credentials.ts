// Per-vehicle MQTT credentials, one vehicle per line (`#` comments and blank lines allowed):
//   VIN:scrypt:<N>:<r>:<p>:<salt base64>:<hash base64>   salted scrypt (node:crypto), made by hashCredential()
//   VIN:sha256:<64 hex>                                  unsalted SHA-256: still read, with a start-up warning
//   VIN:secret                                           the secret in clear
// `scrypt:` and `sha256:` are reserved prefixes: a clear secret cannot start with them. A malformed
// line fails the load, naming the file and line.
import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { VinSchema } from '../../proto/domain.js';

/** Resolves true when `password` is the vehicle's secret. Nothing is cached: every call verifies. */
export type CredentialCheck = (username: string, password: Buffer | undefined) => Promise<boolean>;

/** node:crypto's own scrypt defaults (N 2^14, r 8, p 1: 16 MiB and some tens of ms per check). */
export const SCRYPT_DEFAULTS = { N: 16384, r: 8, p: 1, keyLength: 32, saltLength: 16 } as const;
// Bounds for parameters read from the file, so a bad line cannot make every connect cost
// gigabytes or seconds: at most 256 MiB (128·N·r) per check.
const MAX_SCRYPT_MEM = 256 * 1024 * 1024;
// scrypt runs on libuv's thread pool (4 threads by default), which the file system shares: a
// reconnect storm of a whole fleet must not take all of it. Checks beyond this many wait in order.
const MAX_CONCURRENT_SCRYPT = 2;

type Entry =
  | { kind: 'digest'; sha256: Buffer } // clear and sha256 forms: compared as SHA-256 digests
  | { kind: 'scrypt'; N: number; r: number; p: number; salt: Buffer; hash: Buffer };

/** The scrypt line value for `secret` (what follows `VIN:`), with a fresh random salt. */
export async function hashCredential(secret: string | Buffer, params: { N?: number; r?: number; p?: number } = {}): Promise<string> {
  const N = params.N ?? SCRYPT_DEFAULTS.N;
  const r = params.r ?? SCRYPT_DEFAULTS.r;
  const p = params.p ?? SCRYPT_DEFAULTS.p;
  checkScryptParams(N, r, p);
  const salt = randomBytes(SCRYPT_DEFAULTS.saltLength);
  const hash = await scryptAsync(Buffer.from(secret), salt, SCRYPT_DEFAULTS.keyLength, { N, r, p, maxmem: maxmem(N, r) });
  return `scrypt:${N}:${r}:${p}:${salt.toString('base64')}:${hash.toString('base64')}`;
}

/**
 * Read the credentials file. `onWarning` hears about weak entries (the unsalted sha256 form), once
 * per load; a malformed line throws `<file>:<line>: ...`.
 */
export function loadCredentials(file: string, onWarning: (message: string) => void = () => {}): CredentialCheck {
  const table = new Map<string, Entry>();
  const sha256Lines: number[] = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const t = line.trim();
      if (!t || t.startsWith('#')) return;
      const where = `${file}:${i + 1}`;
      const colon = t.indexOf(':');
      if (colon < 1) throw new Error(`${where}: expected VIN:secret, VIN:sha256:<hex> or VIN:scrypt:...`);
      const user = t.slice(0, colon);
      const secret = t.slice(colon + 1);
      if (!VinSchema.safeParse(user).success) throw new Error(`${where}: ${JSON.stringify(user)} is not a VIN`);
      if (table.has(user)) throw new Error(`${where}: ${user} is listed twice`);
      let entry: Entry;
      if (secret.startsWith('scrypt:')) entry = parseScrypt(secret, where);
      else if (secret.startsWith('sha256:')) {
        const hex = secret.slice('sha256:'.length);
        if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new Error(`${where}: sha256 form needs 64 hex digits`);
        entry = { kind: 'digest', sha256: Buffer.from(hex, 'hex') };
        sha256Lines.push(i + 1);
      } else {
        if (!secret) throw new Error(`${where}: empty secret`);
        entry = { kind: 'digest', sha256: sha256(Buffer.from(secret)) };
      }
      table.set(user, entry);
    });
  if (sha256Lines.length) {
    onWarning(
      `${file}: ${sha256Lines.length} credential(s) in the unsalted sha256 form (line ${sha256Lines.join(', ')}); ` +
        'replace them with the salted scrypt form (hashCredential in ingest/inbound/credentials.ts)',
    );
  }
  const limit = semaphore(MAX_CONCURRENT_SCRYPT);
  return async (username, password) => {
    const want = table.get(username);
    if (!want || !password) return false;
    if (want.kind === 'digest') return equal(sha256(password), want.sha256);
    const { N, r, p, salt, hash } = want;
    const got = await limit(() => scryptAsync(password, salt, hash.length, { N, r, p, maxmem: maxmem(N, r) }));
    return equal(got, hash);
  };
}

function parseScrypt(secret: string, where: string): Entry {
  const parts = secret.split(':');
  if (parts.length !== 6) throw new Error(`${where}: scrypt form is scrypt:<N>:<r>:<p>:<salt base64>:<hash base64>`);
  const [, n, r, p, salt64, hash64] = parts;
  const int = (s: string, what: string) => {
    if (!/^[1-9][0-9]{0,9}$/.test(s)) throw new Error(`${where}: scrypt ${what} must be a positive integer`);
    return Number(s);
  };
  const N = int(n, 'N');
  const R = int(r, 'r');
  const P = int(p, 'p');
  try {
    checkScryptParams(N, R, P);
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`);
  }
  const b64 = (s: string, what: string, min: number) => {
    const b = Buffer.from(s, 'base64');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s) || b.length < min)
      throw new Error(`${where}: scrypt ${what} must be base64 of at least ${min} bytes`);
    return b;
  };
  return { kind: 'scrypt', N, r: R, p: P, salt: b64(salt64, 'salt', 8), hash: b64(hash64, 'hash', 16) };
}

function checkScryptParams(N: number, r: number, p: number): void {
  if (!Number.isInteger(N) || N < 2 || (N & (N - 1)) !== 0) throw new Error('scrypt N must be a power of two > 1');
  if (!Number.isInteger(r) || r < 1 || r > 64) throw new Error('scrypt r must be 1-64');
  if (!Number.isInteger(p) || p < 1 || p > 16) throw new Error('scrypt p must be 1-16');
  if (128 * N * r > MAX_SCRYPT_MEM) throw new Error(`scrypt N·r too large (over ${MAX_SCRYPT_MEM / 1024 / 1024} MiB per check)`);
}

// node's scrypt refuses to use more than maxmem (32 MiB by default) and needs a little above 128·N·r.
const maxmem = (N: number, r: number) => 128 * N * r * 2;

function scryptAsync(password: Buffer, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))));
}

/** Run at most `n` tasks at a time; the others wait in arrival order. */
function semaphore(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async (task) => {
    if (running < n) running++;
    else await new Promise<void>((resolve) => waiting.push(resolve)); // the finishing task hands its slot over
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}

const equal = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);

function sha256(b: Buffer): Buffer {
  return createHash('sha256').update(b).digest();
}
