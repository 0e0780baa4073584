import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadRulesConfigFile, watchRulesConfig } from '../../ingest/pipeline/rules-config.js';
import { DEFAULT_RULES_CONFIG, resolveModelConfig, type RulesConfig } from '../../rules/config.js';
import { waitFor } from '../support/wait.js';

describe('rule configuration file', () => {
  it('defaults without a file; a file overrides per model', () => {
    expect(loadRulesConfigFile(undefined)).toBe(DEFAULT_RULES_CONFIG);
    const f = join(mkdtempSync(join(tmpdir(), 'rules-')), 'rules.json');
    writeFileSync(f, JSON.stringify({ models: { 'Aurora EV': { charging: { lowSocPct: 25 } } } }));
    const c = loadRulesConfigFile(f);
    expect(resolveModelConfig(c, 'Aurora EV').charging.lowSocPct).toBe(25);
    expect(resolveModelConfig(c, 'Other').charging.lowSocPct).toBe(20);
  });

  it('an invalid file at start-up names the field', () => {
    const f = join(mkdtempSync(join(tmpdir(), 'rules-')), 'rules.json');
    writeFileSync(f, JSON.stringify({ defaults: { charging: { lowSocPct: 'twenty' } } }));
    expect(() => loadRulesConfigFile(f)).toThrow(/charging\.lowSocPct/);
  });

  it('reloads on change; an invalid change is rejected and the previous configuration stays', async () => {
    const f = join(mkdtempSync(join(tmpdir(), 'rules-')), 'rules.json');
    writeFileSync(f, JSON.stringify({ defaults: { charging: { lowSocPct: 22 } } }));
    let current: RulesConfig = loadRulesConfigFile(f);
    const errors: string[] = [];
    const stop = watchRulesConfig(
      f,
      (c) => (current = c),
      (m) => errors.push(m),
      50,
    );
    try {
      writeFileSync(f, JSON.stringify({ defaults: { charging: { lowSocPct: 'x' } } }));
      await waitFor(() => errors.length > 0, { what: 'the rejection of the invalid change' });
      expect(errors[0]).toMatch(/previous configuration stays in force.*charging\.lowSocPct/);
      expect(resolveModelConfig(current, undefined).charging.lowSocPct).toBe(22);
      writeFileSync(f, JSON.stringify({ defaults: { charging: { lowSocPct: 18 } } }));
      await waitFor(() => resolveModelConfig(current, undefined).charging.lowSocPct === 18, { what: 'the reload' });
    } finally {
      stop();
    }
  });
});
