// API keys: `odp_<id>_<secret>`. The id finds the row; the secret (256 random bits) is stored only
// as SHA-256(salt ‖ secret) with a per-key random salt — a KDF adds nothing for a secret of that
// entropy and would cost every request milliseconds. Compared in constant time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ApiKeyRecord, KeyStore, Permission, Role, SecretHash } from '../store/ports.js';
import { DEALER_SCOPED_ROLES } from './principal.js';

export const KEY_PREFIX = 'odp_';
const ID_RE = /^[a-z2-7]{12}$/;
const SECRET_RE = /^[A-Za-z0-9_-]{43}$/;

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
function base32(bytes: Buffer, chars: number): string {
  let out = '';
  for (let i = 0; i < chars; i++) out += BASE32[bytes[i] & 31];
  return out;
}

export function parseKey(token: string): { id: string; secret: string } | null {
  if (!token.startsWith(KEY_PREFIX)) return null;
  const rest = token.slice(KEY_PREFIX.length);
  const sep = rest.indexOf('_');
  if (sep < 0) return null;
  const id = rest.slice(0, sep);
  const secret = rest.slice(sep + 1);
  return ID_RE.test(id) && SECRET_RE.test(secret) ? { id, secret } : null;
}

export function hashSecret(secret: string, salt: Buffer = randomBytes(16)): SecretHash {
  return { salt, hash: createHash('sha256').update(salt).update(secret).digest() };
}

export function verifySecret(secret: string, stored: SecretHash): boolean {
  const got = hashSecret(secret, stored.salt).hash;
  return got.length === stored.hash.length && timingSafeEqual(got, stored.hash);
}

export class KeyRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyRequestError';
  }
}

export interface NewKey {
  name: string;
  role: Role;
  dealers: string[];
  permissions: Permission[];
  /** epoch ms, or null for no expiry */
  expiresAt: number | null;
  createdBy: string | null;
}

/** Create a key; the token is returned once and never stored. */
export async function createApiKey(store: KeyStore, k: NewKey, now: number): Promise<{ record: ApiKeyRecord; token: string }> {
  const scoped = DEALER_SCOPED_ROLES.includes(k.role);
  if (scoped && k.dealers.length === 0) throw new KeyRequestError(`role ${k.role} needs at least one dealer (--dealer ID)`);
  if (!scoped && k.dealers.length > 0) throw new KeyRequestError(`role ${k.role} is fleet-wide: it takes no dealer`);
  if (k.expiresAt !== null && !(k.expiresAt > now)) throw new KeyRequestError('expiry must be in the future');
  if (k.role === 'lifecycle' && k.permissions.includes('location:read'))
    throw new KeyRequestError('the lifecycle role never reads location');
  for (let attempt = 0; ; attempt++) {
    const id = base32(randomBytes(12), 12);
    if (await store.get(id)) {
      if (attempt > 5) throw new Error('could not find a free key id');
      continue;
    }
    const secret = randomBytes(32).toString('base64url');
    const record = await store.create(
      {
        id,
        name: k.name,
        role: k.role,
        dealers: [...new Set(k.dealers)],
        permissions: [...new Set(k.permissions)],
        createdBy: k.createdBy,
        expiresAt: k.expiresAt === null ? null : new Date(k.expiresAt).toISOString(),
      },
      hashSecret(secret),
      now,
    );
    return { record, token: `${KEY_PREFIX}${id}_${secret}` };
  }
}
