// The rules engine's contract. Detectors are pure:
//   (state, reading, config, clock) -> { state, events }
// No I/O, no Date.now(): time is the reading's own timestamp (event time) or the fleet clock.
import type { Locale, Reading, Severity, Signals, Vehicle } from '../proto/domain.js';

/** The kinds the detectors open, each with its texts in rules/i18n. */
export const RULE_PROMPT_KINDS = [
  'maintenance.upcoming',
  'maintenance.due',
  'maintenance.overdue',
  'maintenance.lapsed',
  'maintenance.followup',
  'charging.low_soc',
  'charging.critical_soc',
  'charging.habit',
  'battery.low_voltage_12v',
  'battery.soh_degraded',
  'fault.dtc',
  'usage.segment_changed',
  'usage.dormant_vehicle',
  'usage.utilisation',
] as const;
/** Every kind: the rules' and a lifecycle campaign's message in the car, whose texts are the campaign's (ingest/campaigns/, docs/domain.md#campaigns). */
export const PROMPT_KINDS = [...RULE_PROMPT_KINDS, 'campaign.message'] as const;
export type PromptKind = (typeof PROMPT_KINDS)[number];

export const AUDIENCES = ['hmi', 'advisor', 'lifecycle'] as const;
export type Audience = (typeof AUDIENCES)[number];

export const FAMILIES = ['maintenance', 'charging', 'battery', 'fault', 'usage'] as const;
export type Family = (typeof FAMILIES)[number];

/** The fleet clock: wall clock in production, the simulator's or a test's clock otherwise. */
export interface FleetClock {
  now(): number;
}

/** A prompt a detector wants opened. Text is rendered later from kind + params (rules/i18n). */
export interface PromptDraft {
  kind: PromptKind;
  /** Same situation -> same key; the store keeps one open prompt per key. */
  dedupKey: string;
  severity: Severity;
  audience: Audience[];
  /** Urgent prompts bypass HMI gating (parked / quiet hours / daily cap). */
  urgent: boolean;
  /** Event time of the reading (or sweep time) that opened it. */
  ts: number;
  /** The readings / facts that triggered it. */
  evidence: Record<string, unknown>;
  /** Values for the localised title/body (numbers, codes, dates as ISO strings). */
  params: Record<string, string | number | string[]>;
  /** Ranking for the HMI's per-day cap: higher first. */
  value?: number;
  /** When the prompt stops being worth showing (epoch ms); undefined = never. */
  expiresAt?: number;
}

/** A charging session derived from readings. */
export interface ChargingSession {
  vin: string;
  start: number;
  end: number;
  startSoc: number;
  endSoc: number;
  /** kWh, estimated from SOC delta and the model's usable capacity. */
  energyKwh: number;
  type: 'AC' | 'DC';
}

export interface Segments {
  stage: 'new_owner' | 'break_in' | 'active_owner' | 'upgrade_window';
  activity: 'active' | 'declining' | 'dormant' | 'lost';
  maturity: 'novice' | 'skilled' | 'veteran';
}

export type RuleEvent =
  | { type: 'open'; prompt: PromptDraft }
  /** The situation behind dedupKey ended: resolve (or withdraw from the HMI) the open prompt. */
  | { type: 'resolve'; dedupKey: string; ts: number; reason: string }
  | { type: 'charging_session'; session: ChargingSession }
  | { type: 'segments'; segments: Segments };

export interface ServiceRecord {
  date: string;
  odometer: number;
  items: string[];
}

/** Everything a detector may look at besides its own state. */
export interface DetectorContext<C = unknown> {
  vin: string;
  /** undefined until the vehicle is registered; detectors that need it wait. */
  profile: Vehicle | undefined;
  /** This family's configuration, already resolved for the vehicle's model. */
  config: C;
  clock: FleetClock;
  /** Last known value of every signal, this reading merged in. */
  latest: Signals;
  /** Active DTCs as last reported. */
  activeDtcs: string[];
  /** Other families' read-only views (e.g. maintenance reads fault/battery condition). */
  view: VehicleView;
}

/** A read-only summary detectors share (filled by the engine from all families' states). */
export interface VehicleView {
  activeDtcs: string[];
  lastVoltage12v?: number;
  lastSoh?: number;
  odometer?: number;
  segments?: Segments;
}

export interface DetectorResult<S> {
  state: S;
  events: RuleEvent[];
}

export interface Detector<S = unknown, C = unknown> {
  family: Family;
  initial(): S;
  onReading(state: S, reading: Reading, ctx: DetectorContext<C>): DetectorResult<S>;
  /** Periodic sweep against the fleet clock, for time-based prompts. */
  onTick?(state: S, now: number, ctx: DetectorContext<C>): DetectorResult<S>;
  onServiceRecord?(state: S, record: ServiceRecord, ctx: DetectorContext<C>): DetectorResult<S>;
}

/** A vehicle's whole rule state: JSON-serialisable, persisted after every processed batch. */
export interface VehicleRuleState {
  vin: string;
  /** Event time of the last reading applied (readings older than this are applied to latest only). */
  lastTs: number;
  latest: Signals;
  latestTs: number;
  activeDtcs: string[];
  families: Partial<Record<Family, unknown>>;
  /** Set by ingest: the last journal entry applied, so a replay after a crash applies nothing twice. */
  journalId?: number;
}

/**
 * A rule state as JSON text: what a rules worker returns and what the store keeps, so the main
 * thread neither parses nor serialises the state on the hot path (rules/pool.ts). The fields main
 * reads are beside the text; `json` is the whole VehicleRuleState, journalId included.
 */
export interface RuleStateJson {
  readonly vin: string;
  readonly journalId?: number;
  readonly json: string;
}

export interface DetectorFailure {
  family: Family;
  vin: string;
  message: string;
}

export interface EngineResult {
  state: VehicleRuleState;
  events: RuleEvent[];
  failures: DetectorFailure[];
}

export type { Locale, Reading, Severity, Signals, Vehicle };
