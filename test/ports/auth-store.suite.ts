// API keys, console sessions and the audit trail, run against every store backend.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Authenticator, AuthError } from '../../ingest/auth/authenticate.js';
import { createApiKey, hashSecret, KeyRequestError, parseKey, verifySecret } from '../../ingest/auth/keys.js';
import type { Permission, Stores } from '../../ingest/store/ports.js';
import { HOUR, T0 } from './fixtures.js';

const DAY = 24 * HOUR;

export function authStoreSuite(name: string, make: () => Stores | Promise<Stores>): void {
  describe(`Keys, sessions and audit (${name})`, () => {
    let stores: Stores;
    let now = T0;
    beforeEach(async () => {
      stores = await make();
      now = T0;
    });
    afterEach(async () => {
      await stores.close();
    });
    const authn = () => new Authenticator({ keys: stores.keys, now: () => now });

    it('stores only a salted hash: the token is returned once and verifies, a changed secret does not', async () => {
      const { record, token } = await createApiKey(
        stores.keys,
        { name: 'advisor one', role: 'advisor', dealers: ['D1', 'D1', 'D2'], permissions: [], expiresAt: null, createdBy: 'test' },
        now,
      );
      expect(record).toMatchObject({ name: 'advisor one', role: 'advisor', dealers: ['D1', 'D2'], revokedAt: null, expiresAt: null });
      const parsed = parseKey(token)!;
      expect(parsed.id).toBe(record.id);
      const stored = (await stores.keys.get(record.id))!;
      expect(stored.secret.hash.includes(Buffer.from(parsed.secret))).toBe(false);
      expect(stored.secret.salt.length).toBe(16);
      expect(verifySecret(parsed.secret, stored.secret)).toBe(true);
      expect(verifySecret(parsed.secret.slice(0, -1) + (parsed.secret.endsWith('A') ? 'B' : 'A'), stored.secret)).toBe(false);
      // the same secret under another salt hashes differently
      expect(hashSecret(parsed.secret).hash.equals(stored.secret.hash)).toBe(false);
      expect((await stores.keys.list()).map((k) => k.id)).toEqual([record.id]);
      expect(JSON.stringify(await stores.keys.list())).not.toContain(parsed.secret);
    });

    it('refuses keys that make no sense: a scoped role without dealers, a fleet role with one, a past expiry, lifecycle with location', async () => {
      const base = { name: 'x', permissions: [] as Permission[], expiresAt: null, createdBy: null };
      await expect(createApiKey(stores.keys, { ...base, role: 'advisor', dealers: [] }, now)).rejects.toThrow(KeyRequestError);
      await expect(createApiKey(stores.keys, { ...base, role: 'operator', dealers: ['D1'] }, now)).rejects.toThrow(KeyRequestError);
      await expect(createApiKey(stores.keys, { ...base, role: 'metrics', dealers: [], expiresAt: now - 1 }, now)).rejects.toThrow(
        KeyRequestError,
      );
      await expect(
        createApiKey(stores.keys, { ...base, role: 'lifecycle', dealers: [], permissions: ['location:read'] }, now),
      ).rejects.toThrow(KeyRequestError);
      expect(await stores.keys.list()).toEqual([]);
    });

    it('a live key authenticates; revoked, expired, unknown and forged ones do not', async () => {
      const a = await createApiKey(
        stores.keys,
        { name: 'ops', role: 'operator', dealers: [], permissions: ['location:read'], expiresAt: null, createdBy: null },
        now,
      );
      const b = await createApiKey(
        stores.keys,
        { name: 'crm', role: 'lifecycle', dealers: [], permissions: [], expiresAt: now + HOUR, createdBy: null },
        now,
      );
      const { principal } = await authn().bearer(a.token);
      expect(principal).toMatchObject({ id: `key:${a.record.id}`, name: 'ops', role: 'operator', dealers: 'all' });
      expect(principal.permissions.has('location:read')).toBe(true);
      expect((await authn().bearer(b.token)).principal.role).toBe('lifecycle');
      now += HOUR;
      await expect(authn().bearer(b.token)).rejects.toThrow(/expired/);
      expect(await stores.keys.revoke(a.record.id, now)).toBe(true);
      expect(await stores.keys.revoke(a.record.id, now)).toBe(false);
      await expect(authn().bearer(a.token)).rejects.toThrow(/revoked/);
      await expect(authn().bearer(`odp_${'a'.repeat(12)}_${'b'.repeat(43)}`)).rejects.toThrow(AuthError);
      const forged = a.token.slice(0, -2) + (a.token.endsWith('xx') ? 'yy' : 'xx');
      await expect(authn().bearer(forged)).rejects.toThrow(AuthError);
      await expect(authn().bearer('not-a-key')).rejects.toThrow(/OIDC is not configured/);
      expect((await stores.keys.list()).find((k) => k.id === a.record.id)?.revokedAt).not.toBeNull();
    });

    it('a session lives until it expires, is signed out, or its key is revoked', async () => {
      const k = await createApiKey(
        stores.keys,
        { name: 'adv', role: 'advisor', dealers: ['D1'], permissions: [], expiresAt: null, createdBy: null },
        now,
      );
      const a = authn();
      const { principal, keyId } = await a.bearer(k.token);
      const s = await a.openSession(principal, keyId, 8 * HOUR);
      expect(await a.session(s.cookie)).toMatchObject({ csrf: s.csrf, principal: { role: 'advisor', dealers: ['D1'] } });
      const s2 = await a.openSession(principal, keyId, 8 * HOUR);
      await a.closeSession(s2.cookie);
      await expect(a.session(s2.cookie)).rejects.toThrow(AuthError);
      now += 8 * HOUR;
      await expect(a.session(s.cookie)).rejects.toThrow(/expired/);
      const s3 = await a.openSession(principal, keyId, 8 * HOUR);
      await stores.keys.revoke(k.record.id, now);
      await expect(a.session(s3.cookie)).rejects.toThrow(/revoked/);
      expect(await stores.keys.pruneSessions(now)).toBe(1); // s expired; s3 lives on, refused by its key
      await expect(a.session('no-such-cookie')).rejects.toThrow(AuthError);
    });

    it('a session opened with a token keeps that principal (no key to re-check)', async () => {
      const a = authn();
      const s = await a.openSession(
        { id: 'oidc:u1', name: 'Li Wei', role: 'advisor', dealers: ['D9'], permissions: new Set(['location:read']), via: 'oidc' },
        null,
        HOUR,
      );
      const back = (await a.session(s.cookie)).principal;
      expect(back).toMatchObject({ id: 'oidc:u1', name: 'Li Wei', role: 'advisor', dealers: ['D9'] });
      expect(back.permissions.has('location:read')).toBe(true);
      // never longer than the token it was opened with
      const short = await a.openSession(
        { id: 'oidc:u2', name: 'x', role: 'lifecycle', dealers: 'all', permissions: new Set(), via: 'oidc', expiresAt: now + 60_000 },
        null,
        HOUR,
      );
      expect(short.expiresAt).toBe(now + 60_000);
      now += 60_000;
      await expect(a.session(short.cookie)).rejects.toThrow(/expired/);
      expect((await a.session(s.cookie)).expiresAt).toBe(T0 + HOUR);
    });

    it('audit: newest first, filtered by vin, principal and time, paged; pruned by retention', async () => {
      for (let i = 0; i < 5; i++) {
        await stores.audit.record({
          at: T0 + i * DAY,
          principal: i % 2 ? 'key:a' : 'key:b',
          action: 'telemetry.read',
          vin: i < 3 ? 'V1' : 'V2',
          requestId: `r${i}`,
        });
      }
      await stores.audit.record({
        at: T0 + 5 * DAY,
        principal: 'key:a',
        action: 'key.created',
        vin: null,
        requestId: 'r5',
        detail: { keyId: 'k1' },
      });
      const all = await stores.audit.query({ limit: 100 });
      expect(all.map((e) => e.requestId)).toEqual(['r5', 'r4', 'r3', 'r2', 'r1', 'r0']);
      expect(all[0]).toMatchObject({ action: 'key.created', vin: null, detail: { keyId: 'k1' }, at: new Date(T0 + 5 * DAY).toISOString() });
      expect((await stores.audit.query({ vin: 'V1', limit: 100 })).map((e) => e.requestId)).toEqual(['r2', 'r1', 'r0']);
      expect((await stores.audit.query({ principal: 'key:a', limit: 100 })).map((e) => e.requestId)).toEqual(['r5', 'r3', 'r1']);
      expect((await stores.audit.query({ from: T0 + DAY, to: T0 + 3 * DAY, limit: 100 })).map((e) => e.requestId)).toEqual(['r2', 'r1']);
      const page1 = await stores.audit.query({ limit: 2 });
      expect((await stores.audit.query({ limit: 2, before: page1[1].id })).map((e) => e.requestId)).toEqual(['r3', 'r2']);
      expect((await stores.prune(T0 + 2 * DAY)).audit).toBe(2);
      expect(await stores.audit.query({ limit: 100 })).toHaveLength(4);
    });
  });
}
