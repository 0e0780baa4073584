// Charging and energy defaults (docs/domain.md#charging-and-energy). Settable per model.
import { z } from 'zod';

export const chargingConfigSchema = z
  .object({
    /** charging.low_soc below this SOC (%) while not charging. */
    lowSocPct: z.number().min(0).max(100).default(20),
    /** charging.critical_soc below this SOC (%). */
    criticalSocPct: z.number().min(0).max(100).default(7),
    /** Both prompts re-arm only once the battery has been charged above this SOC (%). */
    rearmSocPct: z.number().min(0).max(100).default(30),
    /** Usable traction battery capacity (kWh): session energy and range estimates. */
    usableCapacityKwh: z.number().positive().max(1000).default(60),
    /** Average consumption for the remaining-range estimate. */
    consumptionKwhPer100km: z.number().positive().max(200).default(16),
    habit: z
      .object({
        windowDays: z.number().int().min(1).max(365).default(30),
        /** Fewer sessions than this in the window say nothing about habits. */
        minSessions: z.number().int().min(1).default(5),
        /** DC fast share of the window's sessions above which the habit prompt fires. */
        dcShareAbove: z.number().min(0).max(1).default(0.6),
        /** A session "ends full" at or above this SOC (%). */
        fullSocPct: z.number().min(0).max(100).default(100),
        /** ... and "is left there" when it stays full, parked, for this long. */
        fullDwellHours: z.number().min(0).default(4),
        /** Share of the window's sessions left full above which the habit prompt fires. */
        fullDwellShareAbove: z.number().min(0).max(1).default(0.5),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .refine((c) => c.criticalSocPct <= c.lowSocPct && c.lowSocPct <= c.rearmSocPct, {
    message: 'expected criticalSocPct <= lowSocPct <= rearmSocPct',
  });
export type ChargingConfig = z.infer<typeof chargingConfigSchema>;
