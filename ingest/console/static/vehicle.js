// Vehicle page of the advisor console: profile, online status, lifecycle segments, latest
// readings, open alerts, service visits and uPlot charts of odometer, charge and 12 V voltage.
(function () {
  'use strict';
  const RANGES = { '7d': { ms: 7 * 864e5, every: '1h' }, '30d': { ms: 30 * 864e5, every: '6h' }, '90d': { ms: 90 * 864e5, every: '1d' } };
  const CHARTS = [
    { key: 'odometer', signal: 'Vehicle.TraveledDistance', color: '#2563eb', digits: 0 },
    { key: 'soc', signal: 'Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed', color: '#059669', digits: 0 },
    { key: 'voltage12v', signal: 'Vehicle.LowVoltageBattery.CurrentVoltage', color: '#d97706', digits: 2 },
  ];
  const LATEST = [
    ['Vehicle.TraveledDistance', 'km', 0],
    ['Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed', '%', 0],
    ['Vehicle.Powertrain.TractionBattery.StateOfHealth', '%', 0],
    ['Vehicle.LowVoltageBattery.CurrentVoltage', 'V', 2],
    ['Vehicle.Powertrain.FuelSystem.RelativeLevel', '%', 0],
    ['Vehicle.Speed', 'km/h', 0],
    ['Vehicle.LowVoltageSystemState', '', 0],
    ['Vehicle.Powertrain.TractionBattery.Charging.IsCharging', '', 0],
  ];
  let ctx = null;
  let vin = null;
  let vehicle = null;
  let prompts = [];
  let range = '30d';
  let charts = [];
  let seq = 0;

  const body = () => document.getElementById('vehicle-body');

  function destroyCharts() {
    for (const c of charts) c.plot.destroy();
    charts = [];
  }

  function card(title, testid, ...children) {
    const { h } = ctx;
    return h('section', { class: 'card', 'data-testid': testid }, h('h3', { class: 'card-title', text: title }), ...children);
  }

  function kv(rows) {
    const { h } = ctx;
    return h(
      'dl',
      { class: 'kv' },
      rows.map(([k, v, id]) => [h('dt', { text: k }), h('dd', { 'data-testid': id, text: v })]),
    );
  }

  function fmtValue(v, unit, digits) {
    const { t } = ctx;
    if (typeof v === 'boolean') return t('bool.' + v);
    if (typeof v === 'number') return v.toLocaleString(ctx.state.lang, { maximumFractionDigits: digits }) + (unit ? ' ' + unit : '');
    return String(v);
  }

  function header(v) {
    const { h, t, fmtTime } = ctx;
    const on = v.online && v.online.online;
    return h(
      'div',
      { class: 'vehicle-header' },
      h(
        'div',
        {},
        h('h1', { 'data-testid': 'vehicle-vin', text: v.vin }),
        h('p', { class: 'muted', text: v.model + ' · ' + v.powertrain + ' · ' + v.dealerId }),
      ),
      h(
        'span',
        { class: 'online ' + (on ? 'is-online' : 'is-offline'), 'data-testid': 'vehicle-online' },
        h('i'),
        t(on ? 'vehicle.online' : 'vehicle.offline'),
        v.online && v.online.since ? h('small', { text: ' · ' + t('vehicle.since', { t: fmtTime(v.online.since) }) }) : null,
        v.online && v.online.agentVersion ? h('small', { text: ' · ' + t('vehicle.agent', { v: v.online.agentVersion }) }) : null,
      ),
    );
  }

  function profileCard(v) {
    const { t } = ctx;
    return card(
      t('vehicle.profile'),
      'vehicle-profile',
      kv([
        [t('vehicle.model'), v.model, 'vehicle-model'],
        [t('vehicle.powertrain'), v.powertrain],
        [t('vehicle.deliveryDate'), v.deliveryDate.slice(0, 10)],
        [t('vehicle.dealer'), v.dealerId],
        [t('vehicle.locale'), v.locale],
        [t('vehicle.type'), t('vehicle.type.' + v.vehicleType)],
      ]),
    );
  }

  function segmentsCard(v) {
    const { h, t } = ctx;
    const s = v.segments;
    const content = s
      ? h(
          'div',
          { class: 'chips' },
          ['stage', 'activity', 'maturity'].map((k) =>
            h(
              'div',
              { class: 'chip chip-' + k },
              h('small', { text: t('vehicle.' + k) }),
              h('b', { 'data-testid': 'segment-' + k, text: t('seg.' + s[k]) }),
            ),
          ),
        )
      : h('p', { class: 'muted', text: t('vehicle.noSegments') });
    return card(t('vehicle.segments'), 'vehicle-segments', content);
  }

  function latestCard(v) {
    const { h, t, age } = ctx;
    if (!v.latest)
      return card(
        t('vehicle.latest'),
        'vehicle-latest',
        h('p', { class: 'muted', text: t(v.latestError ? 'vehicle.latestError' : 'vehicle.noLatest') }),
      );
    const rows = LATEST.filter(([p]) => v.latest.signals[p] !== undefined).map(([p, unit, digits]) => [
      t('signal.' + p),
      fmtValue(v.latest.signals[p], unit, digits),
    ]);
    return card(
      t('vehicle.latest'),
      'vehicle-latest',
      kv(rows),
      h('p', { class: 'muted small', text: t('vehicle.lastSeen', { t: age(v.latest.at) }) }),
    );
  }

  function serviceForm(v) {
    const { h, t } = ctx;
    const odo =
      v.latest && typeof v.latest.signals['Vehicle.TraveledDistance'] === 'number'
        ? Math.round(v.latest.signals['Vehicle.TraveledDistance'])
        : '';
    const field = (label, input) => h('label', { class: 'stack' }, h('span', { text: label }), input);
    return h(
      'form',
      {
        class: 'service-form',
        'data-testid': 'service-form',
        onsubmit: (e) => {
          e.preventDefault();
          saveService(v, e.target);
        },
      },
      field(
        t('service.date'),
        h('input', {
          type: 'date',
          name: 'date',
          required: true,
          value: new Date().toISOString().slice(0, 10),
          'data-testid': 'service-date',
        }),
      ),
      field(
        t('service.odometer'),
        h('input', { type: 'number', name: 'odometer', required: true, min: 0, step: 1, value: odo, 'data-testid': 'service-odometer' }),
      ),
      field(
        t('service.items'),
        h('input', {
          type: 'text',
          name: 'items',
          maxlength: 1000,
          placeholder: t('service.itemsPlaceholder'),
          'data-testid': 'service-items',
        }),
      ),
      h('button', { type: 'submit', class: 'btn btn-primary', 'data-testid': 'service-save', text: t('service.save') }),
    );
  }

  async function saveService(v, form) {
    const { api, t, toast } = ctx;
    const f = form.elements;
    const items = f
      .namedItem('items')
      .value.split(/[,，;；]/)
      .map((s) => s.trim())
      .filter(Boolean);
    try {
      await api('/api/v1/vehicles/' + v.vin + '/service-records', {
        method: 'POST',
        body: { date: f.namedItem('date').value, odometer: Number(f.namedItem('odometer').value), items },
      });
      toast(t('service.saved'));
      show(v.vin);
    } catch (e) {
      toast(t('action.failed', { msg: e.message }), 'error');
    }
  }

  function serviceCard(v) {
    const { h, t } = ctx;
    const recs = v.serviceRecords || [];
    return card(
      t('vehicle.service'),
      'vehicle-service',
      recs.length
        ? h(
            'ul',
            { class: 'plain', 'data-testid': 'service-list' },
            recs
              .slice(-5)
              .reverse()
              .map((r) =>
                h(
                  'li',
                  {},
                  h('b', { text: r.date.slice(0, 10) }),
                  ' · ' + fmtValue(r.odometer, 'km', 0) + (r.items.length ? ' · ' + r.items.join(', ') : ''),
                ),
              ),
          )
        : h('p', { class: 'muted', text: t('vehicle.noService') }),
      serviceForm(v),
    );
  }

  function promptsCard() {
    const { h, t, alertItem } = ctx;
    const open = prompts.filter((p) => ['open', 'delivered', 'acknowledged'].includes(p.status));
    const c = card(
      t('vehicle.openPrompts', { n: open.length }),
      'vehicle-prompts',
      open.length
        ? h(
            'ul',
            { class: 'alert-list compact' },
            open.map((p) => alertItem(p, { hideVehicle: true })),
          )
        : h('p', { class: 'muted', text: t('vehicle.noOpenPrompts') }),
    );
    c.classList.add('card-span2');
    return c;
  }

  function chartsCard() {
    const { h, t } = ctx;
    const tabs = h(
      'div',
      { class: 'tabs small', 'data-testid': 'chart-range' },
      Object.keys(RANGES).map((r) =>
        h('button', {
          type: 'button',
          'aria-selected': String(r === range),
          'data-range': r,
          text: t('range.' + r),
          onclick: () => {
            range = r;
            render();
          },
        }),
      ),
    );
    return h(
      'section',
      { class: 'card card-wide', 'data-testid': 'vehicle-charts' },
      h('div', { class: 'card-head' }, h('h3', { class: 'card-title', text: t('vehicle.charts') }), tabs),
      h(
        'div',
        { class: 'charts' },
        CHARTS.map((c) =>
          h(
            'figure',
            { class: 'chart' },
            h('figcaption', { text: t('chart.' + c.key) }),
            h('div', { class: 'chart-box', id: 'chart-' + c.key, 'data-testid': 'chart-' + c.key }),
          ),
        ),
      ),
    );
  }

  async function drawCharts(v, mySeq) {
    const { api, t, h } = ctx;
    // Anchor on the vehicle's last report: replays and simulations run on their own clock.
    const to = v.latest ? v.latest.ts + 1 : Date.now();
    const from = to - RANGES[range].ms;
    await Promise.all(
      CHARTS.map(async (c) => {
        const box = document.getElementById('chart-' + c.key);
        let points = [];
        try {
          const q = new URLSearchParams({ signal: c.signal, from: String(from), to: String(to), every: RANGES[range].every });
          points = (await api('/api/v1/vehicles/' + v.vin + '/telemetry?' + q)).points.filter((p) => typeof p.value === 'number');
        } catch {
          points = [];
        }
        if (mySeq !== seq || !box) return;
        if (!points.length) {
          box.replaceChildren(h('p', { class: 'chart-empty', 'data-testid': 'chart-empty', text: t('chart.noData') }));
          return;
        }
        box.replaceChildren();
        const grid = { stroke: '#eef0f4', width: 1 };
        const axis = { stroke: '#6b7280', grid, ticks: { stroke: '#e5e7eb' }, font: '11px system-ui, sans-serif' };
        const plot = new uPlot(
          {
            width: Math.max(260, box.clientWidth),
            height: 190,
            legend: { show: false },
            cursor: { drag: { x: false, y: false } },
            scales: { x: { time: true } },
            axes: [axis, Object.assign({}, axis, { size: 56, values: (_u, vals) => vals.map((x) => fmtValue(x, '', c.digits)) })],
            series: [
              {},
              {
                label: t('chart.' + c.key),
                stroke: c.color,
                width: 2,
                fill: c.color + '1f',
                spanGaps: true,
                points: { show: points.length < 40 },
              },
            ],
          },
          [points.map((p) => p.ts / 1000), points.map((p) => p.value)],
          box,
        );
        charts.push({ plot, box });
      }),
    );
  }

  function render() {
    if (!vehicle) return;
    const { h } = ctx;
    destroyCharts();
    const mySeq = ++seq;
    body().replaceChildren(
      header(vehicle),
      h(
        'div',
        { class: 'grid' },
        profileCard(vehicle),
        segmentsCard(vehicle),
        latestCard(vehicle),
        chartsCard(),
        promptsCard(),
        serviceCard(vehicle),
      ),
    );
    drawCharts(vehicle, mySeq);
  }

  async function loadPrompts(v) {
    const page = await ctx.api('/api/v1/prompts?limit=100&vin=' + encodeURIComponent(v));
    prompts = page.items;
  }

  async function show(v) {
    const { h, t, api } = ctx;
    const mySeq = ++seq;
    vin = v;
    vehicle = null;
    destroyCharts();
    body().replaceChildren(h('p', { class: 'muted', text: t('vehicle.loading') }));
    try {
      const [detail] = await Promise.all([api('/api/v1/vehicles/' + encodeURIComponent(v)), loadPrompts(v)]);
      if (mySeq !== seq) return;
      vehicle = detail;
      render();
    } catch (e) {
      if (mySeq !== seq) return;
      body().replaceChildren(
        h('p', { class: 'notice', 'data-testid': 'vehicle-error', text: e.status === 404 ? t('vehicle.notFound', { vin: v }) : e.message }),
      );
    }
  }

  function onPrompt(p) {
    if (!vehicle || p.vin !== vin) return;
    const i = prompts.findIndex((x) => x.id === p.id);
    if (i >= 0) prompts[i] = p;
    else prompts.unshift(p);
    const old = document.querySelector('[data-testid="vehicle-prompts"]');
    if (old) old.replaceWith(promptsCard());
  }

  window.addEventListener('resize', () => {
    for (const c of charts) c.plot.setSize({ width: Math.max(260, c.box.clientWidth), height: 190 });
  });

  window.OdoVehicle = {
    init: (c) => {
      ctx = c;
    },
    show,
    hide: () => {
      seq++;
      vin = null;
      vehicle = null;
      destroyCharts();
    },
    rerender: () => render(),
    onPrompt,
  };
})();
