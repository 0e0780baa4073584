// The row shapes both SQL backends (sqlite/, postgres/) store, and their row → domain mappers.
import type { VehicleProfile } from '../../proto/domain.js';
import type { ChargingSession, Segments, ServiceRecord, VehicleRuleState } from '../../rules/types.js';
import type {
  ApiKeyRecord,
  AuditEntry,
  Campaign,
  CampaignDelivery,
  ConsoleSession,
  DeadLetter,
  OutboxEvent,
  OutboxState,
  Permission,
  Prompt,
  PromptChange,
  Role,
  SecretHash,
  StepRow,
  VehicleRecord,
  VehicleSequence,
  VehicleStore,
} from './ports.js';
import { iso } from './paging.js';

// --- access control (auth.ts) ---

export interface KeyRow {
  id: string;
  name: string;
  role: string;
  dealers: string;
  permissions: string;
  salt: Buffer;
  hash: Buffer;
  created_ms: number;
  created_by: string | null;
  expires_ms: number | null;
  revoked_ms: number | null;
}

export const toKey = (r: KeyRow): ApiKeyRecord => ({
  id: r.id,
  name: r.name,
  role: r.role as Role,
  dealers: JSON.parse(r.dealers) as string[],
  permissions: JSON.parse(r.permissions) as Permission[],
  createdAt: iso(r.created_ms),
  createdBy: r.created_by,
  expiresAt: r.expires_ms === null ? null : iso(r.expires_ms),
  revokedAt: r.revoked_ms === null ? null : iso(r.revoked_ms),
});

/** The columns KeyStore.create writes, in keyValues' order. */
export const KEY_COLUMNS = 'id, name, role, dealers, permissions, salt, hash, created_ms, created_by, expires_ms';

/** KeyStore.create's values for KEY_COLUMNS. */
export const keyValues = (rec: Omit<ApiKeyRecord, 'createdAt' | 'revokedAt'>, secret: SecretHash, now: number) => [
  rec.id,
  rec.name,
  rec.role,
  JSON.stringify(rec.dealers),
  JSON.stringify(rec.permissions),
  secret.salt,
  secret.hash,
  now,
  rec.createdBy,
  rec.expiresAt === null ? null : Date.parse(rec.expiresAt),
];

/** A key as KeyStore.get returns it: the record with its stored secret. */
export const toKeyWithSecret = (r: KeyRow): ApiKeyRecord & { secret: SecretHash } => ({
  ...toKey(r),
  secret: { salt: r.salt, hash: r.hash },
});

export interface SessionRow {
  id_hash: Buffer;
  key_id: string | null;
  principal: string | null;
  csrf: string;
  created_ms: number;
  expires_ms: number;
}

export const toSession = (r: SessionRow): ConsoleSession => ({
  idHash: r.id_hash,
  keyId: r.key_id,
  principal: r.principal,
  csrf: r.csrf,
  createdAt: r.created_ms,
  expiresAt: r.expires_ms,
});

export interface AuditRow {
  id: number;
  at_ms: number;
  principal: string;
  action: string;
  vin: string | null;
  request_id: string;
  detail: string | null;
}

export const toAuditEntry = (r: AuditRow): AuditEntry => ({
  id: r.id,
  at: iso(r.at_ms),
  principal: r.principal,
  action: r.action,
  vin: r.vin,
  requestId: r.request_id,
  detail: r.detail ? (JSON.parse(r.detail) as Record<string, unknown>) : null,
});

// --- prompts (prompts.ts) ---

/** A row holding a whole record as JSON (prompts, campaigns, campaign deliveries); a type alias, not an
 *  interface, so that it meets `Record<string, unknown>` constraints. */
export type DataRow = { data: string };

export const toPrompt = (r: DataRow): Prompt => JSON.parse(r.data) as Prompt;
export const parsePrompt = (r: DataRow | undefined): Prompt | undefined => (r ? toPrompt(r) : undefined);

export interface ChangeRow {
  seq: number;
  prompt_id: string;
  vin: string;
  dealer_id: string | null;
  step: PromptChange['step'];
  at_ms: number;
  by: string | null;
  prompt: string;
}

export const toChange = (r: ChangeRow): PromptChange => ({
  seq: r.seq,
  promptId: r.prompt_id,
  vin: r.vin,
  dealerId: r.dealer_id,
  step: r.step,
  at: iso(r.at_ms),
  by: r.by,
  prompt: JSON.parse(r.prompt) as Prompt,
});

