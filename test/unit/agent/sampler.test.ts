import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_POLICY, PolicyStore } from '../../../agent/policy.js';
import { PolicyFilter, Sampler, coarsen } from '../../../agent/sampler.js';
import { encodeAgentConfig } from '../../../proto/codec.js';
import type { Sample, SamplingPolicy } from '../../../proto/domain.js';
import { VSS } from '../../../proto/signals.js';
import { waitFor } from '../../support/wait.js';
import { T0 } from './fixtures.js';

const policy = (over: Partial<SamplingPolicy> = {}): SamplingPolicy => ({
  ...DEFAULT_POLICY,
  signals: [
    { path: VSS.speed, periodMs: 10_000, deadband: 20 },
    { path: VSS.lowVoltageSystemState, periodMs: 60_000, deadband: 0 },
    { path: VSS.soc, periodMs: 60_000, deadband: 0 },
    { path: VSS.latitude, periodMs: 1000, deadband: 0 },
  ],
  triggers: [
    { kind: 'new_dtc', threshold: 0 },
    { kind: 'ignition_off', threshold: 0 },
    { kind: 'soc_below', threshold: 20 },
  ],
  ...over,
});
const at = (sec: number, signals: Sample['signals'], dtcs?: string[]): Sample => ({
  ts: T0 + sec * 1000,
  signals,
  ...(dtcs ? { dtcs } : {}),
});

describe('PolicyFilter', () => {
  it('sends a signal when its period has passed or it moved beyond the deadband, else not', () => {
    const f = new PolicyFilter();
    const p = policy();
    expect(f.filter(at(0, { [VSS.speed]: 50 }), p).sample?.signals).toEqual({ [VSS.speed]: 50 });
    expect(f.filter(at(1, { [VSS.speed]: 60 }), p).sample).toBeUndefined(); // within deadband and period
    expect(f.filter(at(2, { [VSS.speed]: 75 }), p).sample?.signals).toEqual({ [VSS.speed]: 75 }); // moved 25 >= 20
    expect(f.filter(at(3, { [VSS.speed]: 76 }), p).sample).toBeUndefined();
    expect(f.filter(at(12, { [VSS.speed]: 76 }), p).sample?.signals).toEqual({ [VSS.speed]: 76 }); // period passed
  });

  it('sends enum changes at once and drops signals the policy does not name', () => {
    const f = new PolicyFilter();
    const p = policy();
    f.filter(at(0, { [VSS.lowVoltageSystemState]: 'OFF', [VSS.fuelLevel]: 50 }), p);
    expect(f.filter(at(1, { [VSS.lowVoltageSystemState]: 'OFF' }), p).sample).toBeUndefined();
    const r = f.filter(at(2, { [VSS.lowVoltageSystemState]: 'ACC', [VSS.fuelLevel]: 40 }), p);
    expect(r.sample?.signals).toEqual({ [VSS.lowVoltageSystemState]: 'ACC' });
  });

  it('fires triggers: new DTC (with the code list), ignition off, SOC crossing below the threshold', () => {
    const f = new PolicyFilter();
    const p = policy();
    f.filter(at(0, { [VSS.lowVoltageSystemState]: 'ON', [VSS.soc]: 25 }), p);
    const dtc = f.filter(at(1, {}, ['P0A80']), p);
    expect(dtc.trigger).toBe(true);
    expect(dtc.sample?.dtcs).toEqual(['P0A80']);
    expect(dtc.sample?.signals).toMatchObject({ [VSS.soc]: 25, [VSS.lowVoltageSystemState]: 'ON' }); // snapshot
    expect(f.filter(at(2, {}, ['P0A80']), p).trigger).toBe(false); // same code: not new
    expect(f.filter(at(3, { [VSS.soc]: 21 }), p).trigger).toBe(false);
    expect(f.filter(at(4, { [VSS.soc]: 19 }), p).trigger).toBe(true);
    expect(f.filter(at(5, { [VSS.soc]: 18 }), p).trigger).toBe(false); // already below
    expect(f.filter(at(6, { [VSS.lowVoltageSystemState]: 'OFF' }), p).trigger).toBe(true);
    const cleared = f.filter(at(7, {}, []), p);
    expect(cleared.sample?.dtcs).toEqual([]); // clearing is reported too
  });

  it('sends location only when enabled, coarsened to the policy precision', () => {
    const off = new PolicyFilter();
    expect(off.filter(at(0, { [VSS.latitude]: 31.234567 }), policy()).sample).toBeUndefined();
    const on = new PolicyFilter();
    const r = on.filter(at(0, { [VSS.latitude]: 31.234567 }), policy({ locationEnabled: true, locationPrecisionDeg: 0.01 }));
    expect(r.sample?.signals[VSS.latitude]).toBe(31.23);
    expect(coarsen(121.4789, 0.05)).toBe(121.5);
  });
});

