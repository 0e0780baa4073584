// From a request's credential to a principal: an API key or an OIDC token in
// `Authorization: Bearer`, or a console session cookie opened with one of those.
import { createHash, randomBytes } from 'node:crypto';
import type { ApiKeyRecord, KeyStore } from '../store/ports.js';
import { parseKey, verifySecret } from './keys.js';
import { TokenError, type OidcVerifier } from './oidc.js';
import type { Principal } from './principal.js';

export class AuthError extends Error {
  constructor(
    message: string,
    readonly status: 401 | 503 = 401,
  ) {
    super(message);
    this.name = 'AuthError';
  }
}

export interface AuthenticatorDeps {
  keys: KeyStore;
  oidc?: OidcVerifier;
  now(): number;
}

export interface SessionPrincipal {
  principal: Principal;
  csrf: string;
  expiresAt: number;
}

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

export function principalOfKey(k: ApiKeyRecord): Principal {
  return {
    id: `key:${k.id}`,
    name: k.name,
    role: k.role,
    dealers: k.role === 'advisor' || k.role === 'dealer_admin' ? k.dealers : 'all',
    permissions: new Set(k.role === 'lifecycle' ? k.permissions.filter((p) => p !== 'location:read') : k.permissions),
    via: 'key',
  };
}

export class Authenticator {
  constructor(private readonly deps: AuthenticatorDeps) {}

  /** The key, if it is a live one (`k` as read from the store). */
  private live(k: ApiKeyRecord | undefined, now: number): ApiKeyRecord {
    if (!k) throw new AuthError('unknown API key');
    if (k.revokedAt !== null) throw new AuthError('API key revoked');
    if (k.expiresAt !== null && Date.parse(k.expiresAt) <= now) throw new AuthError('API key expired');
    return k;
  }

  async bearer(token: string): Promise<{ principal: Principal; keyId: string | null }> {
    const key = parseKey(token);
    if (key) {
      const k = await this.deps.keys.get(key.id);
      if (!k || !verifySecret(key.secret, k.secret)) throw new AuthError('unknown API key');
      return { principal: principalOfKey(this.live(k, this.deps.now())), keyId: key.id };
    }
    if (!this.deps.oidc) throw new AuthError('not an API key (and OIDC is not configured)');
    try {
      return { principal: await this.deps.oidc(token), keyId: null };
    } catch (err) {
      if (err instanceof TokenError) throw new AuthError(err.message, err.kind === 'unavailable' ? 503 : 401);
      throw err;
    }
  }

  /** A console session: the key it was opened with must still be live. */
  async session(cookie: string): Promise<SessionPrincipal> {
    const now = this.deps.now();
    const s = await this.deps.keys.getSession(sha256(cookie));
    if (!s || s.expiresAt <= now) throw new AuthError('session expired; sign in again');
    if (s.keyId !== null)
      return { principal: principalOfKey(this.live(await this.deps.keys.get(s.keyId), now)), csrf: s.csrf, expiresAt: s.expiresAt };
    if (s.principal === null) throw new AuthError('session has no principal');
    const p = JSON.parse(s.principal) as Omit<Principal, 'permissions'> & { permissions: string[] };
    return { principal: { ...p, permissions: new Set(p.permissions) } as Principal, csrf: s.csrf, expiresAt: s.expiresAt };
  }

  /** Opens a session for a principal that signed in with a bearer credential. */
  async openSession(
    principal: Principal,
    keyId: string | null,
    ttlMs: number,
  ): Promise<{ cookie: string; csrf: string; expiresAt: number }> {
    const now = this.deps.now();
    const cookie = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    // a session opened with a token ends when the token would have (its claims are not re-checked)
    const expiresAt = Math.min(now + ttlMs, principal.expiresAt ?? Infinity);
    await this.deps.keys.createSession({
      idHash: sha256(cookie),
      keyId,
      principal: keyId === null ? JSON.stringify({ ...principal, permissions: [...principal.permissions] }) : null,
      csrf,
      createdAt: now,
      expiresAt,
    });
    return { cookie, csrf, expiresAt };
  }

  async closeSession(cookie: string): Promise<void> {
    await this.deps.keys.deleteSession(sha256(cookie));
  }
}
