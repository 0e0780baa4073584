// The vehicle page's charts (vehicle.js): uPlot charts of odometer, charge and 12 V voltage over
// a chosen range, anchored on the vehicle's last report.
(function () {
  'use strict';
  window.OdoVehicleCharts = function (ctx, fmtValue) {
    const RANGES = { '7d': { ms: 7 * 864e5, every: '1h' }, '30d': { ms: 30 * 864e5, every: '6h' }, '90d': { ms: 90 * 864e5, every: '1d' } };
    const CHARTS = [
      { key: 'odometer', signal: 'Vehicle.TraveledDistance', color: '#2563eb', digits: 0 },
      { key: 'soc', signal: 'Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed', color: '#059669', digits: 0 },
      { key: 'voltage12v', signal: 'Vehicle.LowVoltageBattery.CurrentVoltage', color: '#d97706', digits: 2 },
    ];
    let range = '30d';
    let charts = [];

    function destroy() {
      for (const c of charts) c.plot.destroy();
      charts = [];
    }

    function card(onRange) {
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
              onRange();
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

    async function draw(v, current) {
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
          if (!current() || !box) return;
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

    window.addEventListener('resize', () => {
      for (const c of charts) c.plot.setSize({ width: Math.max(260, c.box.clientWidth), height: 190 });
    });

    return { card, draw, destroy };
  };
})();
