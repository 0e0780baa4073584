// The agent's options (CLI flags and environment map onto these), validated with zod.
import { join } from 'node:path';
import { z } from 'zod';
import { POWERTRAINS, VinSchema } from '../proto/domain.js';

export const AgentOptionsSchema = z
  .object({
    vin: VinSchema,
    /** mqtt://host:port or mqtts://host:port */
    broker: z.string().regex(/^(mqtts?|tcp|tls|ssl):\/\/[^\s]+$/, 'broker must be an mqtt:// or mqtts:// URL'),
    /** Source: a JSONL replay file (docs/contract.md#replay-source). */
    replay: z.string().min(1).optional(),
    /** Source: the built-in simulated vehicle model. */
    simulate: z.boolean().default(false),
    /** Source: a Kuksa databroker (host:port), kuksa.val.v2 Subscribe. */
    kuksa: z
      .string()
      .regex(/^[^\s:]+:\d+$/, 'kuksa must be host:port')
      .optional(),
    kuksaCaFile: z.string().optional(),
    kuksaTokenFile: z.string().optional(),
    /** Replay speed factor; 0 = as fast as possible. */
    speed: z.number().min(0).default(1),
    /** Simulated source: seed, powertrain, start time and time acceleration. */
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
    /** Spool flush rate limit in batches per second (0 = unlimited). */
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
    /** 'auto' = passthrough for replay (the file is already sampled), policy otherwise. */
    sampling: z.enum(['auto', 'policy', 'passthrough']).default('auto'),
    reconnectMinMs: z.number().int().min(10).default(1000),
    reconnectMaxMs: z.number().int().min(10).default(60_000),
  })
  .refine((o) => [o.replay !== undefined, o.simulate, o.kuksa !== undefined].filter(Boolean).length === 1, {
    message: 'choose exactly one source: replay, simulate or kuksa',
  });

export type AgentOptions = z.input<typeof AgentOptionsSchema>;
export type ResolvedAgentOptions = z.output<typeof AgentOptionsSchema>;

/** `${ODOPULSE_DATA_DIR:-./data}/agent/<VIN>` */
export function defaultSpoolDir(vin: string, env: NodeJS.ProcessEnv = process.env): string {
  return join(env.ODOPULSE_DATA_DIR || './data', 'agent', vin);
}
