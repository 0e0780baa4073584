// Access control against a real ingest process: every documented route refuses anonymous, revoked,
// expired and foreign credentials (401, never 500); keys made with `odopulse keys` work and stop
// working while ingest runs; OIDC tokens are verified against a local identity provider's JWKS
// (found through its discovery document) and mapped to roles and dealers by claims.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { runBin, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { PROFILE } from '../support/scenario.js';

const VIN_1 = 'LSVAU2180N2183401';
const VIN_2 = 'LSVAU2180N2183402';
const AUDIENCE = 'odopulse-api';

let influx: InfluxdHandle;
let ingest: IngestProcess;
let idp: Server;
let issuer: string;
let signingKey: CryptoKey;
let jwksHits = 0;

async function startIdp(publicJwk: JWK): Promise<void> {
  idp = createServer((req, res) => {
    if (req.url === '/.well-known/openid-configuration') {
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          issuer,
          jwks_uri: `${issuer}/jwks`,
          authorization_endpoint: `${issuer}/authorize`,
          token_endpoint: `${issuer}/token`,
        }),
      );
    } else if (req.url === '/jwks') {
      jwksHits++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [{ ...publicJwk, kid: 'k1', alg: 'RS256', use: 'sig' }] }));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
  issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
}

function token(claims: Record<string, unknown>, o: { iss?: string; aud?: string; exp?: number; key?: CryptoKey } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
    .setIssuer(o.iss ?? issuer)
    .setAudience(o.aud ?? AUDIENCE)
    .setSubject(String(claims.sub ?? 'user-1'))
    .setIssuedAt(now - 60)
    .setExpirationTime(o.exp ?? now + 600)
    .sign(o.key ?? signingKey);
}

const call = (path: string, headers: Record<string, string> = {}, init: RequestInit = {}) =>
  fetch(`${ingest.api}${path}`, { ...init, headers: { 'content-type': 'application/json', ...headers } });
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

beforeAll(async () => {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  signingKey = privateKey;
  await startIdp(await exportJWK(publicKey));
  influx = await startInfluxd({ database: 'auth' });
  ingest = await startIngestProcess({
    INFLUX_URL: influx.url,
    INFLUX_BUCKET: 'auth',
    ODOPULSE_OIDC_ISSUER: issuer,
    ODOPULSE_OIDC_AUDIENCE: AUDIENCE,
    // the route-by-route test presents seven bad credentials per route from one address
    ODOPULSE_HTTP_AUTH_FAILURES: '100000',
  });
  for (const [vin, dealerId] of [
    [VIN_1, 'D1'],
    [VIN_2, 'D2'],
  ]) {
    const r = await call(`/api/v1/vehicles/${vin}`, ingest.auth, { method: 'PUT', body: JSON.stringify({ ...PROFILE, dealerId }) });
    expect(r.status).toBe(201);
  }
});
afterAll(async () => {
  await ingest?.stop();
  await influx?.stop();
  await new Promise((r) => idp?.close(r));
});