export interface StepChangeRow {
  prompt_id: string;
  kind: string;
  step: StepRow['step'];
  outcome: string | null;
}

export const toStep = (r: StepChangeRow): StepRow => ({ promptId: r.prompt_id, kind: r.kind, step: r.step, outcome: r.outcome });

// --- campaigns (campaigns.ts) ---

export const toCampaign = (r: DataRow): Campaign => JSON.parse(r.data) as Campaign;
export const toDelivery = (r: DataRow): CampaignDelivery => JSON.parse(r.data) as CampaignDelivery;

// --- rule states, dead letters, outbox (misc.ts) ---

export interface RuleStateRow {
  state: string;
}

export const toRuleState = (r: RuleStateRow): VehicleRuleState => JSON.parse(r.state) as VehicleRuleState;

export interface DeadLetterRow {
  id: number;
  at_ms: number;
  topic: string;
  client_id: string | null;
  reason: string;
  payload: Buffer;
}

export const toDeadLetter = (r: DeadLetterRow): DeadLetter => ({
  id: r.id,
  at: iso(r.at_ms),
  topic: r.topic,
  clientId: r.client_id,
  reason: r.reason,
  payloadBase64: r.payload.toString('base64'),
});

/** The outbox columns both backends have (PostgreSQL adds `ord` and the claim columns). */
export interface OutboxRow {
  id: string;
  url: string;
  body: string;
  state: OutboxState;
  attempts: number;
  next_attempt_ms: number;
  created_ms: number;
  delivered_ms: number | null;
  last_error: string | null;
  first_failed_ms: number | null;
  dead_ms: number | null;
}

export const toEvent = (r: OutboxRow): OutboxEvent => ({
  id: r.id,
  url: r.url,
  body: r.body,
  state: r.state,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_ms,
  createdAt: r.created_ms,
  deliveredAt: r.delivered_ms,
  lastError: r.last_error,
  firstFailedAt: r.first_failed_ms,
  deadAt: r.dead_ms,
});

// --- vehicles (vehicles.ts) ---

export interface VehicleRow {
  vin: string;
  profile: string;
  created_ms: number;
  updated_ms: number;
}

export const toRecord = (r: VehicleRow): VehicleRecord => ({
  ...(JSON.parse(r.profile) as VehicleProfile),
  vin: r.vin,
  createdAt: iso(r.created_ms),
  updatedAt: iso(r.updated_ms),
});

/** `online` is 0/1 on SQLite, a boolean on PostgreSQL. */
export interface StatusRow<Online extends number | boolean> {
  online: Online;
  since_ms: number | null;
  agent_version: string | null;
  config_version: number | null;
}

/** VehicleStore.online's answer; no row is offline, never seen. */
export const toOnline = (r: StatusRow<number | boolean> | undefined): Awaited<ReturnType<VehicleStore['online']>> =>
  r
    ? {
        online: Boolean(r.online),
        since: r.since_ms === null ? null : iso(r.since_ms),
        agentVersion: r.agent_version,
        configVersion: r.config_version,
      }
    : { online: false, since: null, agentVersion: null, configVersion: null };

export interface SegmentsRow {
  segments: string;
}

export const toSegments = (r: SegmentsRow | undefined): Segments | null => (r ? (JSON.parse(r.segments) as Segments) : null);

export interface ServiceRow {
  id: number;
  date: string;
  odometer: number;
  items: string;
}

export const toServiceRecord = (r: ServiceRow): ServiceRecord & { id: number } => ({
  id: r.id,
  date: r.date,
  odometer: r.odometer,
  items: JSON.parse(r.items) as string[],
});

export interface ChargingRow {
  vin: string;
  start_ms: number;
  end_ms: number;
  start_soc: number;
  end_soc: number;
  energy_kwh: number;
  type: 'AC' | 'DC';
}

export const toCharging = (r: ChargingRow): ChargingSession => ({
  vin: r.vin,
  start: r.start_ms,
  end: r.end_ms,
  startSoc: r.start_soc,
  endSoc: r.end_soc,
  energyKwh: r.energy_kwh,
  type: r.type,
});

export interface SequenceRow {
  boot_id: string;
  last_seq: number;
  gaps: number;
}

export const toSequence = (r: SequenceRow | undefined): VehicleSequence | null =>
  r ? { bootId: r.boot_id, lastSeq: r.last_seq, gaps: r.gaps } : null;
