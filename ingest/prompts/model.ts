// The prompt's path as pure functions: every backend's prompt store goes through them (service.ts),
// so all follow exactly the same rules (the shared suite in test/ports/ checks each backend).
import { randomBytes } from 'node:crypto';
import type { AckOutcome } from '../../proto/domain.js';
import type { PromptDraft } from '../../rules/types.js';
import type { HmiState, Prompt, PromptStatus, RenderedText, ResolveOutcome, StatsRow, Step, StepRow } from '../store/ports.js';
import { iso } from '../store/paging.js';
import { isOpen } from '../store/prompt-queries.js';

export type { StatsRow, Step, StepRow } from '../store/ports.js';

const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** 'p_' + 16 base32 chars of 10 random bytes: short, URL-safe, unguessable. */
export function newPromptId(): string {
  const bytes = randomBytes(10);
  let bits = 0;
  let acc = 0;
  let out = 'p_';
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
    acc &= (1 << bits) - 1;
  }
  return out;
}

export function promptFromDraft(d: PromptDraft, text: RenderedText, vin: string, dealerId: string | null, now: number): Prompt {
  const at = iso(now);
  return {
    id: newPromptId(),
    vin,
    kind: d.kind,
    audience: [...d.audience],
    severity: d.severity,
    status: 'open',
    title: text.title,
    body: text.body,
    locale: text.locale,
    actions: text.actions ?? [],
    dedupKey: d.dedupKey,
    evidence: d.evidence,
    createdAt: at,
    updatedAt: at,
    outcome: null,
    urgent: d.urgent,
    value: d.value ?? 0,
    expiresAt: d.expiresAt === undefined ? null : iso(d.expiresAt),
    hmiState: d.audience.includes('hmi') ? 'pending' : 'none',
    dealerId,
    acknowledgedBy: null,
    resolvedBy: null,
    note: null,
  };
}

/** A transition: the new prompt and the step it took, or undefined when it does not apply. */
export type Transition = { prompt: Prompt; step: Step; at: number; by: string | null } | undefined;

/** HMI states in which the head unit may still show the prompt: it must be told to remove it. */
const HMI_LIVE: readonly HmiState[] = ['pending', 'sent', 'delivered', 'shown'];

function withdrawHmi(p: Prompt): HmiState {
  return HMI_LIVE.includes(p.hmiState) ? 'withdrawn' : p.hmiState;
}

/**
 * Published to the car: hmiState sent, nothing else. No change step: the car does not have it yet
 * (docs/architecture.md#confirmed-hmi-delivery); a re-send of a sent prompt changes nothing.
 */
export function markHmiSent(p: Prompt, now: number): Prompt | undefined {
  if (!isOpen(p) || p.hmiState !== 'pending') return undefined;
  return { ...p, hmiState: 'sent', updatedAt: iso(now) };
}

/** HMI states before the car confirmed it has the prompt. */
export const HMI_UNCONFIRMED: readonly HmiState[] = ['pending', 'sent'];

/**
 * The car has the prompt: its client PUBACKed it (embedded broker), or the head unit acked it. The
 * one 'delivered' step; only the prompt's own vehicle, and only once.
 */
export function markHmiDelivered(p: Prompt, vin: string, now: number): Transition {
  if (p.vin !== vin || !isOpen(p) || !p.audience.includes('hmi') || !HMI_UNCONFIRMED.includes(p.hmiState)) return undefined;
  const status: PromptStatus = p.status === 'open' ? 'delivered' : p.status;
  return { prompt: { ...p, hmiState: 'delivered', status, updatedAt: iso(now) }, step: 'delivered', at: now, by: 'system' };
}

const ACK: Record<AckOutcome, { state: HmiState; step: Step; outcome: string }> = {
  SHOWN: { state: 'shown', step: 'shown', outcome: 'shown' },
  DISMISSED: { state: 'dismissed', step: 'dismissed', outcome: 'dismissed' },
  ACTED: { state: 'acted', step: 'acted', outcome: 'acted' },
};

/** The head unit reports what the owner did. Only the prompt's own vehicle may; duplicates are no-ops. */
export function recordHmiAck(p: Prompt, vin: string, outcome: AckOutcome, at: number): Transition {
  if (p.vin !== vin || !isOpen(p) || !p.audience.includes('hmi')) return undefined;
  const a = ACK[outcome];
  if (!a) return undefined;
  // SHOWN only before the owner reacted; DISMISSED/ACTED are final HMI states.
  const from: readonly HmiState[] = outcome === 'SHOWN' ? ['pending', 'sent', 'delivered'] : ['pending', 'sent', 'delivered', 'shown'];
  if (!from.includes(p.hmiState)) return undefined;
  const status: PromptStatus = p.status === 'open' ? 'delivered' : p.status;
  return { prompt: { ...p, hmiState: a.state, outcome: a.outcome, status, updatedAt: iso(at) }, step: a.step, at, by: 'hmi' };
}

