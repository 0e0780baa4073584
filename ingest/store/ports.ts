// Ports of the ingest service. Each has a real implementation and an in-memory one for unit
// tests; both run the same shared suite in test/ports/.
import type { Locale, Reading, Severity, Vehicle, VehicleProfile, AckOutcome } from '../../proto/domain.js';
import type {
  Audience,
  ChargingSession,
  PromptDraft,
  PromptKind,
  RuleEvent,
  Segments,
  ServiceRecord,
  RuleStateJson,
  VehicleRuleState,
} from '../../rules/types.js';
import type { AuditLog, KeyStore } from './access-ports.js';
import type { CampaignStore } from './campaign-ports.js';

export * from './access-ports.js';
export * from './campaign-ports.js';

export const PROMPT_STATUSES = ['open', 'delivered', 'acknowledged', 'resolved', 'expired'] as const;
export type PromptStatus = (typeof PROMPT_STATUSES)[number];
export const RESOLVE_OUTCOMES = ['booked', 'declined', 'unreachable', 'other'] as const;
export type ResolveOutcome = (typeof RESOLVE_OUTCOMES)[number];

/**
 * HMI delivery state of a prompt (separate from the advisor-facing status): pending (not yet
 * published), sent (published, the car has not confirmed it: re-sent on its next birth or
 * subscribe), delivered (the car's client PUBACKed it), then what the head unit reported.
 */
export type HmiState = 'none' | 'pending' | 'sent' | 'delivered' | 'shown' | 'dismissed' | 'acted' | 'withdrawn';

/** The prompt as the API shows it (docs/contract.md#prompt-json) plus delivery internals. */
export interface Prompt {
  id: string;
  vin: string;
  kind: PromptKind;
  audience: Audience[];
  severity: Severity;
  status: PromptStatus;
  title: string;
  body: string;
  locale: Locale;
  /** Actions the car offers besides dismiss, as rendered with the texts (absent on prompts stored before they were kept). */
  actions?: PromptAction[];
  dedupKey: string;
  evidence: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
  /** Last outcome on its path: shown, dismissed, acted, booked, declined, unreachable, other, withdrawn, expired. */
  outcome: string | null;
  urgent: boolean;
  value: number;
  expiresAt: string | null;
  hmiState: HmiState;
  dealerId: string | null;
  acknowledgedBy: string | null;
  resolvedBy: string | null;
  note: string | null;
}

/** One step on a prompt's path (outcome tracking and SSE). */
export interface PromptChange {
  /** Monotonic change sequence: SSE event id, resumable with Last-Event-ID. */
  seq: number;
  promptId: string;
  vin: string;
  dealerId: string | null;
  step: 'created' | 'delivered' | 'shown' | 'dismissed' | 'acted' | 'acknowledged' | 'resolved' | 'withdrawn' | 'expired';
  at: string;
  by: string | null;
  prompt: Prompt;
}

export type Step = PromptChange['step'];

/** One change row as the stats need it. */
export interface StepRow {
  promptId: string;
  kind: string;
  step: Step;
  outcome: string | null;
}

/** One dealer, several (a principal's scope; empty matches nothing), or every dealer (undefined). */
export type DealerSelector = string | readonly string[] | undefined;

export interface PromptFilter {
  vin?: string;
  kind?: string;
  audience?: Audience;
  status?: PromptStatus;
  dealerId?: string;
  /** Only prompts of these dealers (a principal's scope); an empty list matches nothing. */
  dealerIds?: readonly string[];
  limit: number;
  cursor?: string;
}

export interface RenderedText {
  title: string;
  body: string;
  locale: Locale;
  /** The prompt's own actions in its locale (rules/i18n): the one place HMI buttons come from. */
  actions?: PromptAction[];
}

/** A button on the head unit: its id comes back in the car's ack (docs/contract.md#hmi-prompt). */
export interface PromptAction {
  id: string;
  label: string;
}

