// Hand-written validators for the few shapes the vehicle side checks (sampling policy, signal
// values, DTC codes, and the agent's options in agent/options.ts), so that the agent never loads
// zod (~10 MB of RSS in a process that targets < 60 MB). They accept and refuse exactly what the
// zod schemas in domain.ts accept and refuse (test/unit/checks-equivalence.test.ts) and word every
// problem as `path: what was expected, what was received`, as formatZodError does.
import { SIGNALS, type ValueSignalPath } from './signals.js';

/** ISO 3779 VIN: 17 characters, no I, O or Q. */
export const VIN_PATTERN = /^[A-HJ-NPR-Z0-9]{17}$/;
export const VIN_MESSAGE = 'VIN must be 17 characters A-Z/0-9 without I, O, Q';
export const DTC_PATTERN = /^[PCBU][0-3][0-9A-F]{3}$/;
export const DTC_MESSAGE = 'DTC must be an SAE J2012 code such as P0A80';
export const isDtc = (v: unknown): v is string => typeof v === 'string' && DTC_PATTERN.test(v);

export const MAX_SAMPLES_PER_BATCH = 1000;
export const POWERTRAINS = ['BEV', 'PHEV', 'ICE'] as const;
export const TRIGGER_KINDS = ['new_dtc', 'ignition_off', 'soc_below'] as const;

export type CheckResult<T> = { success: true; data: T; error?: undefined } | { success: false; data?: undefined; error: CheckError };

/** The problems found, each `path: message`; `message` joins them with '; '. */
export class CheckError extends Error {
  constructor(readonly issues: string[]) {
    super(issues.join('; '));
    this.name = 'CheckError';
  }
}

/** Collects problems while a value is checked; each check returns the value (undefined when it fails). */
export class Checker {
  readonly issues: string[] = [];

  fail(path: string, message: string): undefined {
    this.issues.push(`${path || '(root)'}: ${message}`);
    return undefined;
  }

  result<T>(data: T): CheckResult<T> {
    return this.issues.length ? { success: false, error: new CheckError(this.issues) } : { success: true, data };
  }

  object(path: string, v: unknown): Record<string, unknown> | undefined {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
    return this.fail(path, `expected object, received ${received(v)}`);
  }

  array(path: string, v: unknown, max: number, min = 0): unknown[] | undefined {
    if (!Array.isArray(v)) return this.fail(path, `expected array, received ${received(v)}`);
    if (v.length > max) return this.fail(path, `expected at most ${max} items, received ${v.length}`);
    if (v.length < min) return this.fail(path, `expected at least ${min} items, received ${v.length}`);
    return v;
  }

  /** A finite number (an integer within the safe range when `int`), within [min, max]. */
  number(path: string, v: unknown, o: { int?: boolean; min?: number; max?: number } = {}): number | undefined {
    if (typeof v !== 'number' || !Number.isFinite(v)) return this.fail(path, `expected number, received ${received(v)}`);
    if (o.int && !Number.isInteger(v)) return this.fail(path, `expected an integer, received ${v}`);
    const what = o.int ? 'an integer' : 'a number';
    const min = o.int ? Math.max(o.min ?? -Infinity, Number.MIN_SAFE_INTEGER) : o.min;
    const max = o.int ? Math.min(o.max ?? Infinity, Number.MAX_SAFE_INTEGER) : o.max;
    if (min !== undefined && v < min) return this.fail(path, `expected ${what} >= ${min}, received ${v}`);
    if (max !== undefined && v > max) return this.fail(path, `expected ${what} <= ${max}, received ${v}`);
    return v;
  }

  string(path: string, v: unknown, o: { min?: number; max?: number; pattern?: RegExp; message?: string } = {}): string | undefined {
    if (typeof v !== 'string') return this.fail(path, `expected string, received ${received(v)}`);
    if (o.min !== undefined && v.length < o.min) return this.fail(path, `expected at least ${o.min} characters`);
    if (o.max !== undefined && v.length > o.max) return this.fail(path, `expected at most ${o.max} characters`);
    if (o.pattern && !o.pattern.test(v)) return this.fail(path, o.message ?? `does not match ${o.pattern}`);
    return v;
  }

  boolean(path: string, v: unknown): boolean | undefined {
    return typeof v === 'boolean' ? v : this.fail(path, `expected boolean, received ${received(v)}`);
  }

  oneOf<T extends string>(path: string, v: unknown, values: readonly T[]): T | undefined {
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
    return this.fail(path, `expected one of ${values.map((s) => JSON.stringify(s)).join('|')}, received ${received(v)}`);
  }
}

