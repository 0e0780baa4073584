// Console sign-in (docs/contract.md#console-sessions): an API key, or the OEM identity provider
// with authorization code + PKCE (a public client). The key is sent once, to open the session (an
// httpOnly SameSite=Strict cookie), and kept nowhere; the CSRF token lives in memory only.
(function () {
  'use strict';
  window.OdoSignIn = function ({ $, t, state, api, enter }) {
    function signInOptions() {
      const meta = document.querySelector('meta[name="odopulse-sign-in"]');
      try {
        return meta ? JSON.parse(meta.content) : {};
      } catch {
        return {};
      }
    }

    function showSignIn(message) {
      document.body.classList.add('signed-out');
      $('view-signin').hidden = false;
      $('view-alerts').hidden = true;
      $('view-vehicle').hidden = true;
      $('whoami').hidden = true;
      $('sign-out').hidden = true;
      $('signin-oidc').hidden = !signInOptions().oidc;
      const err = $('signin-error');
      err.textContent = message || '';
      err.hidden = !message;
      $('signin-key').focus();
    }

    function renderWhoami() {
      const p = state.principal;
      if (!p) return;
      $('whoami').textContent = p.name + ' · ' + t('role.' + p.role) + (p.dealers === 'all' ? '' : ' · ' + p.dealers.join(', '));
    }

    function signedIn(session) {
      state.principal = session.principal;
      state.csrf = session.csrfToken;
      document.body.classList.remove('signed-out');
      renderWhoami();
      $('whoami').hidden = false;
      $('sign-out').hidden = false;
      $('view-signin').hidden = true;
      $('signin-key').value = '';
    }

    function signedOut(message) {
      state.principal = null;
      state.csrf = null;
      if (state.es) state.es.close();
      state.es = null;
      state.prompts = new Map();
      state.vehicles = new Map();
      state.loaded = false;
      showSignIn(message);
    }

    async function signInWith(credential) {
      const session = await api('/api/v1/session', { method: 'POST', bearer: credential });
      signedIn(session);
      await enter();
    }

    /** Authorization code + PKCE against the OEM identity provider (a public client, no secret). */
    const b64url = (bytes) =>
      window
        .btoa(String.fromCharCode(...new Uint8Array(bytes)))
        .replace(/\+/g, '-')
        .replace(/\//g, '_')
        .replace(/=+$/, '');
    async function discovery(issuer) {
      const res = await window.fetch(issuer.replace(/\/$/, '') + '/.well-known/openid-configuration');
      if (!res.ok) throw new Error('identity provider: HTTP ' + res.status);
      return res.json();
    }
    async function startOidc() {
      const { issuer, clientId } = signInOptions().oidc;
      const conf = await discovery(issuer);
      const verifier = b64url(window.crypto.getRandomValues(new Uint8Array(32)));
      const challenge = b64url(await window.crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
      const st = b64url(window.crypto.getRandomValues(new Uint8Array(16)));
      window.sessionStorage.setItem('odopulse.pkce', JSON.stringify({ verifier, state: st }));
      const q = new URLSearchParams({
        response_type: 'code',
        client_id: clientId,
        redirect_uri: location.origin + '/',
        scope: 'openid profile',
        code_challenge: challenge,
        code_challenge_method: 'S256',
        state: st,
      });
      location.assign(conf.authorization_endpoint + '?' + q);
    }
    async function finishOidc(code, returnedState) {
      const saved = JSON.parse(window.sessionStorage.getItem('odopulse.pkce') || 'null');
      window.sessionStorage.removeItem('odopulse.pkce');
      window.history.replaceState(null, '', location.pathname + location.hash);
      if (!saved || saved.state !== returnedState) throw new Error('sign-in state does not match; try again');
      const { issuer, clientId } = signInOptions().oidc;
      const conf = await discovery(issuer);
      const res = await window.fetch(conf.token_endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          code,
          redirect_uri: location.origin + '/',
          client_id: clientId,
          code_verifier: saved.verifier,
        }),
      });
      const tokens = await res.json().catch(() => ({}));
      if (!res.ok || !tokens.access_token) throw new Error((tokens && tokens.error) || 'HTTP ' + res.status);
      await signInWith(tokens.access_token);
    }

    return { showSignIn, signedIn, signedOut, signInWith, startOidc, finishOidc, signInOptions, renderWhoami };
  };
})();
