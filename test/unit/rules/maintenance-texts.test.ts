import { describe, expect, it } from 'vitest';
import { renderPrompt } from '../../../rules/i18n/index.js';
import { maintenanceTexts, serviceItemLabel } from '../../../rules/i18n/maintenance.js';
import { LOCALES } from '../../../proto/domain.js';

const items = ['engine_oil', 'oil_filter', 'dtc:P0A80', 'battery_12v_test'];

describe('maintenance texts', () => {
  it('has en and zh-CN for every maintenance kind', () => {
    expect(Object.keys(maintenanceTexts).sort()).toEqual([
      'maintenance.due',
      'maintenance.followup',
      'maintenance.lapsed',
      'maintenance.overdue',
      'maintenance.upcoming',
    ]);
  });

  it('interpolates distance, dates and the localised item list in both languages', () => {
    const params = {
      dueKm: 5000,
      dueDate: '2026-07-15',
      items,
      cycle: 0,
      service: 'first',
      odometer: 4000,
      kmRemaining: 1000,
      daysRemaining: 41,
    };
    const en = renderPrompt({ kind: 'maintenance.upcoming', params }, 'en');
    expect(en.title).toBe('Your first service is coming up');
    expect(en.body).toContain('1,000 km or 41 days');
    expect(en.body).toContain('5,000 km or on 2026-07-15');
    expect(en.body).toContain('engine oil change, oil filter, diagnose fault code P0A80, 12 V battery test');
    expect(en.actions).toEqual([{ id: 'book_service', label: 'Book a service' }]);
    const zh = renderPrompt({ kind: 'maintenance.upcoming', params }, 'zh-CN');
    expect(zh.title).toBe('首次保养即将到期');
    expect(zh.body).toContain('1,000 公里或 41 天');
    expect(zh.body).toContain('更换机油、更换机油滤清器、故障码 P0A80 诊断');
    expect(zh.actions).toEqual([{ id: 'book_service', label: '预约保养' }]);
  });

  it.each(LOCALES)('renders every step in %s with its own numbers', (locale) => {
    const base = { dueKm: 15100, dueDate: '2027-06-01', items, cycle: 1, service: 'regular', odometer: 16200 };
    const overdue = renderPrompt({ kind: 'maintenance.overdue', params: { ...base, kmPast: 1100, daysPast: 12 } }, locale);
    expect(overdue.body).toContain('1,100');
    expect(overdue.body).toContain('12');
    const due = renderPrompt({ kind: 'maintenance.due', params: base }, locale);
    expect(due.body).toContain('15,100');
    const titles = [1, 2, 3].map((level) =>
      renderPrompt(
        { kind: 'maintenance.lapsed', params: { ...base, level, months: [3, 5, 7][level - 1], dueReached: '2027-06-01' } },
        locale,
      ),
    );
    expect(titles.map((t) => t.title).every((t, i) => t.includes(String([3, 5, 7][i])))).toBe(true);
    expect(new Set(titles.map((t) => t.body)).size).toBe(3);
    const f = renderPrompt(
      { kind: 'maintenance.followup', params: { serviceDate: '2026-06-01', odometer: 5100, items: ['engine_oil'] } },
      locale,
    );
    expect(f.body).toContain('2026-06-01');
    expect(f.body).toContain('5,100');
    for (const t of [overdue, due, ...titles, f]) {
      expect(t.title.length).toBeLessThanOrEqual(200);
      expect(t.body).not.toMatch(/undefined|NaN|\[object/);
    }
  });

  it('labels unknown items readably', () => {
    expect(serviceItemLabel('spark_plugs', 'en')).toBe('spark plugs');
    expect(serviceItemLabel('dtc:U0100', 'zh-CN')).toBe('故障码 U0100 诊断');
  });
});
