// Types of the advisor API's JSON responses, inferred from the zod schemas the routes serialise with.
import type { z } from 'zod';
import type {
  PromptActionResult,
  PromptPage,
  PromptSchema,
  StatsResponse,
  TelemetryResponse,
  VehicleDetail,
  VehiclePage,
} from '../../ingest/http/schemas.js';

export type PromptJson = z.infer<typeof PromptSchema>;
export type PromptPageJson = z.infer<typeof PromptPage>;
export type PromptActionJson = z.infer<typeof PromptActionResult>;
export type VehicleDetailJson = z.infer<typeof VehicleDetail>;
export type VehiclePageJson = z.infer<typeof VehiclePage>;
export type StatsJson = z.infer<typeof StatsResponse>;
export type TelemetryJson = z.infer<typeof TelemetryResponse>;