/** Per-kind outcome counts (GET /api/v1/stats/prompts). */
export interface StatsRow {
  kind: string;
  delivered: number;
  shown: number;
  dismissed: number;
  acted: number;
  booked: number;
  acknowledged: number;
  resolved: number;
  expired: number;
  conversion: number | null;
}

export interface PromptStore {
  /**
   * Apply the rules' open/resolve events for one vehicle. An open whose dedupKey already has an
   * open (not resolved/expired) prompt is ignored: a situation prompts once. Returns the changes.
   */
  applyRuleEvents(
    vin: string,
    events: RuleEvent[],
    render: (d: PromptDraft) => RenderedText,
    dealerId: string | null,
    now: number,
  ): Promise<PromptChange[]>;
  get(id: string): Promise<Prompt | undefined>;
  list(filter: PromptFilter): Promise<{ items: Prompt[]; nextCursor: string | null }>;
  /**
   * Prompts for the HMI that are not yet sent (with `unconfirmed`: also those sent but not yet
   * confirmed by the car), not withdrawn and not expired.
   */
  pendingHmi(vin: string, now: number, unconfirmed?: boolean): Promise<Prompt[]>;
  /** Published to the car (hmiState sent): no change step; the car has not confirmed it yet. */
  markHmiSent(id: string, now: number): Promise<Prompt | undefined>;
  /** The car has the prompt (PUBACK from its client, or any HMI ack): the one 'delivered' step. */
  markHmiDelivered(id: string, vin: string, now: number): Promise<PromptChange | undefined>;
  recordHmiAck(id: string, vin: string, outcome: AckOutcome, at: number): Promise<PromptChange | undefined>;
  acknowledge(id: string, by: string, note: string | undefined, now: number): Promise<PromptChange | undefined>;
  resolve(id: string, by: string, outcome: ResolveOutcome, note: string | undefined, now: number): Promise<PromptChange | undefined>;
  /** Expire prompts whose expiresAt has passed. */
  expire(now: number): Promise<PromptChange[]>;
  changesSince(seq: number, dealers: DealerSelector, limit: number): Promise<PromptChange[]>;
  /** The newest change's sequence (0 when none). */
  lastChangeSeq(): Promise<number>;
  /** Per-kind counts of path steps in [from, to): delivered, shown, acted, booked, ... */
  stats(from: number, to: number, dealers?: DealerSelector): Promise<StatsRow[]>;
}

export interface VehicleRecord extends Vehicle {
  createdAt: string;
  updatedAt: string;
}

export interface VehicleStore {
  upsert(vin: string, profile: VehicleProfile, now: number): Promise<VehicleRecord>;
  get(vin: string): Promise<VehicleRecord | undefined>;
  /** `dealerIds`: only vehicles of these dealers (a principal's scope); an empty list matches nothing. */
  list(filter: { dealerId?: string; dealerIds?: readonly string[]; limit: number; cursor?: string }): Promise<{
    items: VehicleRecord[];
    nextCursor: string | null;
  }>;
  setOnline(vin: string, online: boolean, info: { agentVersion?: string; configVersion?: number; at: number }): Promise<void>;
  online(vin: string): Promise<{ online: boolean; since: string | null; agentVersion: string | null; configVersion: number | null }>;
  /**
   * Every vehicle offline (since `now` for those that were online), at start-up: the embedded
   * broker's clients are gone with the process, and each vehicle is online again at its birth.
   * Returns how many were online.
   */
  resetOnline(now: number): Promise<number>;
  setSegments(vin: string, segments: Segments, at: number): Promise<void>;
  segments(vin: string): Promise<Segments | null>;
  addServiceRecord(vin: string, rec: ServiceRecord, now: number): Promise<number>;
  serviceRecords(vin: string): Promise<Array<ServiceRecord & { id: number }>>;
  addChargingSession(s: ChargingSession): Promise<void>;
  chargingSessions(vin: string, from: number, to: number): Promise<ChargingSession[]>;
  /** Record vehicles' telemetry sequence state (a view of the journal's, written in one go). */
  setSequences(list: ReadonlyArray<VehicleSequence & { vin: string }>, at: number): Promise<void>;
  /** The vehicle's telemetry sequence state as last recorded; null before its first batch. */
  sequence(vin: string): Promise<VehicleSequence | null>;
}