describe('HTTP access control (real process)', () => {
  it('every route in /openapi.json: 401 without credentials, with a revoked key, an expired JWT, a JWT of another issuer or key; none 500', async () => {
    const doc = (await (await call('/openapi.json', ingest.auth)).json()) as { paths: Record<string, Record<string, unknown>> };
    const routes = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => ({ method: m.toUpperCase(), path: path.replace('{vin}', VIN_1).replace('{id}', 'p_none') })),
    );
    expect(routes.length).toBeGreaterThan(15);

    const created = await runBin(['keys', 'create', '--role', 'operator', '--name', 'to revoke'], { ODOPULSE_DATA_DIR: ingest.dataDir });
    expect(created.code).toBe(0);
    const revokedKey = created.stdout.trim().split('\n').at(-1)!;
    expect((await call('/api/v1/vehicles', bearer(revokedKey))).status).toBe(200);
    const revoke = await runBin(['keys', 'revoke', revokedKey.split('_')[1]], { ODOPULSE_DATA_DIR: ingest.dataDir });
    expect(revoke.code).toBe(0);

    const { privateKey: otherKey } = await generateKeyPair('RS256');
    const claims = { sub: 'op-1', odopulse_roles: ['operator'] };
    const bad: Array<[string, Record<string, string>]> = [
      ['none', {}],
      ['revoked key', bearer(revokedKey)],
      ['expired JWT', bearer(await token(claims, { exp: Math.floor(Date.now() / 1000) - 3600 }))],
      ['other issuer', bearer(await token(claims, { iss: 'https://idp.example.com' }))],
      ['other audience', bearer(await token(claims, { aud: 'someone-else' }))],
      ['other signing key', bearer(await token(claims, { key: otherKey }))],
      ['no role claim', bearer(await token({ sub: 'x' }))],
    ];
    for (const { method, path } of routes) {
      for (const [what, headers] of bad) {
        const res = await call(path, headers, { method, body: method === 'GET' || method === 'DELETE' ? undefined : '{}' });
        const status = res.status;
        await res.arrayBuffer();
        if (path === '/healthz') expect([200, 503], `${method} ${path}`).toContain(status);
        else expect(status, `${method} ${path} with ${what}`).toBe(401);
      }
    }
    expect(jwksHits).toBeGreaterThan(0);
  });

  it('a valid token maps roles and dealers from its claims: an advisor of D1 sees D1 only', async () => {
    const adv = bearer(await token({ sub: 'adv-1', name: 'Li Wei', odopulse_roles: ['advisor'], odopulse_dealers: ['D1'] }));
    const list = (await (await call('/api/v1/vehicles', adv)).json()) as { items: Array<{ vin: string }> };
    expect(list.items.map((v) => v.vin)).toEqual([VIN_1]);
    expect((await call(`/api/v1/vehicles/${VIN_2}`, adv)).status).toBe(404);
    const who = (await (await call('/api/v1/session', adv)).json()) as { principal: Record<string, unknown> };
    expect(who.principal).toMatchObject({ id: 'oidc:adv-1', name: 'Li Wei', role: 'advisor', dealers: ['D1'], permissions: [] });
    // an advisor role without dealers is refused rather than given the whole fleet
    expect((await call('/api/v1/vehicles', bearer(await token({ sub: 'adv-2', odopulse_roles: ['advisor'] })))).status).toBe(401);
    // a token opens a console session like a key does
    const open = await call('/api/v1/session', adv, { method: 'POST', body: '{}' });
    expect(open.status).toBe(201);
    const cookie = String(open.headers.get('set-cookie')).split(';')[0];
    expect(((await (await call('/api/v1/vehicles', { cookie })).json()) as { items: unknown[] }).items).toHaveLength(1);
  });

  it('a key made with `odopulse keys create` while ingest runs works at once; list shows it without its secret', async () => {
    const made = await runBin(['keys', 'create', '--role', 'advisor', '--dealer', 'D2', '--name', 'Zhang'], {
      ODOPULSE_DATA_DIR: ingest.dataDir,
    });
    expect(made.code).toBe(0);
    const key = made.stdout.trim().split('\n').at(-1)!;
    expect(key).toMatch(/^odp_[a-z2-7]{12}_[A-Za-z0-9_-]{43}$/);
    const list = (await (await call('/api/v1/vehicles', bearer(key))).json()) as { items: Array<{ vin: string }> };
    expect(list.items.map((v) => v.vin)).toEqual([VIN_2]);
    const listed = await runBin(['keys', 'list'], { ODOPULSE_DATA_DIR: ingest.dataDir });
    expect(listed.stdout).toContain(key.split('_')[1]);
    expect(listed.stdout).not.toContain(key.slice(key.indexOf('_', 4) + 1));
    const refused = await runBin(['keys', 'create', '--role', 'advisor'], { ODOPULSE_DATA_DIR: ingest.dataDir });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/needs at least one dealer/);
  });
});
