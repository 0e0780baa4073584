import { describe, expect, it } from 'vitest';
import { DEFAULT_RULES_CONFIG, resolveModelConfig } from '../../../rules/config.js';
import { describeDtc, dtcSeverity, parseDtc } from '../../../rules/dtc-catalogue.js';
import { faultDetector } from '../../../rules/detectors/fault.js';
import type { Reading } from '../../../rules/types.js';
import { MIN, T0, VIN, drive, opened, profile, reading, resolved } from './helpers.js';

const at = (i: number, dtcs?: string[]): Reading => reading(T0 + i * MIN, {}, dtcs);
const run = (readings: Reading[]) => drive(faultDetector, readings, { family: 'fault', profile: profile() });

describe('DTC catalogue (SAE J2012)', () => {
  it.each([
    ['P0A80', 'powertrain', true],
    ['P1234', 'powertrain', false],
    ['C0035', 'chassis', true],
    ['B3001', 'body', false],
    ['U2100', 'network', true],
  ])('%s is %s, generic=%s', (code, system, generic) => {
    expect(parseDtc(code)).toEqual({ code, system, generic });
  });

  it.each(['', 'X0123', 'P4123', 'P0a80', 'P0A8'])('rejects %j', (code) => {
    expect(parseDtc(code)).toBeUndefined();
    expect(describeDtc(code)).toBeUndefined();
  });

  it.each([
    ['P0A80', 'critical'], // replace hybrid battery pack
    ['P0AA6', 'critical'], // HV isolation
    ['P0A8F', 'critical'], // unlisted but in the battery-pack range
    ['P0A94', 'warning'],
    ['P0300', 'warning'],
    ['P0420', 'info'],
    ['P0101', 'info'],
    ['B0001', 'critical'],
    ['U0100', 'critical'],
    ['C0110', 'warning'],
    ['P1ABC', 'warning'], // manufacturer-specific: unknown, someone should look
  ])('%s is %s', (code, severity) => {
    expect(dtcSeverity(code)).toBe(severity);
  });

  it('config overrides win', () => {
    expect(dtcSeverity('P0420', { P0420: 'critical' })).toBe('critical');
    expect(describeDtc('P0A80')?.description?.['zh-CN']).toBeTruthy();
  });
});

describe('fault.dtc', () => {
  it('a new code prompts once while it stays active and resolves when it clears', () => {
    const { events } = run([at(0, []), at(1, ['P0420']), at(2, ['P0420']), at(3), at(4, ['P0420']), at(5, [])]);
    const ps = opened(events);
    expect(ps.map((p) => p.dedupKey)).toEqual([`${VIN}:fault.dtc:P0420:1`]);
    expect(ps[0]).toMatchObject({ severity: 'info', urgent: false, audience: ['advisor'], params: { code: 'P0420' } });
    expect(resolved(events)).toEqual([`${VIN}:fault.dtc:P0420:1`]);
  });

  it('a reading without a DTC list changes nothing', () => {
    const { events } = run([at(0, ['P0300']), at(1), at(2)]);
    expect(opened(events)).toHaveLength(1);
    expect(resolved(events)).toEqual([]);
  });

  it('a recurrence after clearing is a new situation', () => {
    const { events } = run([at(0, ['P0300']), at(1, []), at(2, ['P0300'])]);
    expect(opened(events).map((p) => p.dedupKey)).toEqual([`${VIN}:fault.dtc:P0300:1`, `${VIN}:fault.dtc:P0300:2`]);
  });

  it('critical codes are urgent for HMI and advisor', () => {
    const { events } = run([at(0, ['P0A80', 'P0420'])]);
    const [crit, info] = opened(events);
    expect(crit).toMatchObject({ kind: 'fault.dtc', severity: 'critical', urgent: true, audience: ['hmi', 'advisor'] });
    expect(info.params.code).toBe('P0420');
  });

  it('several codes: only the new one prompts, only the cleared one resolves', () => {
    const { events } = run([at(0, ['P0300', 'C0035']), at(1, ['C0035', 'U0121'])]);
    expect(opened(events).map((p) => p.params.code)).toEqual(['P0300', 'C0035', 'U0121']);
    expect(resolved(events)).toEqual([`${VIN}:fault.dtc:P0300:1`]);
  });

  it('ignored codes and model severity overrides apply', () => {
    const cfg = {
      ...DEFAULT_RULES_CONFIG,
      models: { Aurora: { fault: { ignore: ['P0420'], severityOverrides: { P0300: 'critical' as const } } } },
    };
    const { events } = drive(faultDetector, [at(0, ['P0420', 'P0300']), at(1, [])], {
      family: 'fault',
      profile: profile(),
      configs: resolveModelConfig(cfg, 'Aurora'),
    });
    expect(opened(events).map((p) => [p.params.code, p.severity])).toEqual([['P0300', 'critical']]);
    expect(resolved(events)).toEqual([`${VIN}:fault.dtc:P0300:1`]);
  });
});
