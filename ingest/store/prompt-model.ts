// The prompt's path as pure functions, shared by the SQLite and in-memory prompt stores so both
// follow exactly the same rules (the shared suite in test/ports/ checks each storage against them).
import { randomBytes } from 'node:crypto';
import type { AckOutcome } from '../../proto/domain.js';
import type { PromptDraft } from '../../rules/types.js';
import type { HmiState, Prompt, PromptChange, PromptStatus, RenderedText, ResolveOutcome } from './ports.js';

export type Step = PromptChange['step'];
export type StatsRow = ReturnType<import('./ports.js').PromptStore['stats']>[number];

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

export const iso = (ms: number): string => new Date(ms).toISOString();
export const TERMINAL: readonly PromptStatus[] = ['resolved', 'expired'];
export const isOpen = (p: Prompt): boolean => !TERMINAL.includes(p.status);

/** A bad cursor is the client's mistake: the HTTP layer maps this to a 400. */
export class InvalidCursorError extends Error {
  constructor() {
    super('invalid cursor: pass back the nextCursor of a previous page unchanged');
    this.name = 'InvalidCursorError';
  }
}

/** Keyset cursor over (createdAt desc, id desc), opaque to clients. */
export function encodeCursor(createdMs: number, id: string): string {
  return Buffer.from(JSON.stringify([createdMs, id])).toString('base64url');
}

export function decodeCursor(cursor: string): { createdMs: number; id: string } {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && Number.isFinite(v[0]) && typeof v[1] === 'string') return { createdMs: v[0] as number, id: v[1] };
  } catch {
    // fall through to the error below
  }
  throw new InvalidCursorError();
}

/** Same idea for lists keyed by a single string (vehicles by VIN). */
export function encodeKeyCursor(key: string): string {
  return Buffer.from(JSON.stringify([key])).toString('base64url');
}

export function decodeKeyCursor(cursor: string): string {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 1 && typeof v[0] === 'string') return v[0];
  } catch {
    // fall through
  }
  throw new InvalidCursorError();
}

/** Page sizes are bounded whatever the caller asks for. */
export const clampLimit = (n: number): number => Math.max(1, Math.min(1000, Math.floor(Number.isFinite(n) ? n : 50)));

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
const HMI_LIVE: readonly HmiState[] = ['pending', 'sent', 'shown'];

function withdrawHmi(p: Prompt): HmiState {
  return HMI_LIVE.includes(p.hmiState) ? 'withdrawn' : p.hmiState;
}

export function markHmiSent(p: Prompt, now: number): Transition {
  if (!isOpen(p) || p.hmiState !== 'pending') return undefined;
  const status: PromptStatus = p.status === 'open' ? 'delivered' : p.status;
  return { prompt: { ...p, hmiState: 'sent', status, updatedAt: iso(now) }, step: 'delivered', at: now, by: 'system' };
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
  const from: readonly HmiState[] = outcome === 'SHOWN' ? ['pending', 'sent'] : ['pending', 'sent', 'shown'];
  if (!from.includes(p.hmiState)) return undefined;
  const status: PromptStatus = p.status === 'open' ? 'delivered' : p.status;
  return { prompt: { ...p, hmiState: a.state, outcome: a.outcome, status, updatedAt: iso(at) }, step: a.step, at, by: 'hmi' };
}

export function acknowledge(p: Prompt, by: string, note: string | undefined, now: number): Transition {
  if (p.status !== 'open' && p.status !== 'delivered') return undefined;
  return { prompt: { ...p, status: 'acknowledged', acknowledgedBy: by, note: note ?? p.note, updatedAt: iso(now) }, step: 'acknowledged', at: now, by };
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
    prompt: { ...p, status: 'resolved', outcome: actedOn ? p.outcome : 'withdrawn', resolvedBy: 'system', note: reason || p.note, hmiState: withdrawHmi(p), updatedAt: iso(now) },
    step: actedOn ? 'resolved' : 'withdrawn',
    at: now,
    by: 'system',
  };
}

export function expire(p: Prompt, now: number): Transition {
  if (!isOpen(p) || p.expiresAt === null || Date.parse(p.expiresAt) > now) return undefined;
  return { prompt: { ...p, status: 'expired', outcome: 'expired', hmiState: withdrawHmi(p), updatedAt: iso(now) }, step: 'expired', at: now, by: 'system' };
}

/** Order for the HMI queue: urgent first, then higher value, then older. */
export function hmiOrder(a: Prompt, b: Prompt): number {
  if (a.urgent !== b.urgent) return a.urgent ? -1 : 1;
  if (a.value !== b.value) return b.value - a.value;
  return Date.parse(a.createdAt) - Date.parse(b.createdAt) || (a.id < b.id ? -1 : 1);
}

export function isPendingHmi(p: Prompt, vin: string, now: number): boolean {
  return p.vin === vin && p.audience.includes('hmi') && p.hmiState === 'pending' && isOpen(p) && (p.expiresAt === null || Date.parse(p.expiresAt) > now);
}

/** One change row as the stats need it. */
export interface StepRow {
  promptId: string;
  kind: string;
  step: Step;
  outcome: string | null;
}

const REACHED = new Set<Step>(['delivered', 'shown', 'dismissed', 'acted', 'acknowledged']);
const ADVISOR_OUTCOMES = new Set(['booked', 'declined', 'unreachable', 'other']);

/**
 * Per-kind counts of distinct prompts that took each step in the window. "delivered" counts a
 * prompt that reached anyone (HMI sent/shown/reacted, advisor acknowledged or closed it), so the
 * conversion (acted or booked) / delivered never exceeds 1.
 */
export function aggregateStats(rows: Iterable<StepRow>): StatsRow[] {
  type Acc = Record<'delivered' | 'shown' | 'dismissed' | 'acted' | 'booked' | 'acknowledged' | 'resolved' | 'expired' | 'converted', Set<string>>;
  const byKind = new Map<string, Acc>();
  for (const r of rows) {
    let acc = byKind.get(r.kind);
    if (!acc) {
      acc = { delivered: new Set(), shown: new Set(), dismissed: new Set(), acted: new Set(), booked: new Set(), acknowledged: new Set(), resolved: new Set(), expired: new Set(), converted: new Set() };
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
