import { describe, expect, it } from 'vitest';
import { hmiActions, inQuietHours, localTime } from '../../ingest/prompts/hmi.js';
import { renderPrompt } from '../../rules/i18n/index.js';
import { isParked } from '../../proto/signals.js';
import { VSS } from '../../proto/signals.js';

describe('HMI gating helpers', () => {
  it('quiet hours across midnight (default 22:00-07:00)', () => {
    const q = { start: '22:00', end: '07:00' };
    expect(inQuietHours(21 * 60 + 59, q)).toBe(false);
    expect(inQuietHours(22 * 60, q)).toBe(true);
    expect(inQuietHours(3 * 60, q)).toBe(true);
    expect(inQuietHours(6 * 60 + 59, q)).toBe(true);
    expect(inQuietHours(7 * 60, q)).toBe(false);
    expect(inQuietHours(12 * 60, q)).toBe(false);
  });

  it('quiet hours within a day, and none when start equals end', () => {
    expect(inQuietHours(13 * 60, { start: '12:00', end: '14:00' })).toBe(true);
    expect(inQuietHours(14 * 60, { start: '12:00', end: '14:00' })).toBe(false);
    expect(inQuietHours(3 * 60, { start: '00:00', end: '00:00' })).toBe(false);
  });

  it('local time in the vehicle time zone', () => {
    const t = Date.parse('2026-03-01T15:30:00Z');
    expect(localTime(t, 'UTC')).toEqual({ minutes: 15 * 60 + 30, day: '2026-03-01' });
    expect(localTime(t, 'Asia/Shanghai')).toEqual({ minutes: 23 * 60 + 30, day: '2026-03-01' });
    expect(localTime(Date.parse('2026-03-01T17:00:00Z'), 'Asia/Shanghai').day).toBe('2026-03-02');
  });

  it('parked unless ON/START or moving', () => {
    expect(isParked(undefined)).toBe(true);
    expect(isParked({ [VSS.lowVoltageSystemState]: 'OFF' })).toBe(true);
    expect(isParked({ [VSS.lowVoltageSystemState]: 'ON' })).toBe(false);
    expect(isParked({ [VSS.lowVoltageSystemState]: 'START' })).toBe(false);
    expect(isParked({ [VSS.lowVoltageSystemState]: 'ACC', [VSS.speed]: 0 })).toBe(true);
    expect(isParked({ [VSS.speed]: 12 })).toBe(false);
  });

  it("actions are the prompt's own, as the rules rendered them, then dismiss in its locale", () => {
    const critical = renderPrompt({ kind: 'charging.critical_soc', params: { rangeKm: 12 } }, 'en');
    expect(hmiActions({ ...critical, locale: 'en' }).map((a) => a.id)).toEqual([...critical.actions.map((a) => a.id), 'dismiss']);
    // critical SOC offers roadside assistance on the screen (it did not before actions came from the rules)
    expect(critical.actions.map((a) => a.id)).toContain('roadside');
    const zh = renderPrompt({ kind: 'charging.critical_soc', params: { rangeKm: 12, soc: 4 } }, 'zh-CN');
    expect(hmiActions({ ...zh, locale: 'zh-CN' })).toEqual([...zh.actions, { id: 'dismiss', label: '忽略' }]);
    // a rule that labels its own dismiss keeps its label, once
    const own = [
      { id: 'book_service', label: 'Book' },
      { id: 'dismiss', label: 'Later' },
    ];
    expect(hmiActions({ locale: 'en', actions: own })).toEqual(own);
    // a prompt stored before actions were kept: dismiss only
    expect(hmiActions({ locale: 'en' })).toEqual([{ id: 'dismiss', label: 'Dismiss' }]);
  });
});