/** How a value is named in a message: its type, or the value itself for the special numbers. */
export function received(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
  return typeof v;
}

// ---- signal values ----------------------------------------------------------------------

const SIGNAL_SET: ReadonlySet<string> = new Set(Object.keys(SIGNALS));
const SIGNAL_PATH_LIST = Object.keys(SIGNALS) as ValueSignalPath[];

function checkSignalValue(c: Checker, path: string, key: ValueSignalPath, v: unknown): void {
  const spec = SIGNALS[key];
  if (spec.kind === 'number') c.number(path, v, { min: spec.min, max: spec.max });
  else if (spec.kind === 'boolean') c.boolean(path, v);
  else c.oneOf(path, v, spec.values as readonly string[]);
}

/** Signal values keyed by VSS path (SignalsSchema): known paths only, each value of its kind and range; undefined = absent. */
export function checkSignals<T = Record<string, unknown>>(v: unknown, c = new Checker(), path = ''): CheckResult<T> {
  const o = c.object(path, v);
  if (o) {
    const unknown = Object.keys(o).filter((k) => !SIGNAL_SET.has(k));
    if (unknown.length)
      c.fail(path, `unrecognized key${unknown.length > 1 ? 's' : ''}: ${unknown.map((k) => JSON.stringify(k)).join(', ')}`);
    for (const key of SIGNAL_PATH_LIST) {
      if (o[key] !== undefined) checkSignalValue(c, path ? `${path}.${key}` : key, key, o[key]);
    }
  }
  return c.result(o as T);
}

// ---- sampling policy --------------------------------------------------------------------

/** The sampling policy as the agent holds it; domain.ts asserts that SamplingPolicySchema gives this same type. */
export interface SamplingPolicyShape {
  version: number;
  signals: { path: ValueSignalPath; periodMs: number; deadband: number }[];
  triggers: { kind: (typeof TRIGGER_KINDS)[number]; threshold: number }[];
  batchMaxSamples: number;
  batchMaxDelayMs: number;
  locationEnabled: boolean;
  locationPrecisionDeg: number;
}

/** SamplingPolicySchema without zod: the same verdicts, the same output (defaults filled in, unknown keys left out). */
export function checkSamplingPolicy(v: unknown): CheckResult<SamplingPolicyShape> {
  const c = new Checker();
  const o = c.object('', v);
  if (!o) return c.result(undefined as never);
  const version = c.number('version', o.version, { int: true, min: 0 });
  const signals = (c.array('signals', o.signals, 64) ?? []).map((s, i) => {
    const p = `signals.${i}`;
    const so = c.object(p, s);
    if (!so) return undefined;
    return {
      path: c.oneOf(`${p}.path`, so.path, SIGNAL_PATH_LIST),
      periodMs: c.number(`${p}.periodMs`, so.periodMs, { int: true, min: 0, max: 86_400_000 }),
      deadband: so.deadband === undefined ? 0 : c.number(`${p}.deadband`, so.deadband, { min: 0 }),
    };
  });
  const triggers = (c.array('triggers', o.triggers, 16) ?? []).map((t, i) => {
    const p = `triggers.${i}`;
    const to = c.object(p, t);
    if (!to) return undefined;
    return {
      kind: c.oneOf(`${p}.kind`, to.kind, TRIGGER_KINDS),
      threshold: to.threshold === undefined ? 0 : c.number(`${p}.threshold`, to.threshold),
    };
  });
  const policy = {
    version,
    signals,
    triggers,
    batchMaxSamples: c.number('batchMaxSamples', o.batchMaxSamples, { int: true, min: 1, max: MAX_SAMPLES_PER_BATCH }),
    batchMaxDelayMs: c.number('batchMaxDelayMs', o.batchMaxDelayMs, { int: true, min: 0, max: 3_600_000 }),
    locationEnabled: o.locationEnabled === undefined ? false : c.boolean('locationEnabled', o.locationEnabled),
    locationPrecisionDeg:
      o.locationPrecisionDeg === undefined ? 0.01 : c.number('locationPrecisionDeg', o.locationPrecisionDeg, { min: 0, max: 1 }),
  };
  return c.result(policy as SamplingPolicyShape);
}

/** checkSamplingPolicy, throwing a CheckError (for constants such as the default policy). */
export function parseSamplingPolicy(v: unknown): SamplingPolicyShape {
  const r = checkSamplingPolicy(v);
  if (!r.success) throw r.error;
  return r.data;
}
