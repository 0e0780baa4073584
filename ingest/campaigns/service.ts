// What the lifecycle system does with campaigns (docs/contract.md#campaigns): create, list, read
// with live counts and stats, pause, resume, cancel; plus the sweep's part (launch at startsAt,
// repeats the frequency cap allows). Every change runs through `record`: the campaign, its
// prompts, their delivery rows, outbox rows and the audit entry in one transaction, then published.
import type { Locale } from '../../proto/domain.js';
import type { Campaign, CampaignStatus, PromptChange, Stores } from '../store/ports.js';
import { iso } from '../store/paging.js';
import type { CampaignDeliveries } from './delivery.js';
import { commandTarget, funnelBySegment, funnelOf, newCampaign, type CampaignCommand, type CampaignInput, type Funnel } from './model.js';
import { matchesProfile, statusAt } from './targeting.js';

export interface CampaignServiceDeps {
  stores: Pick<Stores, 'campaigns' | 'vehicles' | 'transaction'>;
  delivery: CampaignDeliveries;
  clock: { now(): number };
  /**
   * Prompt changes made by `fn`, committed in one transaction with their outbox rows (and the
   * campaign rows `fn` writes), then published; `deliver`: HMI delivery for their vehicles
   * (PromptFanout.record).
   */
  record(fn: () => Promise<PromptChange[]>, deliver: boolean): Promise<PromptChange[]>;
}

/** Writes the audit entry of a campaign change, inside its transaction. */
export type CampaignAudit = (c: Campaign) => Promise<void> | void;

/** A campaign as the API shows it: its status at the fleet clock and its live funnel. */
export type CampaignView = Campaign & { status: CampaignStatus; counts: Funnel };

export interface CampaignStats {
  campaignId: string;
  status: CampaignStatus;
  totals: Funnel;
  segments: Array<ReturnType<typeof funnelBySegment>[number]>;
}

export class CampaignService {
  constructor(private readonly deps: CampaignServiceDeps) {}

  async view(c: Campaign): Promise<CampaignView> {
    const status = statusAt(c, this.deps.clock.now());
    return { ...c, status, counts: funnelOf(await this.deps.stores.campaigns.deliveries(c.id)) };
  }

  async get(id: string): Promise<CampaignView | undefined> {
    const c = await this.deps.stores.campaigns.get(id);
    return c && this.view(c);
  }

  async list(q: { limit: number; cursor?: string }): Promise<{ items: CampaignView[]; nextCursor: string | null }> {
    const page = await this.deps.stores.campaigns.list(q);
    const items: CampaignView[] = [];
    for (const c of page.items) items.push(await this.view(c));
    return { items, nextCursor: page.nextCursor };
  }

  async stats(id: string): Promise<CampaignStats | undefined> {
    const c = await this.deps.stores.campaigns.get(id);
    if (!c) return undefined;
    const ds = await this.deps.stores.campaigns.deliveries(id);
    return { campaignId: id, status: statusAt(c, this.deps.clock.now()), totals: funnelOf(ds), segments: funnelBySegment(ds) };
  }

  /**
   * Locales of registered vehicles the audience may reach (its profile fields match; segments
   * change, so any of them may enter) that the message lacks, with how many vehicles use each.
   */
  async missingLocales(input: Pick<CampaignInput, 'audience' | 'message'>): Promise<Array<{ locale: Locale; vehicles: number }>> {
    const { vehicles } = this.deps.stores;
    const missing = new Map<Locale, number>();
    let cursor: string | undefined;
    do {
      const page = await vehicles.list({ limit: 1000, cursor });
      for (const v of page.items) {
        if (input.message[v.locale] === undefined && matchesProfile(input.audience, v.vin, v))
          missing.set(v.locale, (missing.get(v.locale) ?? 0) + 1);
      }
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    return [...missing.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([locale, n]) => ({ locale, vehicles: n }));
  }

  /** A new campaign; running at once if startsAt has passed (one pass over the fleet), else launched by the sweep. */
  async create(input: CampaignInput, by: string, audit: CampaignAudit): Promise<CampaignView> {
    const now = this.deps.clock.now();
    let made: Campaign | undefined;
    await this.deps.record(async () => {
      const c = newCampaign(input, by, now);
      await this.deps.stores.campaigns.insert(c);
      await audit(c);
      made = c;
      return this.launchIfDue(c, now);
    }, true);
    return this.view((await this.deps.stores.campaigns.get(made!.id))!);
  }

  /**
   * pause: no new messages, and those not yet on a car are withdrawn; resume: running again, one
   * pass (a vehicle whose message was withdrawn unseen gets a new one); cancel: for good, and the
   * messages the owners have not seen (on the car or not) are withdrawn. Undefined: not allowed now.
   */
  async command(id: string, cmd: CampaignCommand, audit: CampaignAudit): Promise<CampaignView | undefined> {
    const now = this.deps.clock.now();
    let done = false;
    await this.deps.record(async () => {
      const c = await this.deps.stores.campaigns.get(id);
      const state = c && commandTarget(c, cmd, now);
      if (!c || !state) return [];
      const next: Campaign = { ...c, state, updatedAt: iso(now) };
      await this.deps.stores.campaigns.update(next);
      await audit(next);
      done = true;
      const { delivery } = this.deps;
      if (cmd === 'pause') return delivery.withdrawAll(next, 'unshown', 'paused', now);
      if (cmd === 'cancel') return delivery.withdrawAll(next, 'unshown', 'cancelled', now);
      return this.launchIfDue({ ...next, launchedAt: null }, now);
    }, true);
    return done ? this.get(id) : undefined;
  }

  /**
   * A vehicle's profile was created or changed (PUT /api/v1/vehicles/{vin}): its model, dealer,
   * locale or type may put it into an audience or out of one, with the segments it has now.
   */
  onProfileChanged(vin: string): Promise<PromptChange[]> {
    const now = this.deps.clock.now();
    const { campaigns, vehicles } = this.deps.stores;
    return this.deps.record(async () => {
      const profile = await vehicles.get(vin);
      const segments = await vehicles.segments(vin);
      const out: PromptChange[] = [];
      for (const c of await campaigns.inState('active')) out.push(...(await this.deps.delivery.evaluate(c, vin, profile, segments, now)));
      return out;
    }, true);
  }

  /** The sweep: campaigns whose startsAt has come get their pass; capped ones their due repeats. */
  sweep(): Promise<PromptChange[]> {
    const now = this.deps.clock.now();
    return this.deps.record(async () => {
      const out: PromptChange[] = [];
      for (const c of await this.deps.stores.campaigns.inState('active')) {
        if (statusAt(c, now) !== 'active') continue;
        out.push(...(c.launchedAt === null ? await this.launchIfDue(c, now) : await this.deps.delivery.repeat(c, now)));
      }
      return out;
    }, true);
  }

  private async launchIfDue(c: Campaign, now: number): Promise<PromptChange[]> {
    if (statusAt(c, now) !== 'active') return [];
    await this.deps.stores.campaigns.update({ ...c, launchedAt: iso(now) });
    return this.deps.delivery.pass(c, now);
  }
}