export function acknowledge(p: Prompt, by: string, note: string | undefined, now: number): Transition {
  if (p.status !== 'open' && p.status !== 'delivered') return undefined;
  return {
    prompt: { ...p, status: 'acknowledged', acknowledgedBy: by, note: note ?? p.note, updatedAt: iso(now) },
    step: 'acknowledged',
    at: now,
    by,
  };
}

/** An advisor closes the prompt; the HMI is told to drop it if it still shows it. */
export function resolveByAdvisor(p: Prompt, by: string, outcome: ResolveOutcome, note: string | undefined, now: number): Transition {
  if (!isOpen(p)) return undefined;
  return {
    prompt: { ...p, status: 'resolved', outcome, resolvedBy: by, note: note ?? p.note, hmiState: withdrawHmi(p), updatedAt: iso(now) },
    step: 'resolved',
    at: now,
    by,
  };
}

const ACTED_ON = ['acted', 'booked', 'declined', 'unreachable', 'other'];

/** The situation ended (rules' resolve event). Unless someone acted on it, it was withdrawn. */
export function resolveBySystem(p: Prompt, reason: string, now: number): Transition {
  if (!isOpen(p)) return undefined;
  const actedOn = p.outcome !== null && ACTED_ON.includes(p.outcome);
  return {
    prompt: {
      ...p,
      status: 'resolved',
      outcome: actedOn ? p.outcome : 'withdrawn',
      resolvedBy: 'system',
      note: reason || p.note,
      hmiState: withdrawHmi(p),
      updatedAt: iso(now),
    },
    step: actedOn ? 'resolved' : 'withdrawn',
    at: now,
    by: 'system',
  };
}

export function expire(p: Prompt, now: number): Transition {
  if (!isOpen(p) || p.expiresAt === null || Date.parse(p.expiresAt) > now) return undefined;
  return {
    prompt: { ...p, status: 'expired', outcome: 'expired', hmiState: withdrawHmi(p), updatedAt: iso(now) },
    step: 'expired',
    at: now,
    by: 'system',
  };
}

const REACHED = new Set<Step>(['delivered', 'shown', 'dismissed', 'acted', 'acknowledged']);
const ADVISOR_OUTCOMES = new Set(['booked', 'declined', 'unreachable', 'other']);

/**
 * Per-kind counts of distinct prompts that took each step in the window. "delivered" counts a
 * prompt that reached anyone (HMI delivered, i.e. confirmed by the car, shown or reacted; advisor
 * acknowledged or closed it), so the
 * conversion (acted or booked) / delivered never exceeds 1.
 */
export function aggregateStats(rows: Iterable<StepRow>): StatsRow[] {
  type Acc = Record<
    'delivered' | 'shown' | 'dismissed' | 'acted' | 'booked' | 'acknowledged' | 'resolved' | 'expired' | 'converted',
    Set<string>
  >;
  const byKind = new Map<string, Acc>();
  for (const r of rows) {
    let acc = byKind.get(r.kind);
    if (!acc) {
      acc = {
        delivered: new Set(),
        shown: new Set(),
        dismissed: new Set(),
        acted: new Set(),
        booked: new Set(),
        acknowledged: new Set(),
        resolved: new Set(),
        expired: new Set(),
        converted: new Set(),
      };
      byKind.set(r.kind, acc);
    }
    const advisorClosed = r.step === 'resolved' && r.outcome !== null && ADVISOR_OUTCOMES.has(r.outcome);
    if (REACHED.has(r.step) || advisorClosed) acc.delivered.add(r.promptId);
    if (r.step === 'shown' || r.step === 'dismissed' || r.step === 'acknowledged' || r.step === 'acted') acc[r.step].add(r.promptId);
    if (r.step === 'acted') acc.converted.add(r.promptId);
    if (r.step === 'resolved' || r.step === 'withdrawn') acc.resolved.add(r.promptId);
    if (r.step === 'expired') acc.expired.add(r.promptId);
    if (r.step === 'resolved' && r.outcome === 'booked') {
      acc.booked.add(r.promptId);
      acc.converted.add(r.promptId);
    }
  }
  return [...byKind.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([kind, a]) => ({
      kind,
      delivered: a.delivered.size,
      shown: a.shown.size,
      dismissed: a.dismissed.size,
      acted: a.acted.size,
      booked: a.booked.size,
      acknowledged: a.acknowledged.size,
      resolved: a.resolved.size,
      expired: a.expired.size,
      conversion: a.delivered.size === 0 ? null : a.converted.size / a.delivered.size,
    }));
}
