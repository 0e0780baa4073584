// Battery health defaults (docs/domain.md#battery-health). Settable per model.
import { z } from 'zod';

export const batteryConfigSchema = z
  .object({
    lowVoltage12v: z
      .object({
        /** Prompt below this voltage (V) while parked. */
        thresholdV: z.number().min(0).max(32).default(11.8),
        /** Resolve (and re-arm) once a parked reading is back above this voltage (V). */
        recoverV: z.number().min(0).max(32).default(12.2),
        /** Debounce: this many consecutive parked readings below the threshold ... */
        consecutiveReadings: z.number().int().min(1).default(3),
        /** ... or readings below it spanning this many minutes. */
        minutes: z.number().min(0).default(10),
      })
      .strict()
      .prefault({})
      .refine((c) => c.recoverV >= c.thresholdV, { message: 'expected recoverV >= thresholdV' }),
    soh: z
      .object({
        /** battery.soh_degraded below this state of health (%). */
        thresholdPct: z.number().min(0).max(100).default(80),
        /** The model's expected curve: SOH falls this much per year from 100 % at delivery. */
        expectedDeclinePctPerYear: z.number().min(0).max(100).default(2.5),
        /** "Faster than expected" = more than this many points below the curve. */
        curveMarginPct: z.number().min(0).max(100).default(5),
        /** A recovery (BMS recalibration) this far above a threshold resolves the prompt. */
        hysteresisPct: z.number().min(0).max(20).default(2),
      })
      .strict()
      .prefault({}),
  })
  .strict();
export type BatteryConfig = z.infer<typeof batteryConfigSchema>;
