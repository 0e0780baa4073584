// OIDC / JWT bearer tokens from the OEM's identity provider, verified with jose against the
// issuer's JWKS (from its discovery document, or ODOPULSE_OIDC_JWKS_URL). Role, dealers and
// permissions come from claims whose names are settings (docs/contract.md#oidc).
import { createRemoteJWKSet, jwtVerify, errors as joseErrors, type JWTPayload } from 'jose';
import { PERMISSIONS, ROLES, type Permission, type Role } from '../store/ports.js';
import { DEALER_SCOPED_ROLES, type Principal } from './principal.js';

export interface OidcOptions {
  issuer: string;
  audience: string;
  /** Skips discovery when given. */
  jwksUrl?: string;
  roleClaim: string;
  dealersClaim: string;
  permissionsClaim: string;
  /** Allowed clock difference with the identity provider (s). */
  clockToleranceS?: number;
}

export class TokenError extends Error {
  constructor(
    message: string,
    /** 'invalid': 401; 'unavailable': the identity provider could not be reached (503). */
    readonly kind: 'invalid' | 'unavailable' = 'invalid',
  ) {
    super(message);
    this.name = 'TokenError';
  }
}

export type OidcVerifier = (token: string) => Promise<Principal>;

/** A claim as a list: a JSON array, or a space/comma-separated string (as `scope` is). */
function claimList(v: unknown): string[] {
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  if (typeof v === 'string') return v.split(/[\s,]+/).filter(Boolean);
  return [];
}

/** Read a possibly nested claim: `realm_access.roles` reads payload.realm_access.roles. */
function claim(payload: JWTPayload, name: string): unknown {
  if (name in payload) return payload[name];
  let v: unknown = payload;
  for (const part of name.split('.')) v = v && typeof v === 'object' ? (v as Record<string, unknown>)[part] : undefined;
  return v;
}

/** Maps a verified token's claims to a principal; refuses what the claims do not make clear. */
export function principalFromClaims(payload: JWTPayload, o: OidcOptions): Principal {
  const roles = claimList(claim(payload, o.roleClaim)).filter((r): r is Role => (ROLES as readonly string[]).includes(r));
  // several roles: the broadest of them (operator > dealer_admin > advisor > lifecycle > metrics)
  const order: Role[] = ['operator', 'dealer_admin', 'advisor', 'lifecycle', 'metrics'];
  const role = order.find((r) => roles.includes(r));
  if (!role) throw new TokenError(`token has no odopulse role in claim ${o.roleClaim}`);
  const dealers = claimList(claim(payload, o.dealersClaim));
  if (DEALER_SCOPED_ROLES.includes(role) && dealers.length === 0)
    throw new TokenError(`role ${role} needs dealers in claim ${o.dealersClaim}`);
  const permissions = claimList(claim(payload, o.permissionsClaim)).filter((p): p is Permission =>
    (PERMISSIONS as readonly string[]).includes(p),
  );
  const sub = typeof payload.sub === 'string' ? payload.sub : '';
  if (!sub) throw new TokenError('token has no subject');
  const name = [payload.name, payload.preferred_username, payload.email, sub].find(
    (x): x is string => typeof x === 'string' && x.length > 0,
  )!;
  return {
    id: `oidc:${sub}`,
    name,
    role,
    dealers: DEALER_SCOPED_ROLES.includes(role) ? dealers : 'all',
    permissions: new Set(role === 'lifecycle' ? permissions.filter((p) => p !== 'location:read') : permissions),
    via: 'oidc',
    ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {}),
  };
}

/** The JWKS URL of an issuer, from its discovery document. */
export async function discoverJwksUrl(issuer: string, fetchImpl: typeof fetch = fetch): Promise<string> {
  const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`;
  const res = await fetchImpl(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`${url} answered ${res.status}`);
  const doc = (await res.json()) as { jwks_uri?: unknown; issuer?: unknown };
  if (typeof doc.jwks_uri !== 'string') throw new Error(`${url} has no jwks_uri`);
  if (doc.issuer !== issuer) throw new Error(`${url} names issuer ${String(doc.issuer)}, not ${issuer}`);
  return doc.jwks_uri;
}

export function createOidcVerifier(o: OidcOptions): OidcVerifier {
  // Discovery is lazy and retried: an identity provider that is down at start-up does not stop
  // ingest (vehicles and API-key callers keep working); token callers get 503 until it answers.
  let jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  let pending: Promise<ReturnType<typeof createRemoteJWKSet>> | undefined;
  const keySet = async () => {
    if (jwks) return jwks;
    pending ??= (async () => {
      const url = o.jwksUrl ?? (await discoverJwksUrl(o.issuer));
      jwks = createRemoteJWKSet(new URL(url), { timeoutDuration: 5000, cooldownDuration: 30_000 });
      return jwks;
    })().finally(() => (pending = undefined));
    return pending;
  };
  return async (token) => {
    let set;
    try {
      set = await keySet();
    } catch (err) {
      throw new TokenError(`identity provider not reachable: ${(err as Error).message}`, 'unavailable');
    }
    try {
      const { payload } = await jwtVerify(token, set, {
        issuer: o.issuer,
        audience: o.audience,
        clockTolerance: o.clockToleranceS ?? 30,
        algorithms: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'],
      });
      return principalFromClaims(payload, o);
    } catch (err) {
      if (err instanceof TokenError) throw err;
      if (err instanceof joseErrors.JWKSTimeout) throw new TokenError('identity provider keys not reachable', 'unavailable');
      if (err instanceof joseErrors.JOSEError) throw new TokenError(`token refused: ${err.code}`);
      throw new TokenError(`token refused: ${(err as Error).message}`);
    }
  };
}
