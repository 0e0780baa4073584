// Ports of lifecycle campaigns (docs/domain.md#campaigns): the campaigns themselves and one
// delivery row per (campaign, vehicle, occurrence), which holds the frequency cap and the funnel.
// Part of ports.ts (re-exported there); a file of its own for size.
import type { Locale, Powertrain, VEHICLE_TYPES } from '../../proto/domain.js';
import type { Segments } from '../../rules/types.js';

/** The values of each segment tier (docs/domain.md#lifecycle-segments), for audiences. */
export const SEGMENT_VALUES = {
  stage: ['new_owner', 'break_in', 'active_owner', 'upgrade_window'],
  activity: ['active', 'declining', 'dormant', 'lost'],
  maturity: ['novice', 'skilled', 'veteran'],
} as const satisfies { [K in keyof Segments]: ReadonlyArray<Segments[K]> };

/** Stored states; `scheduled` (before startsAt) and `ended` (endsAt passed) are derived from time. */
export const CAMPAIGN_STATES = ['active', 'paused', 'cancelled'] as const;
export type CampaignState = (typeof CAMPAIGN_STATES)[number];
/** What the API shows: the stored state, or the one time gives it. */
export type CampaignStatus = CampaignState | 'scheduled' | 'ended';

/** Who a campaign is for: every listed field must match (an absent or empty list matches all). */
export interface CampaignAudience {
  stage?: Array<Segments['stage']>;
  activity?: Array<Segments['activity']>;
  maturity?: Array<Segments['maturity']>;
  model?: string[];
  powertrain?: Powertrain[];
  dealerId?: string[];
  vehicleType?: Array<(typeof VEHICLE_TYPES)[number]>;
  vins?: string[];
}

export interface CampaignText {
  title: string;
  body: string;
}

export interface CampaignAction {
  id: string;
  label: Partial<Record<Locale, string>>;
}

export interface Campaign {
  id: string;
  name: string;
  audience: CampaignAudience;
  message: Partial<Record<Locale, CampaignText>>;
  actions: CampaignAction[];
  /** ISO times: the campaign runs in [startsAt, endsAt) of the fleet clock. */
  startsAt: string;
  endsAt: string;
  /** 0–10: the HMI rank (`value`) of its messages, below every safety and service prompt. */
  priority: number;
  /** At most `perVehicle` messages per vehicle in any `perDays` days; null = once per vehicle. */
  frequencyCap: { perVehicle: number; perDays: number } | null;
  quietHoursRespected: boolean;
  state: CampaignState;
  /** When its first pass over the fleet ran (at creation, or at startsAt by the sweep); null before. */
  launchedAt: string | null;
  createdAt: string;
  updatedAt: string;
  createdBy: string;
}

/** A delivery's state: where its message is on its path (docs/domain.md#campaign-deliveries). */
export const DELIVERY_STATES = ['targeted', 'delivered', 'shown', 'dismissed', 'acted', 'withdrawn', 'expired', 'closed'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];

/** One message of a campaign to one vehicle (its `occurrence`-th), and what became of it. */
export interface CampaignDelivery {
  campaignId: string;
  vin: string;
  occurrence: number;
  promptId: string;
  dealerId: string | null;
  locale: Locale;
  /** The vehicle's segments when it was targeted (stats per segment). */
  segments: Segments;
  state: DeliveryState;
  targetedAt: number;
  deliveredAt: number | null;
  /** When the owner saw it: a SHOWN, DISMISSED or ACTED ack, whichever came first. */
  shownAt: number | null;
  dismissedAt: number | null;
  actedAt: number | null;
  /** Withdrawn, expired or closed by an advisor. */
  closedAt: number | null;
}

export interface CampaignStore {
  insert(c: Campaign): Promise<void>;
  update(c: Campaign): Promise<void>;
  get(id: string): Promise<Campaign | undefined>;
  /** Newest first, keyset-paged ((createdAt, id) descending). */
  list(q: { limit: number; cursor?: string }): Promise<{ items: Campaign[]; nextCursor: string | null }>;
  /** Campaigns in a state (the running ones: 'active'), oldest first. */
  inState(state: CampaignState): Promise<Campaign[]>;
  addDelivery(d: CampaignDelivery): Promise<void>;
  updateDelivery(d: CampaignDelivery): Promise<void>;
  deliveryByPrompt(promptId: string): Promise<CampaignDelivery | undefined>;
  /** One campaign's deliveries, by vin and occurrence; only one vehicle's with `vin`. */
  deliveries(campaignId: string, vin?: string): Promise<CampaignDelivery[]>;
  /** Deliveries whose message may still reach the car or is on it (targeted, delivered). */
  live(campaignId: string): Promise<CampaignDelivery[]>;
}
