// The validated rule configuration: docs/domain.md defaults per family, plus per-model overrides.
// Pure: callers read the file (ODOPULSE_RULES_CONFIG) and hand the text to parseRulesConfig.
import { z } from 'zod';
import { batteryConfigSchema, type BatteryConfig } from './config/battery.js';
import { chargingConfigSchema, type ChargingConfig } from './config/charging.js';
import { faultConfigSchema, type FaultConfig } from './config/fault.js';
import { maintenanceConfigSchema } from './config/maintenance.js';
import { usageConfigSchema } from './config/usage.js';
import type { Family } from './types.js';

export type MaintenanceConfig = z.infer<typeof maintenanceConfigSchema>;
export type UsageConfig = z.infer<typeof usageConfigSchema>;
export type { BatteryConfig, ChargingConfig, FaultConfig };

/** Every family's configuration, as a detector sees it after model overrides are applied. */
export interface FamilyConfigs {
  maintenance: MaintenanceConfig;
  charging: ChargingConfig;
  battery: BatteryConfig;
  fault: FaultConfig;
  usage: UsageConfig;
}

export type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;
export type ModelOverrides = { [F in Family]?: DeepPartial<FamilyConfigs[F]> };

export interface RulesConfig {
  defaults: FamilyConfigs;
  models: Record<string, ModelOverrides>;
}

const FAMILY_SCHEMAS = {
  maintenance: maintenanceConfigSchema,
  charging: chargingConfigSchema,
  battery: batteryConfigSchema,
  fault: faultConfigSchema,
  usage: usageConfigSchema,
} as const satisfies Record<Family, z.ZodType>;
const FAMILY_NAMES = Object.keys(FAMILY_SCHEMAS) as Family[];

const defaultsSchema = z
  .object({
    maintenance: maintenanceConfigSchema.prefault({}),
    charging: chargingConfigSchema.prefault({}),
    battery: batteryConfigSchema.prefault({}),
    fault: faultConfigSchema.prefault({}),
    usage: usageConfigSchema.prefault({}),
  })
  .strict();

const overridesSchema = z.object(Object.fromEntries(FAMILY_NAMES.map((f) => [f, z.record(z.string(), z.unknown()).optional()]))).strict();

/**
 * Overrides are deep-partial, so each model's merged result is validated against the family
 * schema; issues are reported under models.<model>.<family>.<field>.
 */
export const RulesConfigSchema = z
  .object({
    defaults: defaultsSchema.prefault({}),
    models: z.record(z.string().min(1).max(64), overridesSchema).default({}),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    for (const [model, overrides] of Object.entries(cfg.models)) {
      for (const family of FAMILY_NAMES) {
        const o = overrides[family];
        if (o === undefined) continue;
        const merged = deepMerge(cfg.defaults[family], o);
        const r = FAMILY_SCHEMAS[family].safeParse(merged);
        if (!r.success) {
          for (const issue of r.error.issues) {
            ctx.addIssue({ code: 'custom', message: issue.message, path: ['models', model, family, ...issue.path] });
          }
        }
      }
    }
  }) as unknown as z.ZodType<RulesConfig, unknown>;

export const DEFAULT_RULES_CONFIG: RulesConfig = RulesConfigSchema.parse({});

export type ParseRulesConfigResult = { ok: true; config: RulesConfig } | { ok: false; error: string };

/** Parse a JSON rule configuration. The error names each offending field path. */
export function parseRulesConfig(text: string): ParseRulesConfigResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: `rule configuration is not valid JSON: ${(err as Error).message}` };
  }
  const r = RulesConfigSchema.safeParse(raw);
  if (r.success) return { ok: true, config: r.data };
  const error = r.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ');
  return { ok: false, error: `invalid rule configuration: ${error}` };
}

/** The configuration one model sees: defaults deep-merged with that model's overrides. */
export function resolveModelConfig(config: RulesConfig, model: string | undefined): FamilyConfigs {
  const overrides = model === undefined ? undefined : Object.hasOwn(config.models, model) ? config.models[model] : undefined;
  if (!overrides) return config.defaults;
  const out = { ...config.defaults } as Record<Family, unknown>;
  for (const family of FAMILY_NAMES) {
    const o = overrides[family];
    if (o !== undefined) out[family] = deepMerge(config.defaults[family], o);
  }
  return out as unknown as FamilyConfigs;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Objects merge key by key; arrays and scalars in the override replace the base. */
export function deepMerge<T>(base: T, override: unknown): T {
  if (!isPlainObject(base) || !isPlainObject(override)) return (override === undefined ? base : override) as T;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(override)) {
    if (v === undefined) continue;
    out[k] = Object.hasOwn(base, k) ? deepMerge(base[k], v) : v;
  }
  return out as T;
}
