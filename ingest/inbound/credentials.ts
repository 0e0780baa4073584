// Per-vehicle MQTT credentials: one "VIN:secret" or "VIN:sha256:<hex>" per line (# comments allowed).
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export type CredentialCheck = (username: string, password: Buffer | undefined) => boolean;

export function loadCredentials(file: string): CredentialCheck {
  const table = new Map<string, Buffer>();
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const t = line.trim();
      if (!t || t.startsWith('#')) return;
      const colon = t.indexOf(':');
      if (colon < 1) throw new Error(`${file}:${i + 1}: expected VIN:secret`);
      const user = t.slice(0, colon);
      const secret = t.slice(colon + 1);
      table.set(user, secret.startsWith('sha256:') ? Buffer.from(secret.slice(7), 'hex') : sha256(Buffer.from(secret)));
    });
  return (username, password) => {
    const want = table.get(username);
    if (!want || !password) return false;
    const got = sha256(password);
    return got.length === want.length && timingSafeEqual(got, want);
  };
}

function sha256(b: Buffer): Buffer {
  return createHash('sha256').update(b).digest();
}
