// Fault code defaults (docs/domain.md#faults). Settable per model.
import { z } from 'zod';

const severity = z.enum(['info', 'warning', 'critical']);

export const faultConfigSchema = z
  .object({
    /** Per-code severity overrides on top of the built-in catalogue, e.g. {"P0A80": "critical"}. */
    severityOverrides: z.record(z.string().regex(/^[PCBU][0-3][0-9A-F]{3}$/, 'DTC must be an SAE J2012 code'), severity).default({}),
    /** Codes that never prompt (known-benign for this model). */
    ignore: z.array(z.string().regex(/^[PCBU][0-3][0-9A-F]{3}$/, 'DTC must be an SAE J2012 code')).default([]),
  })
  .strict();
export type FaultConfig = z.infer<typeof faultConfigSchema>;
