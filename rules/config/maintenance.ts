// Maintenance schedule defaults (docs/domain.md#maintenance). Settable per model through the
// rules configuration's model overrides, so each model carries its own schedule.
import { z } from 'zod';

const intervalSchema = (km: number, months: number) =>
  z
    .object({
      /** Distance from the cycle's start (delivery or last service) to the due point. */
      km: z.number().int().positive().max(1_000_000).default(km),
      /** Calendar months from the cycle's start to the due point (whichever comes first). */
      months: z.number().int().positive().max(120).default(months),
    })
    .strict()
    .prefault({});

const itemList = (items: string[]) => z.array(z.string().min(1).max(64)).max(32).default(items);

export const maintenanceConfigSchema = z
  .object({
    /** First service after delivery. */
    firstService: intervalSchema(5_000, 6),
    /**
     * Regular interval after a recorded service, per powertrain. PHEV follows the ICE interval:
     * its engine still needs oil and filters on the combustion schedule.
     */
    interval: z
      .object({
        ICE: intervalSchema(10_000, 12),
        BEV: intervalSchema(20_000, 24),
        PHEV: intervalSchema(10_000, 12),
      })
      .strict()
      .prefault({}),
    /** maintenance.upcoming this close to the due point. */
    upcoming: z
      .object({ km: z.number().min(0).default(1_000), days: z.number().min(0).default(30) })
      .strict()
      .prefault({}),
    /** maintenance.overdue this far past the due point. */
    overdue: z
      .object({ km: z.number().min(0).default(1_000), days: z.number().min(0).default(30) })
      .strict()
      .prefault({}),
    /** maintenance.lapsed levels 1, 2, 3: months after the due point without a service. */
    lapsedMonths: z
      .array(z.number().int().positive().max(120))
      .length(3)
      .default([3, 5, 7])
      .refine((m) => m[0] < m[1] && m[1] < m[2], { message: 'expected increasing months for levels 1 < 2 < 3' }),
    /** maintenance.followup this many days after a recorded visit. */
    followupDays: z.number().int().min(0).max(90).default(3),
    /** A follow-up more than this many days late (e.g. a visit recorded long afterwards) is skipped. */
    followupMaxLateDays: z.number().int().min(0).max(365).default(14),
    /** Scheduled service items (identifiers, localised in rules/i18n/maintenance.ts). */
    items: z
      .object({
        ICE: itemList(['engine_oil', 'oil_filter', 'air_filter', 'brake_inspection', 'tyre_inspection']),
        PHEV: itemList(['engine_oil', 'oil_filter', 'brake_inspection', 'tyre_inspection', 'hv_battery_inspection']),
        BEV: itemList(['cabin_filter', 'brake_fluid_check', 'tyre_rotation', 'coolant_check', 'hv_battery_inspection']),
      })
      .strict()
      .prefault({}),
    /** Condition-based items added to the list from the vehicle's current state. */
    condition: z
      .object({
        /** Add a 12 V battery test when the last voltage is below this (V). */
        lowVoltage12v: z.number().min(0).max(32).default(12.2),
        /** Add a traction battery health check when SOH is below this (%). */
        sohBelowPct: z.number().min(0).max(100).default(85),
      })
      .strict()
      .prefault({}),
  })
  .strict();
export type MaintenanceConfig = z.infer<typeof maintenanceConfigSchema>;
