// Campaigns as pure data (docs/domain.md#campaigns): a new campaign from its validated input, the
// state changes an operator may make, a delivery's path following its prompt's steps, and the
// funnel counts (overall and per segment). Shared by the service, the stores' suites and the tests.
import { randomBytes } from 'node:crypto';
import type { Locale } from '../../proto/domain.js';
import type { PromptDraft, Segments } from '../../rules/types.js';
import type { Campaign, CampaignDelivery, CampaignState, DeliveryState, RenderedText, Step } from '../store/ports.js';
import { iso } from '../store/paging.js';

/** What a client sends (POST /api/v1/campaigns), already validated; times as epoch ms. */
export type CampaignInput = Pick<
  Campaign,
  'name' | 'audience' | 'message' | 'actions' | 'priority' | 'frequencyCap' | 'quietHoursRespected'
> & {
  startsAt: number;
  endsAt: number;
};

export const newCampaignId = (): string => `c_${randomBytes(8).toString('hex')}`;

export function newCampaign(input: CampaignInput, by: string, now: number): Campaign {
  return {
    id: newCampaignId(),
    name: input.name,
    audience: input.audience,
    message: input.message,
    actions: input.actions,
    startsAt: iso(input.startsAt),
    endsAt: iso(input.endsAt),
    priority: input.priority,
    frequencyCap: input.frequencyCap,
    quietHoursRespected: input.quietHoursRespected,
    state: 'active',
    launchedAt: null,
    createdAt: iso(now),
    updatedAt: iso(now),
    createdBy: by,
  };
}

export type CampaignCommand = 'pause' | 'resume' | 'cancel';

/** The state a command leads to, or undefined when it does not apply (ended and cancelled campaigns take none). */
export function commandTarget(c: Campaign, cmd: CampaignCommand, now: number): CampaignState | undefined {
  if (c.state === 'cancelled' || now >= Date.parse(c.endsAt)) return undefined;
  if (cmd === 'cancel') return 'cancelled';
  if (cmd === 'pause') return c.state === 'active' ? 'paused' : undefined;
  return c.state === 'paused' ? 'active' : undefined;
}

/** The HMI rank of a campaign's messages: its priority (0–10), below every built-in HMI prompt (≥ 20). */
export const campaignValue = (c: Pick<Campaign, 'priority'>): number => c.priority;

export function dedupKeyOf(vin: string, campaignId: string, occurrence: number): string {
  return `${vin}:campaign.message:${campaignId}:${occurrence}`;
}

/** The prompt of one occurrence (docs/domain.md#campaigns): info, non-urgent, expiring at endsAt. */
export function campaignDraft(c: Campaign, vin: string, occurrence: number, segments: Segments, now: number): PromptDraft {
  return {
    kind: 'campaign.message',
    dedupKey: dedupKeyOf(vin, c.id, occurrence),
    severity: 'info',
    audience: ['hmi', 'lifecycle'],
    urgent: false,
    ts: now,
    evidence: { campaignId: c.id, campaignName: c.name, occurrence, segments, quietHoursRespected: c.quietHoursRespected },
    params: {},
    value: campaignValue(c),
    expiresAt: Date.parse(c.endsAt),
  };
}

/** The message in the vehicle's locale with its actions (the car adds dismiss unless one is listed). */
export function campaignText(c: Campaign, locale: Locale): RenderedText | undefined {
  const m = c.message[locale];
  if (!m) return undefined;
  return { title: m.title, body: m.body, locale, actions: c.actions.map((a) => ({ id: a.id, label: a.label[locale] ?? a.id })) };
}

/** The delivery state a prompt step leads to (acknowledged changes nothing). */
export const DELIVERY_STEP: Partial<Record<Step, DeliveryState>> = {
  created: 'targeted',
  delivered: 'delivered',
  shown: 'shown',
  dismissed: 'dismissed',
  acted: 'acted',
  withdrawn: 'withdrawn',
  expired: 'expired',
  resolved: 'closed',
};

/**
 * A delivery after its prompt took `step` at `at`: timestamps set once, the state the latest step.
 * Undefined when the step changes nothing (created: the row was written with it; acknowledged).
 */
export function followStep(d: CampaignDelivery, step: Step, at: number): CampaignDelivery | undefined {
  const state = DELIVERY_STEP[step];
  if (!state || state === 'targeted') return undefined;
  const n: CampaignDelivery = { ...d, state };
  if (state === 'delivered' || state === 'shown' || state === 'dismissed' || state === 'acted') n.deliveredAt ??= at;
  if (state === 'shown' || state === 'dismissed' || state === 'acted') n.shownAt ??= at;
  if (state === 'dismissed') n.dismissedAt ??= at;
  if (state === 'acted') n.actedAt ??= at;
  if (state === 'withdrawn' || state === 'expired' || state === 'closed') {
    n.closedAt ??= at;
    // once the owner has seen it, the delivery keeps what the owner did when its prompt later closes
    if (d.shownAt !== null) n.state = d.state;
  }
  return n;
}

export interface Funnel {
  targeted: number;
  /** Targeted, not yet on the car, not withdrawn (waiting for parked, quiet hours, the cap or the car). */
  pending: number;
  delivered: number;
  shown: number;
  dismissed: number;
  acted: number;
  withdrawn: number;
  expired: number;
  /** acted ÷ delivered; null before a delivery. */
  conversion: number | null;
}

export function funnelOf(ds: Iterable<CampaignDelivery>): Funnel {
  const f = { targeted: 0, pending: 0, delivered: 0, shown: 0, dismissed: 0, acted: 0, withdrawn: 0, expired: 0 };
  for (const d of ds) {
    f.targeted++;
    if (d.state === 'targeted') f.pending++;
    if (d.deliveredAt !== null) f.delivered++;
    if (d.shownAt !== null) f.shown++;
    if (d.dismissedAt !== null) f.dismissed++;
    if (d.actedAt !== null) f.acted++;
    if (d.state === 'withdrawn') f.withdrawn++;
    if (d.state === 'expired') f.expired++;
  }
  return { ...f, conversion: f.delivered === 0 ? null : f.acted / f.delivered };
}

/** The funnel per segment the vehicles were in when targeted, ordered stage, activity, maturity. */
export function funnelBySegment(ds: Iterable<CampaignDelivery>): Array<Segments & Funnel> {
  const groups = new Map<string, { segments: Segments; rows: CampaignDelivery[] }>();
  for (const d of ds) {
    const k = `${d.segments.stage}/${d.segments.activity}/${d.segments.maturity}`;
    const g = groups.get(k) ?? { segments: d.segments, rows: [] };
    g.rows.push(d);
    groups.set(k, g);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, g]) => ({ stage: g.segments.stage, activity: g.segments.activity, maturity: g.segments.maturity, ...funnelOf(g.rows) }));
}
