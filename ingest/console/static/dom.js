// Console helpers without state: a tiny DOM builder and remembered settings in localStorage.
(function () {
  'use strict';
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

  window.OdoDom = { h, store };
})();
