// Campaigns page of the console (docs/contract.md#campaigns): the list with live counts, and one
// campaign's funnel as a uPlot bar chart, its per-segment table, pause / resume / cancel. Shown to
// the roles that may read campaigns (lifecycle, operator); the server refuses everyone else anyway.
(function () {
  'use strict';
  const READERS = ['operator', 'lifecycle'];
  const FUNNEL = ['targeted', 'delivered', 'shown', 'acted'];
  const COLORS = ['#94a3b8', '#2563eb', '#7c3aed', '#059669'];
  let ctx = null;
  let current = null; // null: the list; else a campaign id
  let data = null;
  let plot = null;
  let seq = 0;

  const body = () => document.getElementById('campaigns-body');
  const pct = (x) => (x === null || x === undefined ? '–' : (x * 100).toLocaleString(ctx.state.lang, { maximumFractionDigits: 1 }) + ' %');

  function canRead() {
    const p = ctx.state.principal;
    return !!p && READERS.includes(p.role);
  }

  function destroyPlot() {
    if (plot) plot.destroy();
    plot = null;
  }

  function statusChip(c) {
    return ctx.h('span', {
      class: 'cstatus cstatus-' + c.status,
      'data-testid': 'campaign-status',
      text: ctx.t('cstatus.' + c.status),
    });
  }

  function window_(c) {
    const d = (iso) => new Date(iso).toLocaleDateString(ctx.state.lang, { dateStyle: 'medium' });
    return d(c.startsAt) + ' – ' + d(c.endsAt);
  }

  function audienceText(a) {
    const { t } = ctx;
    const parts = [];
    for (const k of ['stage', 'activity', 'maturity']) if (a[k] && a[k].length) parts.push(a[k].map((v) => t('seg.' + v)).join(' / '));
    for (const k of ['model', 'powertrain', 'dealerId', 'vehicleType']) if (a[k] && a[k].length) parts.push(a[k].join(' / '));
    if (a.vins && a.vins.length) parts.push(a.vins.length + ' VIN');
    return parts.length ? parts.join(' · ') : t('campaigns.audience.all');
  }

  function renderList() {
    const { h, t } = ctx;
    const items = data ? data.items : [];
    body().replaceChildren(
      h('a', { href: '#/', class: 'back', text: t('vehicle.back') }),
      h('h2', { class: 'page-title', text: t('campaigns.title') }),
      h('p', { class: 'muted', text: t('campaigns.hint') }),
      !data
        ? h('p', { class: 'notice', text: t('campaigns.loading') })
        : !items.length
          ? h('p', { class: 'notice', 'data-testid': 'campaigns-empty', text: t('campaigns.empty') })
          : h(
              'table',
              { class: 'table', 'data-testid': 'campaign-list' },
              h(
                'thead',
                null,
                h(
                  'tr',
                  null,
                  ['col.name', 'col.status', 'col.window'].map((k) => h('th', { text: t('campaigns.' + k) })),
                  FUNNEL.map((k) => h('th', { class: 'num', text: t('funnel.' + k) })),
                  h('th', { class: 'num', text: t('campaigns.col.conversion') }),
                ),
              ),
              h(
                'tbody',
                null,
                items.map((c) =>
                  h(
                    'tr',
                    { 'data-testid': 'campaign-row', 'data-campaign-id': c.id },
                    h('td', null, h('a', { href: '#/campaigns/' + c.id, text: c.name })),
                    h('td', null, statusChip(c)),
                    h('td', { text: window_(c) }),
                    FUNNEL.map((k) => h('td', { class: 'num', 'data-testid': 'count-' + k, text: String(c.counts[k]) })),
                    h('td', { class: 'num', text: pct(c.counts.conversion) }),
                  ),
                ),
              ),
            ),
    );
  }

  function funnelChart(box, totals) {
    const { t } = ctx;
    destroyPlot();
    const xs = FUNNEL.map((_k, i) => i);
    const ys = FUNNEL.map((k) => totals[k]);
    const axis = {
      stroke: '#6b7280',
      grid: { stroke: '#eef0f4', width: 1 },
      ticks: { stroke: '#e5e7eb' },
      font: '12px system-ui, sans-serif',
    };
    plot = new window.uPlot(
      {
        width: Math.max(320, box.clientWidth),
        height: 240,
        legend: { show: false },
        cursor: { show: false },
        scales: { x: { time: false, range: [-0.5, FUNNEL.length - 0.5] }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.15)] } },
        axes: [
          Object.assign({}, axis, { splits: () => xs, values: (_u, vals) => vals.map((v) => (FUNNEL[v] ? t('funnel.' + FUNNEL[v]) : '')) }),
          Object.assign({}, axis, { size: 50 }),
        ],
        series: [
          {},
          {
            label: t('campaigns.funnel'),
            stroke: COLORS[1],
            fill: COLORS[1] + 'cc',
            width: 1,
            paths: window.uPlot.paths.bars({ size: [0.6, 120] }),
            points: { show: false },
          },
        ],
      },
      [xs, ys],
      box,
    );
  }

  async function command(c, cmd) {
    if (cmd === 'cancel' && !window.confirm(ctx.t('campaigns.cancelConfirm'))) return;
    try {
      await ctx.api('/api/v1/campaigns/' + encodeURIComponent(c.id) + '/' + cmd, { method: 'POST' });
      await load();
    } catch (e) {
      ctx.toast(ctx.t('action.failed', { msg: e.message }), 'error');
    }
  }

  function renderOne() {
    const { h, t } = ctx;
    const { campaign: c, stats: s } = data;
    const lang = ctx.state.lang;
    const msg = c.message[lang] || c.message.en || c.message['zh-CN'];
    const can = ['active', 'scheduled', 'paused'].includes(c.status);
    const cap = c.frequencyCap
      ? t('campaigns.cap.n', { n: c.frequencyCap.perVehicle, d: c.frequencyCap.perDays })
      : t('campaigns.cap.once');
    body().replaceChildren(
      h('a', { href: '#/campaigns', class: 'back', 'data-testid': 'campaigns-back', text: t('campaigns.back') }),
      h('h2', { class: 'page-title', 'data-testid': 'campaign-name' }, c.name, ' ', statusChip(c)),
      h(
        'div',
        { class: 'grid' },
        h(
          'section',
          { class: 'card card-span2', 'data-testid': 'campaign-funnel' },
          h('h3', { class: 'card-title', text: t('campaigns.funnel') }),
          h('div', { class: 'chart-box', id: 'campaign-funnel-chart', 'data-testid': 'funnel-chart' }),
          h(
            'dl',
            { class: 'kv funnel-kv' },
            [...FUNNEL, 'pending', 'dismissed', 'withdrawn'].map((k) => [
              h('dt', { text: t('funnel.' + k) }),
              h('dd', { 'data-testid': 'funnel-' + k, text: String(s.totals[k]) }),
            ]),
            h('dt', { text: t('funnel.conversion') }),
            h('dd', { 'data-testid': 'funnel-conversion', text: pct(s.totals.conversion) }),
          ),
        ),
        h(
          'section',
          { class: 'card', 'data-testid': 'campaign-details' },
          h('h3', { class: 'card-title', text: t('campaigns.message') }),
          msg ? h('p', null, h('b', { text: msg.title })) : null,
          msg ? h('p', { class: 'muted', text: msg.body }) : null,
          h(
            'dl',
            { class: 'kv' },
            [
              [t('campaigns.audience'), audienceText(c.audience)],
              [t('campaigns.col.window'), window_(c)],
              [t('campaigns.cap'), cap],
              [t('campaigns.priority'), String(c.priority)],
              [t('campaigns.quiet'), t(c.quietHoursRespected ? 'campaigns.quiet.yes' : 'campaigns.quiet.no')],
            ].map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]),
          ),
          can
            ? h(
                'div',
                { class: 'dialog-actions' },
                c.state === 'paused'
                  ? h('button', {
                      type: 'button',
                      class: 'btn',
                      'data-testid': 'campaign-resume',
                      text: t('campaigns.resume'),
                      onclick: () => command(c, 'resume'),
                    })
                  : h('button', {
                      type: 'button',
                      class: 'btn',
                      'data-testid': 'campaign-pause',
                      text: t('campaigns.pause'),
                      onclick: () => command(c, 'pause'),
                    }),
                h('button', {
                  type: 'button',
                  class: 'btn',
                  'data-testid': 'campaign-cancel',
                  text: t('campaigns.cancel'),
                  onclick: () => command(c, 'cancel'),
                }),
              )
            : null,
        ),
        h(
          'section',
          { class: 'card card-wide', 'data-testid': 'campaign-segments' },
          h('h3', { class: 'card-title', text: t('campaigns.bySegment') }),
          h(
            'table',
            { class: 'table' },
            h(
              'thead',
              null,
              h(
                'tr',
                null,
                h('th', { text: t('campaigns.segment') }),
                FUNNEL.map((k) => h('th', { class: 'num', text: t('funnel.' + k) })),
                h('th', { class: 'num', text: t('funnel.conversion') }),
              ),
            ),
            h(
              'tbody',
              null,
              s.segments.map((g) =>
                h(
                  'tr',
                  { 'data-testid': 'segment-row' },
                  h('td', { text: [g.stage, g.activity, g.maturity].map((v) => t('seg.' + v)).join(' · ') }),
                  FUNNEL.map((k) => h('td', { class: 'num', text: String(g[k]) })),
                  h('td', { class: 'num', text: pct(g.conversion) }),
                ),
              ),
            ),
          ),
        ),
      ),
    );
    funnelChart(document.getElementById('campaign-funnel-chart'), s.totals);
  }

  function render() {
    if (!ctx) return;
    destroyPlot();
    if (current === null) renderList();
    else if (data && data.campaign) renderOne();
    else body().replaceChildren(ctx.h('p', { class: 'notice', text: ctx.t('campaigns.loading') }));
  }

  async function load() {
    const mine = ++seq;
    const id = current;
    try {
      const next =
        id === null
          ? await ctx.api('/api/v1/campaigns?limit=100')
          : {
              campaign: await ctx.api('/api/v1/campaigns/' + encodeURIComponent(id)),
              stats: await ctx.api('/api/v1/campaigns/' + encodeURIComponent(id) + '/stats'),
            };
      if (mine !== seq) return;
      data = next;
      render();
    } catch (e) {
      if (mine !== seq) return;
      body().replaceChildren(
        ctx.h('p', { class: 'notice', 'data-testid': 'campaigns-error', text: ctx.t('campaigns.error', { msg: e.message }) }),
      );
    }
  }

  window.OdoCampaigns = {
    init(c) {
      ctx = c;
    },
    /** The nav link only for roles that may read campaigns. */
    renderNav() {
      document.getElementById('nav-campaigns').hidden = !canRead();
    },
    show(id) {
      current = id;
      data = null;
      render();
      load();
    },
    hide() {
      seq++;
      destroyPlot();
      current = null;
      data = null;
    },
    rerender: render,
    /** A campaign prompt changed (stream): its numbers moved; reload what is shown. */
    onPrompt(p) {
      if (!ctx || document.getElementById('view-campaigns').hidden || p.kind !== 'campaign.message') return;
      if (current === null || (p.evidence && p.evidence.campaignId === current)) load();
    },
  };
})();
