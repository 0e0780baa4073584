// Who a campaign reaches, as pure functions (docs/domain.md#campaign-targeting): the audience over
// a vehicle's profile and its current segments, the campaign's window and state, and the frequency
// cap over the vehicle's earlier deliveries. No I/O: the delivery code and the backtest share them.
import type { Vehicle } from '../../proto/domain.js';
import type { Segments } from '../../rules/types.js';
import type { Campaign, CampaignAudience, CampaignDelivery, CampaignStatus } from '../store/ports.js';

const DAY = 86_400_000;

const allows = <T>(list: readonly T[] | undefined, v: T): boolean => list === undefined || list.length === 0 || list.includes(v);

/** The audience's profile fields alone (model, powertrain, dealer, vehicle type, VINs): who may ever enter it. */
export function matchesProfile(a: CampaignAudience, vin: string, profile: Vehicle | undefined): boolean {
  if (!profile) return false;
  return (
    allows(a.vins, vin) &&
    allows(a.model, profile.model) &&
    allows(a.powertrain, profile.powertrain) &&
    allows(a.dealerId, profile.dealerId) &&
    allows(a.vehicleType, profile.vehicleType ?? 'passenger')
  );
}

/** In the audience now: the profile matches and the current segments are in every listed tier. A vehicle without segments yet is in no audience. */
export function matchesAudience(
  a: CampaignAudience,
  vin: string,
  profile: Vehicle | undefined,
  segments: Segments | null | undefined,
): boolean {
  if (!segments || !matchesProfile(a, vin, profile)) return false;
  return allows(a.stage, segments.stage) && allows(a.activity, segments.activity) && allows(a.maturity, segments.maturity);
}

/** The campaign's status at `now`: the stored state, scheduled before startsAt, ended from endsAt on. */
export function statusAt(c: Pick<Campaign, 'state' | 'startsAt' | 'endsAt'>, now: number): CampaignStatus {
  if (c.state === 'cancelled') return 'cancelled';
  if (now >= Date.parse(c.endsAt)) return 'ended';
  if (c.state === 'paused') return 'paused';
  return now < Date.parse(c.startsAt) ? 'scheduled' : 'active';
}

/** Whether a delivery takes room under the frequency cap: it reached the owner, or it may still. */
export function countsAgainstCap(d: CampaignDelivery): boolean {
  return d.shownAt !== null || d.state === 'targeted' || d.state === 'delivered' || (d.state === 'expired' && d.deliveredAt !== null);
}

/** Whether the message is still on its way or on the car (a new occurrence waits for it to end). */
export const isLive = (d: CampaignDelivery): boolean => d.state === 'targeted' || d.state === 'delivered';

/**
 * Whether this vehicle may get another message of the campaign at `now`, given its earlier
 * deliveries: none may be live, and those counted against the cap must be fewer than it allows
 * (no cap: once per vehicle; a cap: `perVehicle` targeted in the last `perDays` days, a window
 * that includes its start: a delivery exactly `perDays` days old no longer counts).
 */
export function capAllows(c: Pick<Campaign, 'frequencyCap'>, earlier: readonly CampaignDelivery[], now: number): boolean {
  if (earlier.some(isLive)) return false;
  const counted = earlier.filter(countsAgainstCap);
  if (!c.frequencyCap) return counted.length === 0;
  const since = now - c.frequencyCap.perDays * DAY;
  return counted.filter((d) => d.targetedAt > since).length < c.frequencyCap.perVehicle;
}

/** Whether this vehicle should get a message now: running campaign, in the audience, its locale covered, the cap allowing. */
export function shouldTarget(
  c: Campaign,
  vin: string,
  profile: Vehicle | undefined,
  segments: Segments | null | undefined,
  earlier: readonly CampaignDelivery[],
  now: number,
): boolean {
  return (
    statusAt(c, now) === 'active' &&
    matchesAudience(c.audience, vin, profile, segments) &&
    c.message[profile!.locale] !== undefined &&
    capAllows(c, earlier, now)
  );
}
