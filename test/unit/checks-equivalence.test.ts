// The vehicle side's hand-written checks (proto/checks.ts) against the zod schemas they stand in
// for (proto/domain.ts): the same verdict and the same output for every input of a corpus built at
// the boundaries of each field plus seeded random ones, and errors that name the fields zod names.
import { describe, expect, it } from 'vitest';
import { checkSamplingPolicy, checkSignals, isDtc } from '../../proto/checks.js';
import { DtcSchema, SamplingPolicySchema, SignalsSchema } from '../../proto/domain.js';
import { SIGNALS, SIGNAL_PATHS, VSS } from '../../proto/signals.js';
import { ODD, expectSameVerdict, rng } from '../support/equivalence.js';

const numberEdges = (min: number, max: number, int: boolean) => [
  min,
  max,
  min - (int ? 1 : 1e-9),
  max + (int ? 1 : 1e-9),
  (min + max) / 2,
  ...(int ? [min + 0.5] : []),
  ...ODD,
];

const VALID_POLICY = {
  version: 3,
  signals: [
    { path: VSS.soc, periodMs: 60_000, deadband: 2 },
    { path: VSS.speed, periodMs: 0 },
  ],
  triggers: [{ kind: 'new_dtc' }, { kind: 'soc_below', threshold: 20 }],
  batchMaxSamples: 50,
  batchMaxDelayMs: 10_000,
  locationEnabled: true,
  locationPrecisionDeg: 0.01,
};

/** One field of the valid policy replaced (or removed: undefined) at a time, for each edge value. */
function policyBoundaries(): unknown[] {
  const out: unknown[] = [VALID_POLICY, {}, ...ODD, 'policy', 7];
  const top: Record<string, unknown[]> = {
    version: numberEdges(0, Number.MAX_SAFE_INTEGER, true),
    batchMaxSamples: numberEdges(1, 1000, true),
    batchMaxDelayMs: numberEdges(0, 3_600_000, true),
    locationEnabled: [true, false, 0, 'true', ...ODD],
    locationPrecisionDeg: numberEdges(0, 1, false),
    signals: [
      [],
      Array.from({ length: 64 }, () => VALID_POLICY.signals[0]),
      Array.from({ length: 65 }, () => VALID_POLICY.signals[0]),
      ...ODD,
    ],
    triggers: [
      [],
      Array.from({ length: 16 }, () => ({ kind: 'ignition_off' })),
      Array.from({ length: 17 }, () => ({ kind: 'new_dtc' })),
      ...ODD,
    ],
    extra: ['ignored', ...ODD],
  };
  for (const [k, values] of Object.entries(top)) for (const v of values) out.push({ ...VALID_POLICY, [k]: v });
  const signal: Record<string, unknown[]> = {
    path: [...SIGNAL_PATHS, VSS.dtcList, 'Vehicle.Unknown', ...ODD],
    periodMs: numberEdges(0, 86_400_000, true),
    deadband: numberEdges(0, 1e6, false),
    extra: [1],
  };
  for (const [k, values] of Object.entries(signal))
    for (const v of values) out.push({ ...VALID_POLICY, signals: [VALID_POLICY.signals[0], { ...VALID_POLICY.signals[1], [k]: v }] });
  const trigger: Record<string, unknown[]> = {
    kind: ['new_dtc', 'ignition_off', 'soc_below', 'NEW_DTC', 'x', ...ODD],
    threshold: [-5, 0, 7.5, ...ODD],
  };
  for (const [k, values] of Object.entries(trigger))
    for (const v of values) out.push({ ...VALID_POLICY, triggers: [{ kind: 'soc_below', threshold: 7, [k]: v }] });
  out.push({ ...VALID_POLICY, signals: [null, 1, 'x'], triggers: [[]] });
  return out;
}

