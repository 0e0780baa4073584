// One alert as the console lists it (the alert list and the vehicle page): severity, kind, age,
// texts, vehicle, status, who acted, evidence, and the acknowledge / close buttons.
(function () {
  'use strict';
  window.OdoAlertItem = function ({ h, t, age, fmtTime, state, ACTIVE, onAck, onResolve }) {
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
            ? h('button', { type: 'button', class: 'btn', 'data-testid': 'ack-button', onclick: () => onAck(p), text: t('action.ack') })
            : null,
          canResolve
            ? h('button', {
                type: 'button',
                class: 'btn btn-primary',
                'data-testid': 'resolve-button',
                onclick: () => onResolve(p),
                text: t('action.resolve'),
              })
            : null,
        ),
      );
    }

    return alertItem;
  };
})();
