// Vehicle page of the advisor console: profile, online status, lifecycle segments, latest
// readings, open alerts, service visits and the charts (vehicle-charts.js).
(function () {
  'use strict';
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
  let charts = null;
  let vin = null;
  let vehicle = null;
  let prompts = [];
  let seq = 0;

  const body = () => document.getElementById('vehicle-body');

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

  function render() {
    if (!vehicle) return;
    const { h } = ctx;
    charts.destroy();
    const mySeq = ++seq;
    body().replaceChildren(
      header(vehicle),
      h(
        'div',
        { class: 'grid' },
        profileCard(vehicle),
        segmentsCard(vehicle),
        latestCard(vehicle),
        charts.card(() => render()),
        promptsCard(),
        serviceCard(vehicle),
      ),
    );
    void charts.draw(vehicle, () => mySeq === seq);
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
    charts.destroy();
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

  window.OdoVehicle = {
    init: (c) => {
      ctx = c;
      charts = window.OdoVehicleCharts(c, fmtValue);
    },
    show,
    hide: () => {
      seq++;
      vin = null;
      vehicle = null;
      charts.destroy();
    },
    rerender: () => render(),
    onPrompt,
  };
})();