function randomPolicy(r: () => number): unknown {
  const pick = <T>(a: readonly T[]): T => a[Math.floor(r() * a.length)];
  const maybe = (valid: () => unknown) => (r() < 0.85 ? valid() : pick(ODD));
  const n = (min: number, max: number, int: boolean) => () => {
    const v = min + r() * (max - min) * 1.2 - (max - min) * 0.1;
    return int && r() < 0.9 ? Math.round(v) : v;
  };
  return {
    version: maybe(n(0, 1000, true)),
    signals: maybe(() =>
      Array.from({ length: Math.floor(r() * 5) }, () =>
        maybe(() => ({
          path: maybe(() => pick(SIGNAL_PATHS)),
          periodMs: maybe(n(0, 86_400_000, true)),
          deadband: r() < 0.3 ? undefined : maybe(n(0, 50, false)),
        })),
      ),
    ),
    triggers: maybe(() =>
      Array.from({ length: Math.floor(r() * 4) }, () =>
        maybe(() => ({ kind: maybe(() => pick(['new_dtc', 'ignition_off', 'soc_below'])), threshold: maybe(n(-10, 100, false)) })),
      ),
    ),
    batchMaxSamples: maybe(n(1, 1000, true)),
    batchMaxDelayMs: maybe(n(0, 3_600_000, true)),
    locationEnabled: r() < 0.3 ? undefined : maybe(() => r() < 0.5),
    locationPrecisionDeg: r() < 0.3 ? undefined : maybe(n(0, 1, false)),
  };
}

function signalsBoundaries(): unknown[] {
  const out: unknown[] = [{}, ...ODD, { 'Vehicle.Unknown': 1 }, { [VSS.dtcList]: ['P0A80'] }, { [VSS.soc]: 50, a: 1, b: 2 }];
  for (const [path, spec] of Object.entries(SIGNALS)) {
    const values =
      spec.kind === 'number'
        ? numberEdges(spec.min ?? -1e9, spec.max ?? 1e9, false)
        : spec.kind === 'boolean'
          ? [true, false, 0, 'true', ...ODD]
          : [...(spec.values ?? []), 'on', 'NOPE', ...ODD];
    for (const v of values) out.push({ [path]: v }, { [VSS.speed]: 10, [path]: v });
  }
  return out;
}

describe('checkSamplingPolicy = SamplingPolicySchema', () => {
  it.each(policyBoundaries().map((p) => [p]))('boundary %j', (input) =>
    expectSameVerdict(SamplingPolicySchema, checkSamplingPolicy, input),
  );

  it('2,000 seeded random policies (valid and not) get the same verdicts', () => {
    const r = rng(14);
    let valid = 0;
    for (let i = 0; i < 2000; i++) {
      const p = randomPolicy(r);
      expectSameVerdict(SamplingPolicySchema, checkSamplingPolicy, p);
      if (SamplingPolicySchema.safeParse(p).success) valid++;
    }
    expect(valid).toBeGreaterThan(50); // the corpus has both kinds
    expect(valid).toBeLessThan(1950);
  });

  it('words the problem with the field and what was wrong', () => {
    expect(checkSamplingPolicy({ ...VALID_POLICY, batchMaxSamples: 1001 }).error?.message).toBe(
      'batchMaxSamples: expected an integer <= 1000, received 1001',
    );
    expect(checkSamplingPolicy({ ...VALID_POLICY, signals: [{ path: 'x', periodMs: 1 }] }).error?.message).toMatch(
      /^signals\.0\.path: expected one of /,
    );
  });
});

describe('checkSignals = SignalsSchema, isDtc = DtcSchema', () => {
  it.each(signalsBoundaries().map((s) => [s]))('signals %j', (input) => expectSameVerdict(SignalsSchema, (v) => checkSignals(v), input));

  it.each(['P0A80', 'C3FFF', 'U0100', 'B1234', 'p0a80', 'P4A80', 'P0A8', 'P0A800', 'X0A80', 'P0G80', '', 1, null])('DTC %j', (code) => {
    expect(isDtc(code)).toBe(DtcSchema.safeParse(code).success);
  });
});
