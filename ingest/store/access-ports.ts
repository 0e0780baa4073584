// Ports of access control (docs/contract.md#access-control): API keys, console sessions, the audit
// trail. Part of ports.ts (re-exported there); a file of its own for size.
export const ROLES = ['advisor', 'dealer_admin', 'operator', 'lifecycle', 'metrics'] as const;
export type Role = (typeof ROLES)[number];
/** Permissions a principal may hold beyond its role. */
export const PERMISSIONS = ['location:read'] as const;
export type Permission = (typeof PERMISSIONS)[number];

export interface ApiKeyRecord {
  id: string;
  name: string;
  role: Role;
  /** Dealers the key is scoped to (advisor, dealer_admin); empty for fleet-wide roles. */
  dealers: string[];
  permissions: Permission[];
  createdAt: string;
  createdBy: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
}

/** What is stored of a key's secret: a random salt and SHA-256(salt ‖ secret), never the secret. */
export interface SecretHash {
  salt: Buffer;
  hash: Buffer;
}

export interface ConsoleSession {
  /** SHA-256 of the cookie value: the cookie itself is never stored. */
  idHash: Buffer;
  /** The API key the session was opened with (re-checked on every request: revoking it ends the session). */
  keyId: string | null;
  /** An OIDC principal as verified at sign-in (JSON), when the session was opened with a token. */
  principal: string | null;
  csrf: string;
  createdAt: number;
  expiresAt: number;
}

export interface KeyStore {
  create(rec: Omit<ApiKeyRecord, 'createdAt' | 'revokedAt'>, secret: SecretHash, now: number): Promise<ApiKeyRecord>;
  get(id: string): Promise<(ApiKeyRecord & { secret: SecretHash }) | undefined>;
  list(): Promise<ApiKeyRecord[]>;
  /** false when no such key or already revoked. */
  revoke(id: string, now: number): Promise<boolean>;
  createSession(s: ConsoleSession): Promise<void>;
  getSession(idHash: Buffer): Promise<ConsoleSession | undefined>;
  deleteSession(idHash: Buffer): Promise<void>;
  /** Sessions past their expiry are deleted; returns how many. */
  pruneSessions(now: number): Promise<number>;
}

export interface AuditEntry {
  id: number;
  at: string;
  principal: string;
  action: string;
  vin: string | null;
  requestId: string;
  detail: Record<string, unknown> | null;
}

export interface AuditFilter {
  vin?: string;
  principal?: string;
  from?: number;
  to?: number;
  limit: number;
  /** Entries with an id below this (the previous page's last id). */
  before?: number;
}

export interface AuditLog {
  record(e: {
    at: number;
    principal: string;
    action: string;
    vin: string | null;
    requestId: string;
    detail?: Record<string, unknown>;
  }): Promise<void>;
  /** Newest first. */
  query(f: AuditFilter): Promise<AuditEntry[]>;
}
