// agent/options.ts checks the options by hand; the zod schema it replaced is kept here as the
// reference: same verdicts, same output (defaults), errors naming the fields zod names.
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { AgentOptionsSchema } from '../../../agent/options.js';
import { POWERTRAINS, VinSchema } from '../../../proto/domain.js';
import { ODD, expectSameVerdict, rng } from '../../support/equivalence.js';

const ReferenceSchema = z
  .object({
    vin: VinSchema,
    broker: z.string().regex(/^(mqtts?|tcp|tls|ssl):\/\/[^\s]+$/, 'broker must be an mqtt:// or mqtts:// URL'),
    replay: z.string().min(1).optional(),
    simulate: z.boolean().default(false),
    kuksa: z
      .string()
      .regex(/^[^\s:]+:\d+$/, 'kuksa must be host:port')
      .optional(),
    kuksaCaFile: z.string().optional(),
    kuksaTokenFile: z.string().optional(),
    speed: z.number().min(0).default(1),
    seed: z.number().int().default(1),
    powertrain: z.enum(POWERTRAINS).default('BEV'),
    simStartTs: z.number().int().optional(),
    simStepMs: z.number().int().min(10).default(1000),
    spoolDir: z.string().optional(),
    username: z.string().optional(),
    passwordFile: z.string().optional(),
    caFile: z.string().optional(),
    certFile: z.string().optional(),
    keyFile: z.string().optional(),
    topicPrefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/, 'topic prefix: letters, digits, - _ and /')
      .default('v1'),
    batchMaxSamples: z.number().int().min(1).max(1000).optional(),
    batchMaxDelayMs: z.number().int().min(0).optional(),
    flushRateLimit: z.number().min(0).default(50),
    spoolMaxBytes: z
      .number()
      .int()
      .min(4096)
      .default(64 * 1024 * 1024),
    spoolMaxAgeMs: z
      .number()
      .int()
      .min(1000)
      .default(7 * 86_400_000),
    sampling: z.enum(['auto', 'policy', 'passthrough']).default('auto'),
    reconnectMinMs: z.number().int().min(10).default(1000),
    reconnectMaxMs: z.number().int().min(10).default(60_000),
  })
  .refine((o) => [o.replay !== undefined, o.simulate, o.kuksa !== undefined].filter(Boolean).length === 1, {
    message: 'choose exactly one source: replay, simulate or kuksa',
  });

const VIN = 'LSVAU2180N2BENCH1';
const BASE = { vin: VIN, broker: 'mqtt://127.0.0.1:1883', simulate: true };
const same = (input: unknown) => expectSameVerdict(ReferenceSchema, (v) => AgentOptionsSchema.safeParse(v), input);

const int = (min: number, max = min + 1e6) => [min, min - 1, max, min + 0.5, ...ODD];
const num = (min: number) => [min, min - 1e-9, min + 0.5, 1e12, ...ODD];
const str = ['', 'x', '/etc/odopulse/ca.pem', ...ODD];
const FIELDS: Record<string, unknown[]> = {
  vin: [VIN, 'LSVAU2180N2BENCHI', 'short', VIN.toLowerCase(), ...ODD],
  broker: ['mqtt://h:1883', 'mqtts://h', 'tcp://h', 'tls://h', 'ssl://h', 'http://h', 'mqtt://', 'mqtt://a b', 'ws://h', ...ODD],
  replay: ['f.jsonl', ...str],
  simulate: [true, false, 'true', 1, ...ODD],
  kuksa: ['127.0.0.1:55555', 'host:1', 'host', ':1', 'a b:1', 'h:x', ...ODD],
  kuksaCaFile: str,
  kuksaTokenFile: str,
  speed: num(0),
  seed: int(-(2 ** 31)),
  powertrain: [...POWERTRAINS, 'bev', 'EV', ...ODD],
  simStartTs: int(0, 2e12),
  simStepMs: int(10),
  spoolDir: str,
  username: str,
  passwordFile: str,
  caFile: str,
  certFile: str,
  keyFile: str,
  topicPrefix: ['v1', 'a/b-c_d', 'a/', '/a', 'a//b', 'a b', '', '#', ...ODD],
  batchMaxSamples: int(1, 1000),
  batchMaxDelayMs: int(0),
  flushRateLimit: num(0),
  spoolMaxBytes: int(4096),
  spoolMaxAgeMs: int(1000),
  sampling: ['auto', 'policy', 'passthrough', 'AUTO', ...ODD],
  reconnectMinMs: int(10),
  reconnectMaxMs: int(10),
  unknownKey: ['ignored'],
};

describe('AgentOptionsSchema (hand-written) = the zod schema it replaced', () => {
  const cases: unknown[] = [BASE, {}, ...ODD, 'mqtt://h', { vin: VIN, broker: 'mqtt://h' }];
  for (const [k, values] of Object.entries(FIELDS)) for (const v of values) cases.push({ ...BASE, [k]: v });
  // source combinations: exactly one of replay / simulate / kuksa
  for (const replay of [undefined, 'f'])
    for (const simulate of [undefined, false, true])
      for (const kuksa of [undefined, 'h:1']) cases.push({ vin: VIN, broker: 'mqtt://h', replay, simulate, kuksa });
  cases.push({ ...BASE, simulate: false, replay: 'f', speed: -1 }, { ...BASE, vin: 'bad', broker: 'bad', simulate: 'x', kuksa: 'h:1' });

  it.each(cases.map((c) => [c]))('%j', (input) => same(input));

  it('1,000 seeded random option sets get the same verdicts and defaults', () => {
    const r = rng(60);
    const keys = Object.keys(FIELDS);
    for (let i = 0; i < 1000; i++) {
      const o: Record<string, unknown> = { ...BASE };
      for (let j = Math.floor(r() * 4); j > 0; j--) {
        const k = keys[Math.floor(r() * keys.length)];
        o[k] = FIELDS[k][Math.floor(r() * FIELDS[k].length)];
      }
      same(o);
    }
  });

  it('names the field in its error', () => {
    expect(AgentOptionsSchema.safeParse({ ...BASE, simStepMs: 5 }).error?.message).toBe('simStepMs: expected an integer >= 10, received 5');
    expect(AgentOptionsSchema.safeParse({ ...BASE, broker: 'http://x' }).error?.message).toBe(
      'broker: broker must be an mqtt:// or mqtts:// URL',
    );
    expect(() => AgentOptionsSchema.parse({ ...BASE, replay: 'f' })).toThrow(
      '(root): choose exactly one source: replay, simulate or kuksa',
    );
  });
});
