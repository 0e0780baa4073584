// Signing in and who may do what: console sessions, API keys (operators for every dealer,
// dealer admins for their own) and the audit trail (docs/contract.md#access-control).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { Authenticator } from '../../auth/authenticate.js';
import { createApiKey, KeyRequestError } from '../../auth/keys.js';
import { describePrincipal, seesLocation, type Principal } from '../../auth/principal.js';
import { PERMISSIONS, ROLES, type ApiKeyRecord, type AuditLog, type KeyStore } from '../../store/ports.js';
import { CSRF_HEADER, principalOf, SESSION_COOKIE } from '../auth.js';
import { badRequest, HttpError, notFound } from '../errors.js';
import { auditFor } from '../scope.js';
import { ErrorSchema, IdParams, TimeParam } from '../schemas.js';
import { VinSchema } from '../../../proto/domain.js';

export interface AccessRoutesDeps {
  stores: { keys: KeyStore; audit: AuditLog };
  authenticator: Authenticator;
  /** How long a console session lasts (ms). */
  sessionTtlMs: number;
  /** Secure cookies when the console is served over HTTPS (behind a TLS proxy: true). */
  secureCookies: boolean;
}

const Who = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(ROLES),
  dealers: z.union([z.array(z.string()), z.literal('all')]),
  permissions: z.array(z.enum(PERMISSIONS)),
});
const SessionOut = z.object({ principal: Who, csrfToken: z.string().nullable(), csrfHeader: z.string(), expiresAt: z.string().nullable() });
const KeyOut = z.object({
  id: z.string(),
  name: z.string(),
  role: z.enum(ROLES),
  dealers: z.array(z.string()),
  permissions: z.array(z.enum(PERMISSIONS)),
  createdAt: z.string(),
  createdBy: z.string().nullable(),
  expiresAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});
const KeyBody = z.object({
  name: z.string().trim().min(1).max(100),
  role: z.enum(ROLES),
  dealers: z.array(z.string().min(1).max(64)).max(100).default([]),
  permissions: z.array(z.enum(PERMISSIONS)).max(PERMISSIONS.length).default([]),
  expiresAt: TimeParam.optional(),
});
const AuditQuery = z.object({
  vin: VinSchema.optional(),
  principal: z.string().min(1).max(200).optional(),
  from: TimeParam.optional(),
  to: TimeParam.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  before: z.coerce.number().int().min(1).optional(),
});
const AuditOut = z.object({
  items: z.array(
    z.object({
      id: z.number(),
      at: z.string(),
      principal: z.string(),
      action: z.string(),
      vin: z.string().nullable(),
      requestId: z.string(),
      detail: z.record(z.string(), z.unknown()).nullable(),
    }),
  ),
  nextBefore: z.number().nullable(),
});

/** A dealer admin manages keys of its own dealers only, and grants no more than it has. */
function mayManage(p: Principal, k: Pick<ApiKeyRecord, 'role' | 'dealers' | 'permissions'>): boolean {
  if (p.role === 'operator') return true;
  if (p.role !== 'dealer_admin' || p.dealers === 'all') return false;
  const mine = p.dealers;
  return (
    (k.role === 'advisor' || k.role === 'dealer_admin') &&
    k.dealers.length > 0 &&
    k.dealers.every((d) => mine.includes(d)) &&
    (!k.permissions.includes('location:read') || seesLocation(p))
  );
}

