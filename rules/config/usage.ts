// Usage and lifecycle defaults (docs/domain.md#usage-and-lifecycle). Settable per model.
import { z } from 'zod';

const days = (d: number) => z.number().positive().max(3650).default(d);

export const usageConfigSchema = z
  .object({
    stage: z
      .object({
        /** new_owner for this many days after delivery. */
        newOwnerDays: days(30),
        /** break_in until the odometer reaches this (km). */
        breakInKm: z.number().min(0).default(1_500),
        /** upgrade_window from this many months of ownership ... */
        upgradeMonths: z.number().int().positive().max(600).default(36),
        /** ... or this odometer (km), whichever comes first. */
        upgradeKm: z.number().positive().default(100_000),
      })
      .strict()
      .prefault({}),
    activity: z
      .object({
        /** active: driven within this many days. */
        activeDays: days(7),
        /** declining: distance over this many days ... */
        declineWindowDays: days(30),
        /** ... under this share of the vehicle's own average for such a window. */
        declineRatio: z.number().min(0).max(1).default(0.5),
        /** The own average needs this much history (days since first seen) before it is trusted. */
        declineMinHistoryDays: days(60),
        /** dormant: not driven for this many days. */
        dormantDays: days(30),
        /** lost: no telemetry at all for this many days. */
        lostDays: days(90),
      })
      .strict()
      .prefault({}),
    maturity: z
      .object({
        /** novice while under these months or under this distance. */
        noviceMonths: z.number().int().positive().max(600).default(3),
        noviceKm: z.number().positive().default(3_000),
        /** skilled while under these months or under this distance; veteran after. */
        skilledMonths: z.number().int().positive().max(600).default(12),
        skilledKm: z.number().positive().default(20_000),
      })
      .strict()
      .prefault({}),
    /** usage.dormant_vehicle after this many days parked. */
    dormantVehicleDays: days(14),
    /** A day's utilisation (commercial vehicles) is reported this long after midnight, so late samples count. */
    utilisationDelayMinutes: z.number().min(0).max(720).default(60),
    /** Per-day history kept in state (days); must cover the decline window. */
    historyDays: z.number().int().min(7).max(400).default(60),
    /** Gaps between driving readings longer than this do not count as driving time (minutes). */
    maxDriveGapMinutes: z.number().positive().max(1440).default(15),
    /** Odometer jumps larger than this between two readings are treated as a rebase, not distance (km). */
    maxOdometerStepKm: z.number().positive().default(2_000),
  })
  .strict()
  .refine((c) => c.historyDays >= c.activity.declineWindowDays, { message: 'historyDays must cover activity.declineWindowDays' })
  .refine((c) => c.activity.activeDays <= c.activity.dormantDays && c.activity.dormantDays <= c.activity.lostDays, {
    message: 'expected activity.activeDays <= dormantDays <= lostDays',
  });
export type UsageConfig = z.infer<typeof usageConfigSchema>;