/**
 * A vehicle's telemetry sequence (docs/contract.md#telemetry-batch): the boot id of its newest
 * batches, the highest seq of that boot, and `gaps`, the seqs missing right now (within each boot,
 * between its lowest and highest journalled seq; a late batch filling one takes it off).
 */
export interface VehicleSequence {
  bootId: string;
  lastSeq: number;
  gaps: number;
}

export interface RuleStateStore {
  load(vin: string): Promise<VehicleRuleState | undefined>;
  /** Kept as the JSON text given (the rules worker's own serialisation; the last of a VIN given twice wins). */
  save(states: readonly RuleStateJson[]): Promise<void>;
  all(): Promise<VehicleRuleState[]>;
}

/** What a backend stores of prompts; prompts/service.ts puts the prompt lifecycle on top. */
export interface PromptRepo {
  /** Run fn atomically (nested calls join the outer transaction). */
  tx<T>(fn: () => Promise<T>): Promise<T>;
  get(id: string): Promise<Prompt | undefined>;
  /** The prompt of this vehicle whose dedupKey is open (not resolved/expired), if any. */
  findOpen(vin: string, dedupKey: string): Promise<Prompt | undefined>;
  insert(p: Prompt): Promise<void>;
  update(p: Prompt): Promise<void>;
  /** Append a change; returns its sequence number (global, increasing, never reused). */
  appendChange(c: Omit<PromptChange, 'seq'>): Promise<number>;
  list(filter: PromptFilter): Promise<{ items: Prompt[]; nextCursor: string | null }>;
  pendingHmi(vin: string, now: number, unconfirmed?: boolean): Promise<Prompt[]>;
  /** Open prompts whose expiresAt <= now. */
  expiring(now: number): Promise<Prompt[]>;
  changesSince(seq: number, dealers: DealerSelector, limit: number): Promise<PromptChange[]>;
  /** The newest change's sequence (0 when none). */
  lastChangeSeq(): Promise<number>;
  stepsBetween(from: number, to: number, dealers?: DealerSelector): Promise<StepRow[]>;
}

/** Telemetry history (InfluxDB). Writes go through the official client's WriteApi. */
export interface TelemetryStore {
  write(readings: Reading[], tags: (vin: string) => Record<string, string>): Promise<void>;
  /**
   * Flush everything written so far; resolves once InfluxDB accepted it. Rejects on an outage
   * anywhere in it, or with TelemetryRefusedError for points written since the previous flush
   * (an earlier flush's refusals are reported to that flush only).
   */
  flush(): Promise<void>;
  latest(vin: string): Promise<{ ts: number; signals: Record<string, number | boolean | string> } | undefined>;
  /** Raw points (at most `limit`, oldest first) or, with `everyMs`, one aggregate per window. */
  history(q: {
    vin: string;
    signal: string;
    from: number;
    to: number;
    everyMs?: number;
    limit?: number;
  }): Promise<Array<{ ts: number; value: number | boolean | string | null }>>;
  count(q: { vin?: string; signal: string; from: number; to: number }): Promise<number>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}

export interface DeadLetter {
  id: number;
  at: string;
  topic: string;
  clientId: string | null;
  reason: string;
  payloadBase64: string;
}

export interface DeadLetterStore {
  add(d: { topic: string; clientId: string | null; reason: string; payload: Uint8Array; at: number }): Promise<void>;
  list(limit: number): Promise<DeadLetter[]>;
  count(): Promise<number>;
}

/** `pending` (to send), `dead` (given up: not sent, kept until an operator retries it), `delivered` (a 2xx arrived). */
export const OUTBOX_STATES = ['pending', 'dead', 'delivered'] as const;
export type OutboxState = (typeof OUTBOX_STATES)[number];

