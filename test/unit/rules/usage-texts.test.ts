import { describe, expect, it } from 'vitest';
import { LOCALES } from '../../../proto/domain.js';
import { renderPrompt } from '../../../rules/i18n/index.js';
import { segmentLabel, usageTexts } from '../../../rules/i18n/usage.js';

describe('usage texts', () => {
  it('has en and zh-CN for every usage kind', () => {
    expect(Object.keys(usageTexts).sort()).toEqual(['usage.dormant_vehicle', 'usage.segment_changed', 'usage.utilisation']);
  });

  it('describes only the dimensions that changed', () => {
    const params = {
      stage: 'break_in',
      activity: 'declining',
      maturity: 'novice',
      fromStage: 'new_owner',
      fromActivity: 'active',
      fromMaturity: 'novice',
      changed: ['stage', 'activity'],
    };
    const en = renderPrompt({ kind: 'usage.segment_changed', params }, 'en');
    expect(en.title).toBe('Segment changed: break-in / declining / novice');
    expect(en.body).toBe('stage: new owner → break-in; activity: active → declining.');
    const zh = renderPrompt({ kind: 'usage.segment_changed', params }, 'zh-CN');
    expect(zh.body).toBe('生命周期: 新车主 → 磨合期；活跃度: 活跃 → 活跃度下降。');
    expect(segmentLabel('none', 'en')).toBe('none');
  });

  it.each(LOCALES)('renders dormant_vehicle and utilisation in %s with their numbers', (locale) => {
    const d = renderPrompt(
      { kind: 'usage.dormant_vehicle', params: { parkedDays: 14, lastDriven: '2026-01-15', voltage12v: 12.3 } },
      locale,
    );
    expect(d.body).toContain('14');
    expect(d.body).toContain('2026-01-15');
    expect(d.body).toContain('12.3');
    const noVolts = renderPrompt({ kind: 'usage.dormant_vehicle', params: { parkedDays: 14, lastDriven: '2026-01-15' } }, locale);
    expect(noVolts.body).not.toMatch(/undefined/);
    const u = renderPrompt({ kind: 'usage.utilisation', params: { date: '2026-01-15', km: 200, hours: 2.5 } }, locale);
    expect(u.body).toContain('200');
    expect(u.body).toContain('2.5');
  });
});
