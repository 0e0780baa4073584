// All in-memory store data in one object, so a transaction can snapshot it and put it back
// when the work inside throws (the same all-or-nothing the SQLite stores give).
import type { VehicleProfile } from '../../../proto/domain.js';
import type { ChargingSession, Segments, ServiceRecord } from '../../../rules/types.js';
import type { ApiKeyRecord, Campaign, CampaignDelivery, ConsoleSession, OutboxEvent, Prompt, PromptChange, SecretHash } from '../ports.js';

export interface MemData {
  prompts: Map<string, Prompt>;
  changes: PromptChange[];
  changeSeq: number;
  vehicles: Map<string, { profile: VehicleProfile; createdMs: number; updatedMs: number }>;
  status: Map<string, { online: boolean; sinceMs: number | null; agentVersion: string | null; configVersion: number | null }>;
  segments: Map<string, { segments: Segments; atMs: number }>;
  services: Array<ServiceRecord & { id: number; vin: string }>;
  serviceSeq: number;
  charging: Map<string, ChargingSession>;
  ruleStates: Map<string, string>;
  deadLetters: Array<{ id: number; atMs: number; topic: string; clientId: string | null; reason: string; payload: Uint8Array }>;
  deadLetterSeq: number;
  outbox: Map<string, OutboxEvent>;
  keys: Map<string, ApiKeyRecord & { secret: SecretHash }>;
  sessions: Map<string, ConsoleSession>;
  audit: Array<{
    id: number;
    atMs: number;
    principal: string;
    action: string;
    vin: string | null;
    requestId: string;
    detail: Record<string, unknown> | null;
  }>;
  auditSeq: number;
  campaigns: Map<string, Campaign>;
  /** Keyed `campaignId \n vin \n occurrence`. */
  deliveries: Map<string, CampaignDelivery>;
}

export function emptyData(): MemData {
  return {
    prompts: new Map(),
    changes: [],
    changeSeq: 0,
    vehicles: new Map(),
    status: new Map(),
    segments: new Map(),
    services: [],
    serviceSeq: 0,
    charging: new Map(),
    ruleStates: new Map(),
    deadLetters: [],
    deadLetterSeq: 0,
    outbox: new Map(),
    keys: new Map(),
    sessions: new Map(),
    audit: [],
    auditSeq: 0,
    campaigns: new Map(),
    deliveries: new Map(),
  };
}

export class MemDb {
  data: MemData = emptyData();
  private depth = 0;

  /**
   * Nested calls join the outer one and only the outermost snapshots (a copy of everything: fine
   * for tests, which is what this store is for).
   */
  private snapshot: MemData | null = null;

  /** The async gate's explicit transaction (one at a time): a snapshot to put back on rollback. */
  begin(): void {
    this.snapshot = structuredClone(this.data);
    this.depth++;
  }

  commit(): void {
    this.snapshot = null;
    this.depth--;
  }

  rollback(): void {
    if (this.snapshot) this.data = this.snapshot;
    this.snapshot = null;
    this.depth--;
  }

  transaction<T>(fn: () => T): T {
    if (this.depth > 0) return fn();
    const snapshot = structuredClone(this.data);
    this.depth++;
    try {
      return fn();
    } catch (err) {
      this.data = snapshot;
      throw err;
    } finally {
      this.depth--;
    }
  }
}

/** Callers get copies: mutating a returned object must not change the store. */
export const copy = <T>(v: T): T => structuredClone(v);