describe('Sampler', () => {
  it('passthrough (replay) hands every sample on unchanged, batched by size', async () => {
    const batches: Sample[][] = [];
    const s = new Sampler({
      mode: 'passthrough',
      policy: new PolicyStore(),
      batchMaxSamples: 3,
      onBatch: async (b) => void batches.push(b),
    });
    const input = Array.from({ length: 7 }, (_, i) => at(i, { [VSS.speed]: i, [VSS.fuelLevel]: 10 }, i === 2 ? ['P0A80'] : undefined));
    for (const x of input) s.push(x);
    await s.drain();
    expect(batches.map((b) => b.length)).toEqual([3, 3, 1]);
    expect(batches.flat()).toEqual(input);
  });

  it('flushes after batchMaxDelayMs and at once on a trigger', async () => {
    const batches: Sample[][] = [];
    const store = new PolicyStore(policy({ batchMaxSamples: 100, batchMaxDelayMs: 30 }));
    const s = new Sampler({ mode: 'policy', policy: store, onBatch: async (b) => void batches.push(b) });
    s.push(at(0, { [VSS.speed]: 10 }));
    await waitFor(() => batches.length > 0, { what: 'the flush after batchMaxDelayMs' });
    expect(batches).toHaveLength(1);
    s.push(at(30, { [VSS.speed]: 10 }));
    s.push(at(31, {}, ['P0A80']));
    await s.flush();
    expect(batches).toHaveLength(2);
    expect(batches[1].at(-1)?.dtcs).toEqual(['P0A80']);
    await s.drain();
  });

  it('reports a failing batch handler and goes on with the next batch', async () => {
    const errors: string[] = [];
    let n = 0;
    const s = new Sampler({
      mode: 'passthrough',
      policy: new PolicyStore(),
      batchMaxSamples: 1,
      onBatch: async () => {
        if (n++ === 0) throw new Error('disk full');
      },
      onError: (e) => errors.push(e.message),
    });
    s.push(at(0, {}));
    s.push(at(1, {}));
    await s.drain();
    expect(errors).toEqual(['disk full']);
    expect(n).toBe(2);
  });
});

describe('PolicyStore', () => {
  it('applies a valid versioned policy and keeps the last good one when an invalid one arrives', () => {
    const logs: string[] = [];
    const store = new PolicyStore(DEFAULT_POLICY, (m) => logs.push(m));
    const seen: number[] = [];
    store.onChange((p) => seen.push(p.version));
    expect(store.applyPayload(encodeAgentConfig({ ...DEFAULT_POLICY, version: 3 }))).toBe(true);
    expect(store.applyPayload(encodeAgentConfig({ ...DEFAULT_POLICY, version: 3 }))).toBe(true); // retained re-delivery
    expect(seen).toEqual([3]);
    expect(store.applyPayload(Buffer.from('garbage'))).toBe(false);
    expect(store.applyPayload(encodeAgentConfig({ ...DEFAULT_POLICY, version: 4, batchMaxSamples: 0 }))).toBe(false);
    expect(store.apply({ ...DEFAULT_POLICY, version: 5, signals: [DEFAULT_POLICY.signals[0], DEFAULT_POLICY.signals[0]] })).toBe(false);
    expect(store.policy.version).toBe(3);
    expect(store.rejected).toBe(3);
    expect(logs.filter((l) => /rejected/.test(l))).toHaveLength(3);
  });
});

describe('PolicyStore persistence', () => {
  it('keeps the last good policy on disk for the next start; an invalid file is ignored', () => {
    const dir = mkdtempSync(join(tmpdir(), 'policy-'));
    try {
      const path = join(dir, 'policy.json');
      const a = new PolicyStore(DEFAULT_POLICY, () => {}, path);
      expect(a.policy.version).toBe(0);
      a.apply({ ...DEFAULT_POLICY, version: 9, locationEnabled: true });
      const b = new PolicyStore(DEFAULT_POLICY, () => {}, path);
      expect(b.policy).toMatchObject({ version: 9, locationEnabled: true });
      writeFileSync(path, JSON.stringify({ version: -1 }));
      const logs: string[] = [];
      const c = new PolicyStore(DEFAULT_POLICY, (m) => logs.push(m), path);
      expect(c.policy.version).toBe(0);
      expect(logs.join()).toMatch(/ignoring invalid/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