export function registerAccess(app: FastifyInstance, deps: AccessRoutesDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { keys } = deps.stores;
  const audit = (req: FastifyRequest) => auditFor(deps.stores.audit, req, Date.now);

  r.post(
    '/api/v1/session',
    {
      schema: {
        summary: 'Open a console session: the bearer credential (API key or token) is exchanged for an httpOnly cookie',
        tags: ['access'],
        response: { 201: SessionOut, 400: ErrorSchema },
      },
      config: { auth: 'session' },
    },
    async (req, reply) => {
      if (req.auth?.via !== 'bearer') throw badRequest('sign in with Authorization: Bearer <API key or token>');
      const p = principalOf(req);
      const s = await deps.authenticator.openSession(p, req.auth.keyId, deps.sessionTtlMs);
      reply.setCookie(SESSION_COOKIE, s.cookie, {
        path: '/',
        httpOnly: true,
        sameSite: 'strict',
        secure: deps.secureCookies,
        expires: new Date(s.expiresAt),
      });
      await audit(req)('session.opened', null);
      return reply.code(201).send({
        principal: describePrincipal(p),
        csrfToken: s.csrf,
        csrfHeader: CSRF_HEADER,
        expiresAt: new Date(s.expiresAt).toISOString(),
      });
    },
  );

  r.get(
    '/api/v1/session',
    { schema: { summary: 'Who is signed in', tags: ['access'], response: { 200: SessionOut } }, config: { auth: 'session' } },
    async (req) => ({
      principal: describePrincipal(principalOf(req)),
      csrfToken: req.auth?.via === 'session' ? req.auth.csrf : null,
      csrfHeader: CSRF_HEADER,
      expiresAt: req.auth?.via === 'session' ? new Date(req.auth.expiresAt).toISOString() : null,
    }),
  );

  r.delete(
    '/api/v1/session',
    {
      schema: { summary: 'Sign out (ends the console session)', tags: ['access'], response: { 204: z.null() } },
      config: { auth: 'session' },
    },
    async (req, reply) => {
      const cookie = req.cookies[SESSION_COOKIE];
      if (cookie) await deps.authenticator.closeSession(cookie);
      reply.clearCookie(SESSION_COOKIE, { path: '/' });
      return reply.code(204).send(null);
    },
  );

  r.get(
    '/api/v1/keys',
    {
      schema: {
        summary: 'API keys this caller manages (never their secrets)',
        tags: ['access'],
        response: { 200: z.object({ items: z.array(KeyOut) }) },
      },
      config: { auth: 'keys:manage' },
    },
    async (req) => ({ items: (await keys.list()).filter((k) => mayManage(principalOf(req), k)) }),
  );

  r.post(
    '/api/v1/keys',
    {
      schema: {
        summary: 'Create an API key; the key is in the answer once and never again',
        tags: ['access'],
        body: KeyBody,
        response: { 201: z.object({ key: KeyOut, token: z.string() }), 400: ErrorSchema, 403: ErrorSchema },
      },
      config: { auth: 'keys:manage' },
    },
    async (req, reply) => {
      const p = principalOf(req);
      if (!mayManage(p, req.body))
        throw new HttpError(403, 'forbidden', 'a dealer admin creates advisor or dealer_admin keys of its own dealers only');
      try {
        const { record, token } = await createApiKey(
          keys,
          { ...req.body, expiresAt: req.body.expiresAt ?? null, createdBy: p.id },
          Date.now(),
        );
        await audit(req)('key.created', null, {
          keyId: record.id,
          role: record.role,
          dealers: record.dealers,
          permissions: record.permissions,
        });
        return reply.code(201).send({ key: record, token });
      } catch (err) {
        if (err instanceof KeyRequestError) throw badRequest(err.message);
        throw err;
      }
    },
  );

  r.delete(
    '/api/v1/keys/:id',
    {
      schema: {
        summary: 'Revoke an API key (its sessions end with it)',
        tags: ['access'],
        params: IdParams,
        response: { 204: z.null(), 404: ErrorSchema },
      },
      config: { auth: 'keys:manage' },
    },
    async (req, reply) => {
      const k = await keys.get(req.params.id);
      if (!k || !mayManage(principalOf(req), k)) throw notFound('key', req.params.id);
      await keys.revoke(k.id, Date.now());
      await audit(req)('key.revoked', null, { keyId: k.id });
      return reply.code(204).send(null);
    },
  );

  r.get(
    '/api/v1/audit',
    {
      schema: {
        summary: 'The audit trail, newest first (operators)',
        tags: ['access'],
        querystring: AuditQuery,
        response: { 200: AuditOut, 400: ErrorSchema },
      },
      config: { auth: 'audit:read' },
    },
    async (req) => {
      const items = await deps.stores.audit.query(req.query);
      return { items, nextBefore: items.length === req.query.limit ? items[items.length - 1].id : null };
    },
  );
}
