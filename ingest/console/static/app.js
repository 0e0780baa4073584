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
  const { h, store } = window.OdoDom;
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
      if (res.status === 401 && !(opts && opts.bearer) && state.principal) signin.signedOut(t('signin.expired'));
      throw err;
    }
    return body;
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
    signin.renderWhoami();
  }

  function setConn(kind) {
    state.conn = kind;
    const el = $('conn');
    el.className = 'conn conn-' + kind;
    el.dataset.state = kind;
    el.querySelector('span').textContent = t(kind === 'live' ? 'conn.live' : kind === 'offline' ? 'conn.offline' : 'conn.connecting');
  }

  // ---- sign-in (signin.js) ----
  const signin = window.OdoSignIn({ $, t, state, api: (path, opts) => api(path, opts), enter: () => enter() });

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
    window.OdoCampaigns.onPrompt(p);
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
    // the server skipped a replay too long to send: reload the list instead (docs/contract.md#sse-stream)
    es.addEventListener('reset', () => loadPrompts());
    es.addEventListener('prompt', (ev) => {
      const change = JSON.parse(ev.data);
      if (inScope(change.prompt)) upsert(change.prompt, change.step === 'created');
      else window.OdoCampaigns.onPrompt(change.prompt);
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

  // one alert in a list (alerts.js); the actions are this file's
  const alertItem = window.OdoAlertItem({ h, t, age, fmtTime, state, ACTIVE, onAck: (p) => ack(p), onResolve: (p) => openResolve(p) });

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
    const c = /^#\/campaigns(?:\/(c_[0-9a-f]{16}))?$/.exec(location.hash);
    $('view-alerts').hidden = !!m || !!c;
    $('view-vehicle').hidden = !m;
    $('view-campaigns').hidden = !c;
    if (m) window.OdoVehicle.show(m[1]);
    else window.OdoVehicle.hide();
    if (c) window.OdoCampaigns.show(c[1] || null);
    else window.OdoCampaigns.hide();
  }

  function setLang(lang) {
    state.lang = lang;
    store.set('lang', lang);
    applyStaticText();
    renderDealerPicker();
    renderAlerts();
    window.OdoVehicle.rerender();
    window.OdoCampaigns.rerender();
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
      signin.signInWith(key).catch((err) => signin.showSignIn(t('signin.failed', { msg: err.message })));
    });
    $('signin-oidc').addEventListener('click', () =>
      signin.startOidc().catch((err) => signin.showSignIn(t('signin.failed', { msg: err.message }))),
    );
    $('sign-out').addEventListener('click', () => {
      api('/api/v1/session', { method: 'DELETE' })
        .catch(() => {})
        .then(() => signin.signedOut());
    });
    // Ages ("5 min ago") tick without re-rendering the list.
    window.setInterval(() => {
      for (const el of document.querySelectorAll('[data-at]')) el.textContent = age(el.dataset.at);
    }, 30_000);
  }

  /** Signed in: load what this principal may see and go live. */
  async function enter() {
    $('view-alerts').hidden = false;
    window.OdoCampaigns.renderNav();
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
    window.OdoCampaigns.init({ h, api, t, toast, state });
    applyStaticText();
    wire();
    const params = new URLSearchParams(location.search);
    if (params.get('code') && signin.signInOptions().oidc) {
      try {
        await signin.finishOidc(params.get('code'), params.get('state'));
      } catch (err) {
        signin.showSignIn(t('signin.failed', { msg: err.message }));
      }
      return;
    }
    try {
      signin.signedIn(await api('/api/v1/session'));
    } catch {
      signin.showSignIn();
      return;
    }
    await enter();
  }

  start();
})();
