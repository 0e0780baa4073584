// The agent's options (CLI flags and environment map onto these), checked by hand (proto/checks.ts)
// rather than with zod, which the agent does not load. `AgentOptionsSchema.parse/safeParse` accept
// and refuse what the zod schema it replaced did (test/unit/agent/options-check.test.ts keeps that
// schema as the reference) and fill in the same defaults.
import { join } from 'node:path';
import { CheckError, Checker, POWERTRAINS, VIN_MESSAGE, VIN_PATTERN, type CheckResult } from '../proto/checks.js';

export const SAMPLING_MODES = ['auto', 'policy', 'passthrough'] as const;

/** Options after the check: defaults filled in. */
export interface ResolvedAgentOptions {
  vin: string;
  /** mqtt://host:port or mqtts://host:port */
  broker: string;
  /** Source: a JSONL replay file (docs/contract.md#replay-source). */
  replay?: string;
  /** Source: the built-in simulated vehicle model. */
  simulate: boolean;
  /** Source: a Kuksa databroker (host:port), kuksa.val.v2 Subscribe. */
  kuksa?: string;
  kuksaCaFile?: string;
  kuksaTokenFile?: string;
  /** Replay speed factor; 0 = as fast as possible. */
  speed: number;
  /** Simulated source: seed, powertrain, start time and time acceleration. */
  seed: number;
  powertrain: (typeof POWERTRAINS)[number];
  simStartTs?: number;
  simStepMs: number;
  spoolDir?: string;
  username?: string;
  passwordFile?: string;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  topicPrefix: string;
  batchMaxSamples?: number;
  batchMaxDelayMs?: number;
  /** Spool flush rate limit in batches per second (0 = unlimited). */
  flushRateLimit: number;
  spoolMaxBytes: number;
  spoolMaxAgeMs: number;
  /** 'auto' = passthrough for replay (the file is already sampled), policy otherwise. */
  sampling: (typeof SAMPLING_MODES)[number];
  reconnectMinMs: number;
  reconnectMaxMs: number;
}

const DEFAULTS = {
  simulate: false,
  speed: 1,
  seed: 1,
  powertrain: 'BEV',
  simStepMs: 1000,
  topicPrefix: 'v1',
  flushRateLimit: 50,
  spoolMaxBytes: 64 * 1024 * 1024,
  spoolMaxAgeMs: 7 * 86_400_000,
  sampling: 'auto',
  reconnectMinMs: 1000,
  reconnectMaxMs: 60_000,
} as const satisfies Partial<ResolvedAgentOptions>;

/** What callers pass: the defaulted options may be left out. */
export type AgentOptions = Omit<ResolvedAgentOptions, keyof typeof DEFAULTS> & Partial<Pick<ResolvedAgentOptions, keyof typeof DEFAULTS>>;

const BROKER = /^(mqtts?|tcp|tls|ssl):\/\/[^\s]+$/;
const KUKSA = /^[^\s:]+:\d+$/;
const TOPIC_PREFIX = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;
const OPTIONAL_STRINGS = [
  'kuksaCaFile',
  'kuksaTokenFile',
  'spoolDir',
  'username',
  'passwordFile',
  'caFile',
  'certFile',
  'keyFile',
] as const;

function checkAgentOptions(input: unknown): CheckResult<ResolvedAgentOptions> {
  const c = new Checker();
  const o = c.object('', input);
  if (!o) return c.result(undefined as never);
  const out: Record<string, unknown> = {};
  const given = (k: string) => o[k] !== undefined;
  // each field: absent (undefined) -> its default, if it has one; present -> checked
  const field = (k: string, check: (path: string, v: unknown) => unknown, dflt?: unknown) => {
    if (given(k)) out[k] = check(k, o[k]);
    else if (dflt !== undefined) out[k] = dflt;
    else if (k in o) out[k] = undefined;
  };
  out.vin = c.string('vin', o.vin, { pattern: VIN_PATTERN, message: VIN_MESSAGE });
  out.broker = c.string('broker', o.broker, { pattern: BROKER, message: 'broker must be an mqtt:// or mqtts:// URL' });
  field('replay', (p, v) => c.string(p, v, { min: 1 }));
  field('simulate', (p, v) => c.boolean(p, v), DEFAULTS.simulate);
  field('kuksa', (p, v) => c.string(p, v, { pattern: KUKSA, message: 'kuksa must be host:port' }));
  field('speed', (p, v) => c.number(p, v, { min: 0 }), DEFAULTS.speed);
  field('seed', (p, v) => c.number(p, v, { int: true }), DEFAULTS.seed);
  field('powertrain', (p, v) => c.oneOf(p, v, POWERTRAINS), DEFAULTS.powertrain);
  field('simStartTs', (p, v) => c.number(p, v, { int: true }));
  field('simStepMs', (p, v) => c.number(p, v, { int: true, min: 10 }), DEFAULTS.simStepMs);
  for (const k of OPTIONAL_STRINGS) field(k, (p, v) => c.string(p, v));
  field(
    'topicPrefix',
    (p, v) => c.string(p, v, { pattern: TOPIC_PREFIX, message: 'topic prefix: letters, digits, - _ and /' }),
    DEFAULTS.topicPrefix,
  );
  field('batchMaxSamples', (p, v) => c.number(p, v, { int: true, min: 1, max: 1000 }));
  field('batchMaxDelayMs', (p, v) => c.number(p, v, { int: true, min: 0 }));
  field('flushRateLimit', (p, v) => c.number(p, v, { min: 0 }), DEFAULTS.flushRateLimit);
  field('spoolMaxBytes', (p, v) => c.number(p, v, { int: true, min: 4096 }), DEFAULTS.spoolMaxBytes);
  field('spoolMaxAgeMs', (p, v) => c.number(p, v, { int: true, min: 1000 }), DEFAULTS.spoolMaxAgeMs);
  field('sampling', (p, v) => c.oneOf(p, v, SAMPLING_MODES), DEFAULTS.sampling);
  field('reconnectMinMs', (p, v) => c.number(p, v, { int: true, min: 10 }), DEFAULTS.reconnectMinMs);
  field('reconnectMaxMs', (p, v) => c.number(p, v, { int: true, min: 10 }), DEFAULTS.reconnectMaxMs);
  if (c.issues.length === 0) {
    const sources = [out.replay !== undefined, out.simulate === true, out.kuksa !== undefined].filter(Boolean).length;
    if (sources !== 1) c.fail('', 'choose exactly one source: replay, simulate or kuksa');
  }
  return c.result(out as unknown as ResolvedAgentOptions);
}

/** The options' check with the zod-like face the callers and tests use. */
export const AgentOptionsSchema = {
  safeParse: checkAgentOptions,
  parse(input: unknown): ResolvedAgentOptions {
    const r = checkAgentOptions(input);
    if (!r.success) throw r.error;
    return r.data;
  },
};
export { CheckError };

/** `${ODOPULSE_DATA_DIR:-./data}/agent/<VIN>` */
export function defaultSpoolDir(vin: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(env.ODOPULSE_DATA_DIR || './data', 'agent', vin);
}
