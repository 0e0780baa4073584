// Every route declares what it needs (`config.auth`: an action, or 'public' for /healthz and the
// console's static files, which hold no data); a route that declares nothing fails at start-up.
// The principal comes from `Authorization: Bearer` (API key or OIDC token) or from the console's
// session cookie; cookie-authenticated changes must also carry the session's CSRF token
// (docs/contract.md#access-control).
import fastifyCookie from '@fastify/cookie';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AuthError, type Authenticator } from '../auth/authenticate.js';
import { can, type Action, type Principal } from '../auth/principal.js';
import { HttpError } from './errors.js';

export const SESSION_COOKIE = 'odopulse_session';
export const CSRF_HEADER = 'x-csrf-token';

declare module 'fastify' {
  interface FastifyContextConfig {
    auth?: Action | 'public';
  }
  interface FastifyRequest {
    principal?: Principal;
    /** How the principal was established; `keyId` when by an API key in the header. */
    auth?: { via: 'bearer'; keyId: string | null } | { via: 'session'; csrf: string; expiresAt: number };
  }
}

export interface AuthPluginOptions {
  authenticator: Authenticator;
  /** Refused credentials one address may present per minute before it gets 429s (default 60). */
  failuresPerMinute?: number;
}

/**
 * Refused credentials per source address in the current minute: the rate limit proper runs after
 * authentication (per principal), so guessing keys or tokens is bounded here instead. Bounded in
 * size: a flood from many addresses evicts the oldest windows.
 */
function failureCounter(max: number) {
  const windows = new Map<string, { start: number; n: number }>();
  return {
    blocked(ip: string, now: number): boolean {
      const w = windows.get(ip);
      return w !== undefined && now - w.start < 60_000 && w.n >= max;
    },
    failed(ip: string, now: number): void {
      const w = windows.get(ip);
      if (w && now - w.start < 60_000) w.n++;
      else {
        windows.delete(ip);
        windows.set(ip, { start: now, n: 1 });
        if (windows.size > 10_000) windows.delete(windows.keys().next().value!);
      }
    },
  };
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

function unauthorized(reply: FastifyReply, message: string): HttpError {
  reply.header('www-authenticate', 'Bearer realm="odopulse"');
  return new HttpError(401, 'unauthorized', message);
}

/** The authenticated principal of a request that passed the auth hook. */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new HttpError(401, 'unauthorized', 'no principal');
  return req.principal;
}

export async function registerAuth(app: FastifyInstance, opts: AuthPluginOptions): Promise<void> {
  await app.register(fastifyCookie);

  app.addHook('onRoute', (route) => {
    if (!route.config?.auth) throw new Error(`route ${String(route.method)} ${route.url} declares no config.auth`);
  });

  const failures = failureCounter(opts.failuresPerMinute ?? 60);
  app.addHook('onRequest', async (req, reply) => {
    const need = req.routeOptions.config.auth;
    if (need === undefined || need === 'public') return; // undefined: no such route (404 follows)
    const header = req.headers.authorization;
    if (failures.blocked(req.ip, Date.now())) {
      reply.header('retry-after', '60');
      throw new HttpError(429, 'rate_limited', 'too many refused credentials from this address; retry in a minute');
    }
    try {
      if (header !== undefined) {
        const m = /^Bearer\s+(\S{1,8192})\s*$/i.exec(header);
        if (!m) throw unauthorized(reply, 'expected Authorization: Bearer <API key or token>');
        const { principal, keyId } = await opts.authenticator.bearer(m[1]);
        req.principal = principal;
        req.auth = { via: 'bearer', keyId };
      } else {
        const cookie = req.cookies[SESSION_COOKIE];
        if (!cookie) throw unauthorized(reply, 'sign in: Authorization: Bearer <API key or token>, or a console session');
        const s = await opts.authenticator.session(cookie);
        // SameSite=Strict already keeps other sites' requests from carrying the cookie; the token
        // header is the second line (docs/contract.md#console-sessions).
        if (!SAFE_METHODS.has(req.method) && req.headers[CSRF_HEADER] !== s.csrf) {
          throw new HttpError(403, 'csrf', `a change with a session cookie needs the ${CSRF_HEADER} header of the session`);
        }
        req.principal = s.principal;
        req.auth = { via: 'session', csrf: s.csrf, expiresAt: s.expiresAt };
      }
    } catch (err) {
      if (err instanceof AuthError) {
        if (err.status === 503) throw new HttpError(503, 'identity_provider_unavailable', err.message);
        failures.failed(req.ip, Date.now());
        throw unauthorized(reply, err.message);
      }
      throw err;
    }
    if (!can(req.principal, need)) {
      throw new HttpError(403, 'forbidden', `role ${req.principal.role} may not ${need}`, { role: req.principal.role, needs: need });
    }
  });
}
