// Advisor console: sign-in, dealer picker, live alert list (EventSource, resumes with Last-Event-ID
// by itself), acknowledge / resolve, and hash routing to the vehicle page (vehicle.js).
// The session is an httpOnly SameSite=Strict cookie set by POST /api/v1/session; the API key is
// only sent once, to open it, and never stored. Changes carry the session's CSRF token.
// (docs/contract.md#console-sessions)
(function () {
  'use strict';
  const I18N = window.OdoI18n;
  const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };
  const ACTIVE = ['open', 'delivered', 'acknowledged'];
  const store = {
    get: (k, d) => {
      try {
        return localStorage.getItem('odopulse.' + k) ?? d;
      } catch {
        return d;
      }
    },
    set: (k, v) => {
      try {
        localStorage.setItem('odopulse.' + k, v);
      } catch {
        /* private mode: keep in memory only */
      }
    },
  };
  const state = {
    lang: store.get('lang', String(window.navigator.language || 'en').startsWith('zh') ? 'zh-CN' : 'en'),
    dealer: store.get('dealer', null),
    filter: 'active',
    advisorOnly: store.get('advisorOnly', '1') === '1',
    prompts: new Map(),
    fresh: new Set(),
    vehicles: new Map(),
    es: null,
    loaded: false,
    pending: null,
    principal: null,
    csrf: null,
  };
  const $ = (id) => document.getElementById(id);
  const t = (k, p) => I18N.t(state.lang, k, p);

  /** Tiny DOM builder: h('li', {class: 'x', 'data-testid': 'y', onclick: fn}, child...). */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity))
      if (c !== null && c !== undefined && c !== false) el.append(c instanceof window.Node ? c : String(c));
    return el;
  }

  async function api(path, opts) {
    const init = { method: (opts && opts.method) || 'GET', headers: {}, credentials: 'same-origin' };
    if (opts && opts.body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(opts.body);
    }
    if (init.method !== 'GET' && state.csrf) init.headers['x-csrf-token'] = state.csrf;
    if (opts && opts.bearer) init.headers.authorization = 'Bearer ' + opts.bearer;
    const res = await window.fetch(path, init);
    const body = res.status === 204 ? null : await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error((body && body.message) || 'HTTP ' + res.status);
      err.status = res.status;
      if (res.status === 401 && !(opts && opts.bearer) && state.principal) signedOut(t('signin.expired'));
      throw err;
    }
    return body;
  }

  // ---- sign-in ----

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

  function age(iso) {
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 60) return t('time.justNow');
    if (s < 3600) return t('time.min', { n: Math.floor(s / 60) });
    if (s < 86400) return t('time.hour', { n: Math.floor(s / 3600) });
    return t('time.day', { n: Math.floor(s / 86400) });
  }
  function fmtTime(v) {
    const d = new Date(v);
    return Number.isNaN(d.getTime()) ? '' : d.toLocaleString(state.lang, { dateStyle: 'medium', timeStyle: 'short' });
  }

  let toastTimer = null;
  function toast(msg, kind) {
    const el = $('toast');
    el.textContent = msg;
    el.className = 'toast' + (kind ? ' toast-' + kind : '');
    el.hidden = false;
    window.clearTimeout(toastTimer);
    toastTimer = window.setTimeout(() => {
      el.hidden = true;
    }, 5000);
  }

  function applyStaticText() {
    document.documentElement.lang = state.lang;
    document.title = 'odopulse · ' + t('app.subtitle');
    for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
    for (const el of document.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
    for (const b of document.querySelectorAll('[data-lang]')) b.setAttribute('aria-pressed', String(b.dataset.lang === state.lang));
    setConn(state.conn || 'connecting');
    renderWhoami();
  }

  function setConn(kind) {
    state.conn = kind;
    const el = $('conn');
    el.className = 'conn conn-' + kind;
    el.dataset.state = kind;
    el.querySelector('span').textContent = t(kind === 'live' ? 'conn.live' : kind === 'offline' ? 'conn.offline' : 'conn.connecting');
  }

  // ---- dealers and vehicles ----

  async function loadVehicles() {
    let cursor = null;
    const all = new Map();
    do {
      const page = await api('/api/v1/vehicles?limit=500' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
      for (const v of page.items) all.set(v.vin, v);
      cursor = page.nextCursor;
    } while (cursor);
    state.vehicles = all;
    renderDealerPicker();
  }

  function renderDealerPicker() {
    // only the caller's dealers: the server scopes every answer anyway, the picker just says so
    const mine = state.principal && state.principal.dealers !== 'all' ? state.principal.dealers : null;
    const dealers = (mine ? [...mine] : [...new Set([...state.vehicles.values()].map((v) => v.dealerId))]).sort();
    if (state.dealer === null || (state.dealer !== '' && !dealers.includes(state.dealer))) state.dealer = dealers[0] ?? '';
    const sel = $('dealer-picker');
    sel.replaceChildren(
      h('option', { value: '', text: dealers.length ? t('dealer.all') : t('dealer.none') }),
      ...dealers.map((d) => h('option', { value: d, text: d })),
    );
    sel.value = state.dealer;
  }

  // ---- prompts ----

  const inScope = (p) => (!state.dealer || p.dealerId === state.dealer) && (!state.advisorOnly || p.audience.includes('advisor'));
  function passesFilter(p) {
    if (state.filter === 'all') return true;
    if (state.filter === 'active') return ACTIVE.includes(p.status);
    if (state.filter === 'open') return p.status === 'open' || p.status === 'delivered';
    if (state.filter === 'resolved') return p.status === 'resolved' || p.status === 'expired';
    return p.status === state.filter;
  }

  async function loadPrompts() {
    const q = new URLSearchParams({ limit: '500' });
    if (state.dealer) q.set('dealerId', state.dealer);
    if (state.advisorOnly) q.set('audience', 'advisor');
    try {
      const page = await api('/api/v1/prompts?' + q);
      state.prompts = new Map();
      for (const p of page.items) state.prompts.set(p.id, p);
      state.loaded = true;
      renderAlerts();
    } catch (e) {
      showNotice(t('alerts.error', { msg: e.message }));
    }
  }

  /** Keep the newer copy: the list and the stream may deliver the same prompt in either order. */
  function upsert(p, live) {
    const old = state.prompts.get(p.id);
    if (old && old.updatedAt > p.updatedAt) return;
    state.prompts.set(p.id, p);
    if (live && !old) state.fresh.add(p.id);
    renderAlerts();
    window.OdoVehicle.onPrompt(p);
  }

  function connectStream() {
    if (state.es) state.es.close();
    setConn('connecting');
    const q = state.dealer ? '?dealerId=' + encodeURIComponent(state.dealer) : '';
    const es = new EventSource('/api/v1/stream' + q);
    state.es = es;
    let first = true;
    // The server subscribes before answering, so loading the list after `open` misses nothing;
    // later reconnects replay from Last-Event-ID on their own.
    es.onopen = () => {
      setConn('live');
      if (first) {
        first = false;
        loadPrompts();
      }
    };
    es.onerror = () => {
      setConn('offline');
      // The browser retries by itself unless the server refused the stream: then start over.
      if (es.readyState === EventSource.CLOSED)
        window.setTimeout(() => {
          if (state.es === es) connectStream();
        }, 5000);
    };
    es.addEventListener('prompt', (ev) => {
      const change = JSON.parse(ev.data);
      if (inScope(change.prompt)) upsert(change.prompt, change.step === 'created');
    });
  }

  function showNotice(text) {
    const n = $('alerts-notice');
    n.textContent = text || '';
    n.hidden = !text;
  }

  function renderCounters(active) {
    const c = { critical: 0, warning: 0, info: 0 };
    for (const p of active) c[p.severity]++;
    $('counters').replaceChildren(
      ...['critical', 'warning', 'info'].map((s) =>
        h('span', { class: 'counter sev-' + s, 'data-testid': 'count-' + s }, h('b', { text: c[s] }), ' ' + t('count.' + s)),
      ),
    );
  }

  function evidenceList(ev) {
    const entries = Object.entries(ev || {});
    if (!entries.length) return null;
    return h(
      'details',
      { class: 'evidence' },
      h('summary', { text: t('alerts.evidence') }),
      h(
        'dl',
        {},
        entries.map(([k, v]) => [
          h('dt', { text: k.startsWith('Vehicle.') ? t('signal.' + k) : k }),
          h('dd', { text: typeof v === 'object' ? JSON.stringify(v) : String(v) }),
        ]),
      ),
    );
  }

  function auditLine(p) {
    if (p.status === 'resolved' && p.resolvedBy)
      return t('audit.resolved', { by: p.resolvedBy, outcome: p.outcome ? t('outcome.' + p.outcome) : '' });
    if (p.acknowledgedBy) return t('audit.ack', { by: p.acknowledgedBy });
    return null;
  }

  function alertItem(p, opts) {
    const v = state.vehicles.get(p.vin);
    const canAck = p.status === 'open' || p.status === 'delivered';
    const canResolve = ACTIVE.includes(p.status);
    const audit = auditLine(p);
    return h(
      'li',
      {
        class: 'alert sev-' + p.severity + (state.fresh.has(p.id) ? ' is-fresh' : '') + (canResolve ? '' : ' is-closed'),
        'data-testid': 'alert-item',
        'data-prompt-id': p.id,
        'data-status': p.status,
      },
      h(
        'div',
        { class: 'alert-main' },
        h(
          'div',
          { class: 'alert-head' },
          h('span', { class: 'badge badge-sev sev-' + p.severity, 'data-testid': 'alert-severity', text: t('severity.' + p.severity) }),
          h('span', { class: 'alert-kind', text: t('kind.' + p.kind) }),
          state.fresh.has(p.id) ? h('span', { class: 'badge badge-new', text: t('alerts.new') }) : null,
          h('span', {
            class: 'alert-age',
            'data-testid': 'alert-age',
            'data-at': p.createdAt,
            title: fmtTime(p.createdAt),
            text: age(p.createdAt),
          }),
        ),
        h('div', { class: 'alert-title', 'data-testid': 'alert-title', text: p.title }),
        h('div', { class: 'alert-body', text: p.body }),
        h(
          'div',
          { class: 'alert-meta' },
          opts && opts.hideVehicle
            ? null
            : h('a', { class: 'vin', href: '#/vehicle/' + p.vin, 'data-testid': 'vehicle-link', text: p.vin }),
          opts && opts.hideVehicle ? null : v ? h('span', { class: 'muted', text: v.model }) : null,
          h('span', { class: 'badge badge-status st-' + p.status, 'data-testid': 'alert-status', text: t('status.' + p.status) }),
          audit ? h('span', { class: 'muted audit', 'data-testid': 'alert-audit', text: audit }) : null,
          p.note ? h('span', { class: 'muted note', text: '“' + p.note + '”' }) : null,
        ),
        evidenceList(p.evidence),
      ),
      h(
        'div',
        { class: 'alert-actions' },
        canAck
          ? h('button', { type: 'button', class: 'btn', 'data-testid': 'ack-button', onclick: () => ack(p), text: t('action.ack') })
          : null,
        canResolve
          ? h('button', {
              type: 'button',
              class: 'btn btn-primary',
              'data-testid': 'resolve-button',
              onclick: () => openResolve(p),
              text: t('action.resolve'),
            })
          : null,
      ),
    );
  }

  function renderAlerts() {
    const scoped = [...state.prompts.values()].filter(inScope);
    renderCounters(scoped.filter((p) => ACTIVE.includes(p.status)));
    const list = scoped
      .filter(passesFilter)
      .sort(
        (a, b) =>
          (state.filter === 'active' ? SEVERITY_RANK[a.severity] - SEVERITY_RANK[b.severity] : 0) ||
          (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0),
      );
    $('alert-list').replaceChildren(...list.map((p) => alertItem(p)));
    for (const b of document.querySelectorAll('[data-filter]')) b.setAttribute('aria-selected', String(b.dataset.filter === state.filter));
    showNotice(!state.loaded ? t('alerts.loading') : list.length ? '' : t('alerts.empty'));
  }

  // ---- actions ----

  /** An optional display name: who acted is the signed-in principal, recorded by the server. */
  function displayName() {
    return $('advisor-name').value.trim() || undefined;
  }

  async function ack(p) {
    try {
      const res = await api('/api/v1/prompts/' + encodeURIComponent(p.id) + '/ack', { method: 'POST', body: { by: displayName() } });
      state.fresh.delete(p.id);
      upsert(res.prompt, false);
    } catch (e) {
      toast(t('action.failed', { msg: e.message }), 'error');
      if (e.status === 409) refreshOne(p.id);
    }
  }

  function openResolve(p) {
    state.pending = p;
    $('resolve-prompt-title').textContent = p.title + ' · ' + p.vin;
    $('resolve-outcome').value = 'booked';
    $('resolve-note').value = '';
    $('resolve-dialog').showModal();
  }

  async function submitResolve() {
    const p = state.pending;
    state.pending = null;
    if (!p) return;
    const body = { by: displayName(), outcome: $('resolve-outcome').value };
    const note = $('resolve-note').value.trim();
    if (note) body.note = note;
    try {
      const res = await api('/api/v1/prompts/' + encodeURIComponent(p.id) + '/resolve', { method: 'POST', body });
      state.fresh.delete(p.id);
      upsert(res.prompt, false);
    } catch (e) {
      toast(t('action.failed', { msg: e.message }), 'error');
      if (e.status === 409) refreshOne(p.id);
    }
  }

  async function refreshOne(id) {
    try {
      upsert(await api('/api/v1/prompts/' + encodeURIComponent(id)), false);
    } catch {
      /* gone: leave the list as is */
    }
  }

  // ---- routing and wiring ----

  function route() {
    const m = /^#\/vehicle\/([A-HJ-NPR-Z0-9]{17})$/.exec(location.hash);
    $('view-alerts').hidden = !!m;
    $('view-vehicle').hidden = !m;
    if (m) window.OdoVehicle.show(m[1]);
    else window.OdoVehicle.hide();
  }

  function setLang(lang) {
    state.lang = lang;
    store.set('lang', lang);
    applyStaticText();
    renderDealerPicker();
    renderAlerts();
    window.OdoVehicle.rerender();
  }

  function wire() {
    $('dealer-picker').addEventListener('change', (e) => {
      state.dealer = e.target.value;
      store.set('dealer', state.dealer);
      state.loaded = false;
      state.prompts = new Map();
      state.fresh.clear();
      renderAlerts();
      connectStream();
    });
    // New vehicles (and so new dealers) appear without a reload.
    $('dealer-picker').addEventListener('focus', () => {
      loadVehicles().catch(() => {});
    });
    $('advisor-name').value = store.get('advisor', '');
    $('advisor-name').addEventListener('change', (e) => store.set('advisor', e.target.value.trim()));
    $('advisor-only').checked = state.advisorOnly;
    $('advisor-only').addEventListener('change', (e) => {
      state.advisorOnly = e.target.checked;
      store.set('advisorOnly', state.advisorOnly ? '1' : '0');
      loadPrompts();
    });
    for (const b of document.querySelectorAll('[data-filter]'))
      b.addEventListener('click', () => {
        state.filter = b.dataset.filter;
        renderAlerts();
      });
    for (const b of document.querySelectorAll('[data-lang]')) b.addEventListener('click', () => setLang(b.dataset.lang));
    $('resolve-form').addEventListener('submit', (e) => {
      e.preventDefault();
      $('resolve-dialog').close();
      submitResolve();
    });
    $('resolve-cancel').addEventListener('click', () => {
      state.pending = null;
      $('resolve-dialog').close();
    });
    window.addEventListener('hashchange', () => state.principal && route());
    $('signin-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const key = $('signin-key').value.trim();
      if (!key) return;
      signInWith(key).catch((err) => showSignIn(t('signin.failed', { msg: err.message })));
    });
    $('signin-oidc').addEventListener('click', () => startOidc().catch((err) => showSignIn(t('signin.failed', { msg: err.message }))));
    $('sign-out').addEventListener('click', () => {
      api('/api/v1/session', { method: 'DELETE' })
        .catch(() => {})
        .then(() => signedOut());
    });
    // Ages ("5 min ago") tick without re-rendering the list.
    window.setInterval(() => {
      for (const el of document.querySelectorAll('[data-at]')) el.textContent = age(el.dataset.at);
    }, 30_000);
  }

  /** Signed in: load what this principal may see and go live. */
  async function enter() {
    $('view-alerts').hidden = false;
    renderAlerts();
    try {
      await loadVehicles();
    } catch (e) {
      showNotice(t('alerts.error', { msg: e.message }));
    }
    connectStream();
    route();
  }

  async function start() {
    window.OdoVehicle.init({ h, api, t, age, fmtTime, alertItem, toast, state });
    applyStaticText();
    wire();
    const params = new URLSearchParams(location.search);
    if (params.get('code') && signInOptions().oidc) {
      try {
        await finishOidc(params.get('code'), params.get('state'));
      } catch (err) {
        showSignIn(t('signin.failed', { msg: err.message }));
      }
      return;
    }
    try {
      signedIn(await api('/api/v1/session'));
    } catch {
      showSignIn();
      return;
    }
    await enter();
  }

  start();
})();
