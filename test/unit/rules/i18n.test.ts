import { describe, expect, it } from 'vitest';
import { LOCALES } from '../../../proto/domain.js';
import { renderPrompt } from '../../../rules/i18n/index.js';
import { RULE_PROMPT_KINDS, type PromptDraft } from '../../../rules/types.js';

// Params as the detectors produce them, per kind family (extra keys are harmless).
const PARAMS: PromptDraft['params'] = {
  soc: 12,
  rangeKm: 48,
  situation: 'dc_fast',
  sessions: 8,
  dcSharePct: 75,
  leftFullSessions: 0,
  windowDays: 30,
  voltage: 11.5,
  thresholdV: 11.8,
  soh: 78,
  reason: 'below_threshold',
  thresholdPct: 80,
  expectedPct: 95,
  code: 'P0A80',
  system: 'powertrain',
  severity: 'critical',
  dueKm: 20000,
  dueDate: '2026-04-01',
  odometer: 19200,
  remainingKm: 800,
  remainingDays: 20,
  items: ['oil', 'filters'],
  level: 1,
  monthsSince: 3,
  from: 'active',
  to: 'dormant',
  dimension: 'activity',
  days: 14,
  stage: 'active_owner',
  activity: 'dormant',
  maturity: 'skilled',
  kmPerDay: 120,
  hoursPerDay: 6,
};

describe('renderPrompt', () => {
  for (const kind of RULE_PROMPT_KINDS) {
    for (const locale of LOCALES) {
      it(`${kind} renders non-empty in ${locale}`, () => {
        const out = renderPrompt({ kind, params: PARAMS }, locale);
        expect(out.title.trim()).not.toBe('');
        expect(out.body.trim()).not.toBe('');
        expect(Array.isArray(out.actions)).toBe(true);
        for (const a of out.actions) expect(a.id && a.label).toBeTruthy();
      });
    }
  }

  it('uses the owner language and the catalogue description', () => {
    const zh = renderPrompt({ kind: 'fault.dtc', params: { code: 'P0A80', system: 'powertrain', severity: 'critical' } }, 'zh-CN');
    expect(zh.title).toContain('严重故障');
    expect(zh.body).toContain('动力电池');
    const en = renderPrompt({ kind: 'charging.low_soc', params: { soc: 18, rangeKm: 67 } }, 'en');
    expect(en.body).toContain('67 km');
    const habit = renderPrompt({ kind: 'charging.habit', params: { situation: 'left_full' } }, 'zh-CN');
    expect(habit.body).toContain('100 %');
  });

  it('renders my families without undefined placeholders for the params detectors emit', () => {
    const cases: [PromptDraft['kind'], PromptDraft['params']][] = [
      ['charging.low_soc', { soc: 19.9, rangeKm: 75 }],
      ['charging.critical_soc', { soc: 6, rangeKm: 22 }],
      ['battery.low_voltage_12v', { voltage: 11.5, thresholdV: 11.8 }],
      ['battery.soh_degraded', { soh: 88, reason: 'faster_than_expected', thresholdPct: 80, expectedPct: 95 }],
      ['battery.soh_degraded', { soh: 79, reason: 'below_threshold', thresholdPct: 80 }],
      ['fault.dtc', { code: 'P1ABC', system: 'powertrain', severity: 'warning' }],
    ];
    for (const [kind, params] of cases) {
      for (const locale of LOCALES) {
        const out = renderPrompt({ kind, params }, locale);
        expect(`${out.title} ${out.body}`).not.toContain('undefined');
      }
    }
  });

  it('throws a clear error for an unknown kind', () => {
    expect(() => renderPrompt({ kind: 'nope' as PromptDraft['kind'], params: {} }, 'en')).toThrow(/no texts for prompt kind nope/);
  });
});
