// Campaign messages into the prompt store, always inside the caller's transaction
// (docs/domain.md#campaign-delivery): a vehicle whose segments changed is targeted or withdrawn in
// the rules commit that changed them; a created or resumed campaign makes one pass over the fleet;
// every prompt change of a campaign message moves its delivery row (funnel, frequency cap) and
// writes a com.odopulse.campaign.* event. HMI timing then treats these prompts like any other.
import type { Vehicle } from '../../proto/domain.js';
import type { Segments } from '../../rules/types.js';
import { eventsForCampaignDeliveries, type EventPolicy, type OutboundEvent } from '../outbound/cloudevents.js';
import type { Campaign, CampaignDelivery, DeliveryState, PromptChange, Stores } from '../store/ports.js';
import { DELIVERY_STEP, campaignDraft, campaignText, dedupKeyOf, followStep } from './model.js';
import { capAllows, matchesAudience, shouldTarget, statusAt } from './targeting.js';

export interface CampaignDeliveriesDeps {
  stores: Pick<Stores, 'campaigns' | 'prompts' | 'vehicles'>;
  /** Where campaign events go (the webhook URLs; none: no events). */
  events: EventPolicy;
}

/** Why a message was withdrawn (the prompt's note). */
export type WithdrawReason = 'left_audience' | 'paused' | 'cancelled';

export class CampaignDeliveries {
  constructor(private readonly deps: CampaignDeliveriesDeps) {}

  /** Rules commit: the vehicle's segments changed. Every running campaign decides: target, withdraw, or nothing. */
  async onSegments(vin: string, profile: Vehicle | undefined, segments: Segments, now: number): Promise<PromptChange[]> {
    const out: PromptChange[] = [];
    for (const c of await this.deps.stores.campaigns.inState('active')) out.push(...(await this.evaluate(c, vin, profile, segments, now)));
    return out;
  }

  /** One campaign, one vehicle: a new message if it is due, its undelivered one withdrawn if it left the audience. */
  async evaluate(c: Campaign, vin: string, profile: Vehicle | undefined, segments: Segments | null, now: number): Promise<PromptChange[]> {
    if (statusAt(c, now) !== 'active') return [];
    const earlier = await this.deps.stores.campaigns.deliveries(c.id, vin);
    if (!matchesAudience(c.audience, vin, profile, segments)) {
      // left before the car had it: it does not get it (one already on the car stays: it may be showing)
      const undelivered = earlier.filter((d) => d.state === 'targeted');
      return this.withdrawEach(undelivered, 'left_audience', now);
    }
    if (!shouldTarget(c, vin, profile, segments, earlier, now)) return [];
    return this.target(c, vin, profile!, segments!, Math.max(0, ...earlier.map((d) => d.occurrence)) + 1, now);
  }

  /** A pass over every registered vehicle (creation, resume, start time reached). */
  async pass(c: Campaign, now: number): Promise<PromptChange[]> {
    const { vehicles } = this.deps.stores;
    const out: PromptChange[] = [];
    let cursor: string | undefined;
    do {
      const page = await vehicles.list({ limit: 1000, cursor });
      for (const v of page.items) out.push(...(await this.evaluate(c, v.vin, v, await vehicles.segments(v.vin), now)));
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    return out;
  }

  /** The vehicles already targeted once whose cap now allows another message (capped campaigns, each sweep). */
  async repeat(c: Campaign, now: number): Promise<PromptChange[]> {
    if (!c.frequencyCap || statusAt(c, now) !== 'active') return [];
    const { campaigns, vehicles } = this.deps.stores;
    const byVin = new Map<string, CampaignDelivery[]>();
    for (const d of await campaigns.deliveries(c.id)) byVin.set(d.vin, [...(byVin.get(d.vin) ?? []), d]);
    const out: PromptChange[] = [];
    for (const [vin, ds] of byVin) {
      if (!capAllows(c, ds, now)) continue;
      out.push(...(await this.evaluate(c, vin, await vehicles.get(vin), await vehicles.segments(vin), now)));
    }
    return out;
  }

  /** Withdraw the campaign's messages not yet on the car (`unshown`: also those on it the owner has not seen). */
  async withdrawAll(c: Campaign, which: 'undelivered' | 'unshown', reason: WithdrawReason, now: number): Promise<PromptChange[]> {
    const live = await this.deps.stores.campaigns.live(c.id);
    const withdrawn = live.filter((d) => which === 'unshown' || d.state === 'targeted');
    return this.withdrawEach(withdrawn, reason, now);
  }

  /**
   * Inside the transaction of prompt changes (any path): move the delivery rows of campaign
   * messages and return their events' outbox rows (none without webhook URLs; rows move anyway).
   */
  async track(changes: readonly PromptChange[]): Promise<OutboundEvent[]> {
    const { campaigns } = this.deps.stores;
    const moved: Array<{ delivery: CampaignDelivery; state: DeliveryState; seq: number; at: string }> = [];
    for (const ch of changes) {
      if (ch.prompt.kind !== 'campaign.message') continue;
      const d = await campaigns.deliveryByPrompt(ch.promptId);
      const state = DELIVERY_STEP[ch.step];
      if (!d || !state) continue;
      const next = followStep(d, ch.step, Date.parse(ch.at));
      if (next) await campaigns.updateDelivery(next);
      moved.push({ delivery: next ?? d, state, seq: ch.seq, at: ch.at });
    }
    return moved.length ? eventsForCampaignDeliveries(moved, this.deps.events) : [];
  }

  private async target(
    c: Campaign,
    vin: string,
    profile: Vehicle,
    segments: Segments,
    occurrence: number,
    now: number,
  ): Promise<PromptChange[]> {
    const text = campaignText(c, profile.locale);
    if (!text) return [];
    const draft = campaignDraft(c, vin, occurrence, segments, now);
    const changes = await this.deps.stores.prompts.applyRuleEvents(
      vin,
      [{ type: 'open', prompt: draft }],
      () => text,
      profile.dealerId,
      now,
    );
    const created = changes.find((ch) => ch.step === 'created');
    if (created) {
      await this.deps.stores.campaigns.addDelivery({
        campaignId: c.id,
        vin,
        occurrence,
        promptId: created.promptId,
        dealerId: profile.dealerId,
        locale: profile.locale,
        segments,
        state: 'targeted',
        targetedAt: now,
        deliveredAt: null,
        shownAt: null,
        dismissedAt: null,
        actedAt: null,
        closedAt: null,
      });
    }
    return changes;
  }

  /** One after the other, in the deliveries' order (the changes' sequence follows it). */
  private async withdrawEach(ds: readonly CampaignDelivery[], reason: WithdrawReason, now: number): Promise<PromptChange[]> {
    const out: PromptChange[] = [];
    for (const d of ds) out.push(...(await this.withdraw(d, reason, now)));
    return out;
  }

  private withdraw(d: CampaignDelivery, reason: WithdrawReason, now: number): Promise<PromptChange[]> {
    const dedupKey = dedupKeyOf(d.vin, d.campaignId, d.occurrence);
    const noText = () => ({ title: '', body: '', locale: d.locale });
    return this.deps.stores.prompts.applyRuleEvents(d.vin, [{ type: 'resolve', dedupKey, ts: now, reason }], noText, d.dealerId, now);
  }
}
