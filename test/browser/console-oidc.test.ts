// The console's other sign-in: the OEM identity provider, authorization code + PKCE (a public
// client). A local identity provider on loopback checks the PKCE verifier and signs a token with a
// generated key; ingest verifies it against the provider's JWKS and opens the console session.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOidcVerifier } from '../../ingest/auth/oidc.js';
import { hasChromium, launchChromium } from '../support/chromium.js';
import { makeHarness, VIN_A, VIN_C, type Harness } from '../unit/http/harness.js';

const CLIENT_ID = 'odopulse-console';

describe.skipIf(!hasChromium())('console sign-in with OIDC (authorization code + PKCE) in Chromium', () => {
  let h: Harness;
  let idp: Server;
  let issuer: string;
  let base: string;
  let browser: Browser;
  const codes = new Map<string, { challenge: string; redirect: string }>();
  const tokenRequests: Array<Record<string, string>> = [];

  beforeAll(async () => {
    const { publicKey, privateKey } = await generateKeyPair('ES256');
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    idp = createServer((req, res) => {
      const url = new URL(req.url!, issuer);
      res.setHeader('access-control-allow-origin', '*');
      res.setHeader('access-control-allow-headers', 'content-type');
      if (req.method === 'OPTIONS') return void res.end();
      if (url.pathname === '/.well-known/openid-configuration') {
        res.setHeader('content-type', 'application/json');
        return void res.end(
          JSON.stringify({
            issuer,
            jwks_uri: `${issuer}/jwks`,
            authorization_endpoint: `${issuer}/authorize`,
            token_endpoint: `${issuer}/token`,
          }),
        );
      }
      if (url.pathname === '/jwks') return void res.end(JSON.stringify({ keys: [jwk] }));
      if (url.pathname === '/authorize') {
        // the user "logs in" at once; only S256 challenges from our client are accepted
        const q = url.searchParams;
        if (q.get('client_id') !== CLIENT_ID || q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) {
          res.statusCode = 400;
          return void res.end('bad authorization request');
        }
        const code = randomBytes(12).toString('hex');
        codes.set(code, { challenge: q.get('code_challenge')!, redirect: q.get('redirect_uri')! });
        res.statusCode = 302;
        res.setHeader('location', `${q.get('redirect_uri')}?code=${code}&state=${encodeURIComponent(q.get('state') ?? '')}`);
        return void res.end();
      }
      if (url.pathname === '/token' && req.method === 'POST') {
        let body = '';
        req.on('data', (d) => (body += d));
        req.on('end', () => {
          const form = Object.fromEntries(new URLSearchParams(body));
          tokenRequests.push(form);
          const c = codes.get(form.code);
          const verified =
            c && createHash('sha256').update(form.code_verifier).digest('base64url') === c.challenge && c.redirect === form.redirect_uri;
          res.setHeader('content-type', 'application/json');
          if (!verified) {
            res.statusCode = 400;
            return void res.end(JSON.stringify({ error: 'invalid_grant' }));
          }
          codes.delete(form.code);
          void new SignJWT({ name: 'Wang Fang', odopulse_roles: ['advisor'], odopulse_dealers: ['D001'] })
            .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
            .setIssuer(issuer)
            .setAudience('odopulse-api')
            .setSubject('wang.fang')
            .setIssuedAt()
            .setExpirationTime('10m')
            .sign(privateKey)
            .then((t) => res.end(JSON.stringify({ access_token: t, token_type: 'Bearer', expires_in: 600 })));
        });
        return;
      }
      res.statusCode = 404;
      res.end();
    });
    await new Promise<void>((r) => idp.listen(0, '127.0.0.1', r));
    issuer = `http://127.0.0.1:${(idp.address() as AddressInfo).port}`;
    const oidc = createOidcVerifier({
      issuer,
      audience: 'odopulse-api',
      roleClaim: 'odopulse_roles',
      dealersClaim: 'odopulse_dealers',
      permissionsClaim: 'odopulse_permissions',
    });
    h = await makeHarness({ console: { oidc: { issuer, clientId: CLIENT_ID } } }, { oidc });
    await h.register(VIN_A, 'D001');
    await h.register(VIN_C, 'D002');
    await h.openPrompt(VIN_A, { key: 'mine', title: 'Mine' });
    await h.openPrompt(VIN_C, { key: 'theirs', title: 'Other dealer alert' });
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await h?.close();
    await new Promise((r) => idp?.close(r));
  });

  it('signs in through the identity provider and shows that advisor’s dealer only', async () => {
    const page = await browser.newPage({ locale: 'en-US' });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) errors.push(m.text());
    });
    await page.goto(base + '/');
    await page.locator('[data-testid="signin-oidc"]').waitFor();
    await page.click('[data-testid="signin-oidc"]');
    await page.locator('[data-testid="alerts-view"]').waitFor();
    expect(await page.locator('[data-testid="whoami"]').textContent()).toBe('Wang Fang · advisor · D001');
    await page.locator('[data-testid="alert-item"]').first().waitFor();
    const titles = await page.locator('[data-testid="alert-title"]').allTextContents();
    expect(titles).toEqual(['Mine']);
    // the code was exchanged with the PKCE verifier, and the URL no longer carries it
    expect(tokenRequests).toHaveLength(1);
    expect(tokenRequests[0]).toMatchObject({ grant_type: 'authorization_code', client_id: CLIENT_ID });
    expect(tokenRequests[0].code_verifier.length).toBeGreaterThanOrEqual(43);
    expect(page.url()).not.toContain('code=');
    expect(errors).toEqual([]);
    await page.close();
  });
});