/** A durable outbox of CloudEvents for the lifecycle system. */
export interface OutboxEvent {
  id: string;
  url: string;
  body: string;
  state: OutboxState;
  /** Failed attempts, never reset (a retry from dead keeps them). */
  attempts: number;
  nextAttemptAt: number;
  createdAt: number;
  deliveredAt: number | null;
  lastError: string | null;
  /** The first failed attempt of the current give-up window (the dispatcher's clock); null before one, and again after a retry. */
  firstFailedAt: number | null;
  /** When it became dead (the dispatcher's clock); null unless dead. */
  deadAt: number | null;
}

export interface Outbox {
  enqueue(events: Array<{ id: string; url: string; body: string }>, now: number): Promise<void>;
  /**
   * Pending events to try now, oldest first: never-tried ones always (the enqueuer may run on an
   * accelerated fleet clock), retried ones once their nextAttemptAt (dispatcher's clock) passed.
   */
  due(now: number, limit: number): Promise<OutboxEvent[]>;
  /** A 2xx arrived: the event is delivered (whether pending or dead). */
  markDelivered(id: string, url: string, now: number): Promise<void>;
  /**
   * A failed attempt of a pending event: attempts + 1, lastError kept, next try at nextAttemptAt.
   * `now` (the dispatcher's clock, default nextAttemptAt) starts the give-up window on the first
   * failure (firstFailedAt); `dead`: this was the last attempt, the event becomes dead instead.
   */
  markFailed(id: string, url: string, error: string, nextAttemptAt: number, o?: { now?: number; dead?: boolean }): Promise<void>;
  /**
   * An operator's retry: dead events of this id (one URL, or every URL when `url` is null) go back
   * to pending, due at `now`, attempts and lastError kept, a new give-up window from their next
   * failure. Returns the rows moved (none when nothing matching is dead).
   */
  retry(id: string, url: string | null, now: number): Promise<OutboxEvent[]>;
  /** Events in one state, oldest first (createdAt, id, url), keyset-paged. */
  list(q: { state: OutboxState; limit: number; cursor?: string }): Promise<{ items: OutboxEvent[]; nextCursor: string | null }>;
  /** = count('pending') */
  pending(): Promise<number>;
  count(state: OutboxState): Promise<number>;
  /** When the next pending event is due (0 = one was never tried; null = none): lets a dispatcher sleep until then. */
  nextDueAt(): Promise<number | null>;
  /** One row, for inspection (tests, ops). */
  get(id: string, url: string): Promise<OutboxEvent | undefined>;
}

export interface PruneResult {
  prompts: number;
  promptChanges: number;
  outbox: number;
  deadLetters: number;
  audit: number;
}

/**
 * ingest's durable local state behind one handle. `transaction(fn)` makes everything inside atomic,
 * so the rules runner saves rule states, prompt changes and outbox rows all-or-nothing.
 */
export interface Stores {
  prompts: PromptStore;
  vehicles: VehicleStore;
  ruleStates: RuleStateStore;
  deadLetters: DeadLetterStore;
  outbox: Outbox;
  keys: KeyStore;
  audit: AuditLog;
  /** Lifecycle campaigns and their deliveries (docs/domain.md#campaigns). */
  campaigns: CampaignStore;
  /** Run fn atomically: if it throws, nothing it wrote stays. Nested calls join the outer one. */
  transaction<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Retention (docs/domain.md#privacy-and-retention): delete delivered outbox events, resolved or
   * expired prompts (with their change history), dead letters and audit entries older than
   * `olderThan` (epoch ms). Expired console sessions go by `keys.pruneSessions`.
   * Undelivered events (pending or dead) and open prompts are kept whatever their age.
   */
  prune(olderThan: number): Promise<PruneResult>;
  close(): Promise<void>;
}

/** A backend: everything of Stores but the prompt lifecycle, which ingest/stores.ts adds on top. */
export type StoreBackend = Omit<Stores, 'prompts'> & { promptRepo: PromptRepo };
