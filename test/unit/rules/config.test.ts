import { describe, expect, it } from 'vitest';
import { DEFAULT_RULES_CONFIG, deepMerge, parseRulesConfig, resolveModelConfig } from '../../../rules/config.js';

describe('rule configuration', () => {
  it('has the docs/domain.md defaults', () => {
    const d = DEFAULT_RULES_CONFIG.defaults;
    expect(d.charging).toMatchObject({ lowSocPct: 20, criticalSocPct: 7, rearmSocPct: 30 });
    expect(d.charging.habit.windowDays).toBe(30);
    expect(d.battery.lowVoltage12v.thresholdV).toBe(11.8);
    expect(d.battery.soh.thresholdPct).toBe(80);
    expect(d.fault).toEqual({ severityOverrides: {}, ignore: [] });
    expect(d.maintenance).toBeDefined();
    expect(d.usage).toBeDefined();
    expect(DEFAULT_RULES_CONFIG.models).toEqual({});
  });

  it('parses {} and a partial file to the defaults plus the given values', () => {
    const a = parseRulesConfig('{}');
    expect(a).toEqual({ ok: true, config: DEFAULT_RULES_CONFIG });
    const b = parseRulesConfig(JSON.stringify({ defaults: { charging: { lowSocPct: 25 } } }));
    expect(b.ok && b.config.defaults.charging.lowSocPct).toBe(25);
    expect(b.ok && b.config.defaults.charging.criticalSocPct).toBe(7);
  });

  it.each([
    ['not json', 'not valid JSON'],
    [JSON.stringify({ defaults: { charging: { lowSocPct: 'x' } } }), 'defaults.charging.lowSocPct'],
    [JSON.stringify({ defaults: { charging: { lowSocPct: 120 } } }), 'defaults.charging.lowSocPct'],
    [JSON.stringify({ defaults: { battery: { lowVoltage12v: { thresholdV: -1 } } } }), 'defaults.battery.lowVoltage12v.thresholdV'],
    [JSON.stringify({ defaults: { charging: { lowSocPtc: 10 } } }), 'defaults.charging'],
    [JSON.stringify({ defaults: { fault: { severityOverrides: { XYZ: 'critical' } } } }), 'defaults.fault.severityOverrides'],
    [JSON.stringify({ models: { Aurora: { charging: { habit: { windowDays: 0 } } } } }), 'models.Aurora.charging.habit.windowDays'],
    [JSON.stringify({ models: { Aurora: { charging: { usableCapacityKwh: -5 } } } }), 'models.Aurora.charging.usableCapacityKwh'],
    [JSON.stringify({ models: { Aurora: { chargin: {} } } }), 'models.Aurora'],
    [JSON.stringify({ extra: 1 }), '(root)'],
  ])('rejects %s naming %s', (text, path) => {
    const r = parseRulesConfig(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain(path);
  });

  it('rejects inconsistent thresholds', () => {
    const r = parseRulesConfig(JSON.stringify({ defaults: { charging: { lowSocPct: 5, criticalSocPct: 7 } } }));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toContain('defaults.charging');
  });

  it('deep-merges model overrides over the defaults', () => {
    const r = parseRulesConfig(
      JSON.stringify({
        models: { Aurora: { charging: { usableCapacityKwh: 85, habit: { dcShareAbove: 0.8 } }, fault: { ignore: ['P0420'] } } },
      }),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const aurora = resolveModelConfig(r.config, 'Aurora');
    expect(aurora.charging.usableCapacityKwh).toBe(85);
    expect(aurora.charging.habit.dcShareAbove).toBe(0.8);
    expect(aurora.charging.habit.windowDays).toBe(30);
    expect(aurora.charging.lowSocPct).toBe(20);
    expect(aurora.fault.ignore).toEqual(['P0420']);
    expect(aurora.battery).toEqual(r.config.defaults.battery);
    expect(resolveModelConfig(r.config, 'Other')).toEqual(r.config.defaults);
    expect(resolveModelConfig(r.config, undefined)).toEqual(r.config.defaults);
    // "toString" is not a configured model, whatever Object.prototype says.
    expect(resolveModelConfig(r.config, 'toString')).toEqual(r.config.defaults);
  });

  it('deepMerge replaces arrays and scalars and leaves the base untouched', () => {
    const base = { a: 1, b: { c: [1, 2], d: 'x' } };
    expect(deepMerge(base, { b: { c: [3] } })).toEqual({ a: 1, b: { c: [3], d: 'x' } });
    expect(base.b.c).toEqual([1, 2]);
  });
});
