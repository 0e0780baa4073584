// Lifecycle events as CloudEvents 1.0 (structured JSON mode). The id is derived from the stored
// change, so a retried or re-enqueued event keeps its id and the receiver can drop duplicates.
import { hasPositionSignal, withoutPositionSignals } from '../../proto/signals.js';
import type { Segments } from '../../rules/types.js';
import type { CampaignDelivery, DeliveryState, Prompt, PromptChange } from '../store/ports.js';

export const CLOUDEVENTS_SOURCE = 'odopulse/ingest';
export const CLOUDEVENTS_CONTENT_TYPE = 'application/cloudevents+json';

export interface CloudEvent<D = unknown> {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  subject: string;
  time: string;
  datacontenttype: 'application/json';
  data: D;
}

/** The prompt as docs/contract.md#prompt-json shows it (delivery internals stay inside ingest). */
export function promptJson(p: Prompt) {
  return {
    id: p.id,
    vin: p.vin,
    kind: p.kind,
    audience: p.audience,
    severity: p.severity,
    status: p.status,
    title: p.title,
    body: p.body,
    locale: p.locale,
    dedupKey: p.dedupKey,
    evidence: p.evidence,
    createdAt: p.createdAt,
    updatedAt: p.updatedAt,
    outcome: p.outcome,
    dealerId: p.dealerId,
  };
}

export const promptEventType = (step: PromptChange['step']): string => `com.odopulse.prompt.${step}`;
export const SEGMENT_CHANGED_TYPE = 'com.odopulse.segment.changed';

/**
 * What leaves for the lifecycle system. Position never does, unless the operator configured a
 * stated purpose for it (ODOPULSE_EVENTS_POSITION_PURPOSE), which then travels in every event
 * that carries position (docs/domain.md#privacy-and-retention).
 */
export interface EventPolicy {
  urls: string[];
  positionPurpose?: string;
}

function withoutPosition<T extends { evidence: Record<string, unknown> }>(
  d: T,
  purpose: string | undefined,
): T & { positionPurpose?: string } {
  if (!hasPositionSignal(d.evidence)) return d;
  if (purpose) return { ...d, positionPurpose: purpose };
  return { ...d, evidence: withoutPositionSignals(d.evidence) };
}

export function promptChangeEvent(
  c: PromptChange,
  positionPurpose?: string,
): CloudEvent<ReturnType<typeof promptJson> & { step: string; by: string | null; positionPurpose?: string }> {
  return {
    specversion: '1.0',
    // prompt ids are random, seq is unique per store: unique even if a data dir is ever reset.
    id: `${c.promptId}-${c.seq}`,
    source: CLOUDEVENTS_SOURCE,
    type: promptEventType(c.step),
    subject: c.vin,
    time: c.at,
    datacontenttype: 'application/json',
    data: withoutPosition({ ...promptJson(c.prompt), step: c.step, by: c.by }, positionPurpose),
  };
}

export interface SegmentChange {
  vin: string;
  from: Segments | null;
  to: Segments;
  /** When the change was detected (epoch ms). */
  at: number;
  dealerId?: string | null;
}

/** True when a vehicle moved between segments (a first assignment counts as a change). */
export function segmentsChanged(prev: Segments | null | undefined, next: Segments): boolean {
  return !prev || prev.stage !== next.stage || prev.activity !== next.activity || prev.maturity !== next.maturity;
}

export function segmentChangeEvent(
  s: SegmentChange,
): CloudEvent<{ vin: string; from: Segments | null; to: Segments; dealerId: string | null }> {
  const t = new Date(s.at).toISOString();
  return {
    specversion: '1.0',
    // One vehicle changes segments at most once per instant; the pair names the change.
    id: `seg-${s.vin}-${s.at}`,
    source: CLOUDEVENTS_SOURCE,
    type: SEGMENT_CHANGED_TYPE,
    subject: s.vin,
    time: t,
    datacontenttype: 'application/json',
    data: { vin: s.vin, from: s.from, to: s.to, dealerId: s.dealerId ?? null },
  };
}

export interface OutboundEvent {
  id: string;
  url: string;
  body: string;
}

function fanOut(events: CloudEvent[], urls: string[]): OutboundEvent[] {
  const out: OutboundEvent[] = [];
  for (const e of events) {
    const body = JSON.stringify(e);
    for (const url of urls) out.push({ id: e.id, url, body });
  }
  return out;
}

/** Outbox rows for prompt changes: one per (event, URL). Enqueue them in the same transaction. */
/** `policy` as plain URLs: no position ever. */
const asPolicy = (p: EventPolicy | string[]): EventPolicy => (Array.isArray(p) ? { urls: p } : p);

export function eventsForChanges(changes: PromptChange[], p: EventPolicy | string[]): OutboundEvent[] {
  const policy = asPolicy(p);
  return policy.urls.length === 0
    ? []
    : fanOut(
        changes.map((c) => promptChangeEvent(c, policy.positionPurpose)),
        policy.urls,
      );
}

/** Outbox rows for lifecycle segment changes (usage.segment_changed). */
export function eventsForSegmentChanges(changes: SegmentChange[], p: EventPolicy | string[]): OutboundEvent[] {
  const policy = asPolicy(p);
  return policy.urls.length === 0 ? [] : fanOut(changes.map(segmentChangeEvent), policy.urls);
}

/** `com.odopulse.campaign.<state>`: one per state change of a campaign delivery (docs/contract.md#cloudevents). */
export const campaignEventType = (state: DeliveryState): string => `com.odopulse.campaign.${state}`;

/** A campaign delivery's state change, caused by its prompt's change `seq` (the id's uniqueness). */
export function campaignDeliveryEvent(
  d: CampaignDelivery,
  state: DeliveryState,
  seq: number,
  at: string,
): CloudEvent<
  Omit<CampaignDelivery, 'targetedAt' | 'deliveredAt' | 'shownAt' | 'dismissedAt' | 'actedAt' | 'closedAt'> & { step: DeliveryState }
> {
  const { targetedAt: _t, deliveredAt: _d, shownAt: _s, dismissedAt: _x, actedAt: _a, closedAt: _c, ...rest } = d;
  return {
    specversion: '1.0',
    id: `camp-${d.promptId}-${seq}`,
    source: CLOUDEVENTS_SOURCE,
    type: campaignEventType(state),
    subject: d.vin,
    time: at,
    datacontenttype: 'application/json',
    data: { ...rest, step: state },
  };
}

/** Outbox rows for campaign delivery changes. */
export function eventsForCampaignDeliveries(
  changes: Array<{ delivery: CampaignDelivery; state: DeliveryState; seq: number; at: string }>,
  p: EventPolicy | string[],
): OutboundEvent[] {
  const policy = asPolicy(p);
  return policy.urls.length === 0
    ? []
    : fanOut(
        changes.map((c) => campaignDeliveryEvent(c.delivery, c.state, c.seq, c.at)),
        policy.urls,
      );
}
