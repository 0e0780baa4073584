// PostgreSQL API keys, console sessions and the audit trail, as sqlite/auth.ts.
import type { ApiKeyRecord, AuditEntry, AuditLog, KeyStore, Permission, Role } from '../ports.js';
import { iso } from '../paging.js';
import type { PgDb } from './db.js';

interface KeyRow {
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

const toKey = (r: KeyRow): ApiKeyRecord => ({
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

export function pgKeyStore(db: PgDb): KeyStore {
  return {
    async create(rec, secret, now) {
      const [r] = await db.rows<KeyRow>(
        `INSERT INTO api_keys (id, name, role, dealers, permissions, salt, hash, created_ms, created_by, expires_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *`,
        [
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
        ],
      );
      return toKey(r);
    },
    async get(id) {
      const [r] = await db.rows<KeyRow>('SELECT * FROM api_keys WHERE id = $1', [id]);
      return r ? { ...toKey(r), secret: { salt: r.salt, hash: r.hash } } : undefined;
    },
    list: async () => (await db.rows<KeyRow>('SELECT * FROM api_keys ORDER BY created_ms, id')).map(toKey),
    revoke: async (id, now) =>
      (await db.query('UPDATE api_keys SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL', [now, id])).rowCount === 1,
    async createSession(s) {
      await db.query(
        'INSERT INTO console_sessions (id_hash, key_id, principal, csrf, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6)',
        [s.idHash, s.keyId, s.principal, s.csrf, s.createdAt, s.expiresAt],
      );
    },
    async getSession(idHash) {
      const [r] = await db.rows<{
        id_hash: Buffer;
        key_id: string | null;
        principal: string | null;
        csrf: string;
        created_ms: number;
        expires_ms: number;
      }>('SELECT * FROM console_sessions WHERE id_hash = $1', [idHash]);
      return r
        ? { idHash: r.id_hash, keyId: r.key_id, principal: r.principal, csrf: r.csrf, createdAt: r.created_ms, expiresAt: r.expires_ms }
        : undefined;
    },
    async deleteSession(idHash) {
      await db.query('DELETE FROM console_sessions WHERE id_hash = $1', [idHash]);
    },
    pruneSessions: async (now) => (await db.query('DELETE FROM console_sessions WHERE expires_ms <= $1', [now])).rowCount ?? 0,
  };
}

export function pgAuditLog(db: PgDb): AuditLog {
  return {
    async record(e) {
      await db.query('INSERT INTO audit (at_ms, principal, action, vin, request_id, detail) VALUES ($1, $2, $3, $4, $5, $6)', [
        e.at,
        e.principal,
        e.action,
        e.vin,
        e.requestId,
        e.detail ? JSON.stringify(e.detail) : null,
      ]);
    },
    async query(f) {
      const where: string[] = [];
      const values: unknown[] = [];
      const cond = (sql: string, v: unknown) => {
        values.push(v);
        where.push(sql.replace('?', `$${values.length}`));
      };
      if (f.vin !== undefined) cond('vin = ?', f.vin);
      if (f.principal !== undefined) cond('principal = ?', f.principal);
      if (f.from !== undefined) cond('at_ms >= ?', f.from);
      if (f.to !== undefined) cond('at_ms < ?', f.to);
      if (f.before !== undefined) cond('id < ?', f.before);
      values.push(Math.max(1, Math.min(1000, f.limit)));
      const rows = await db.rows<{
        id: number;
        at_ms: number;
        principal: string;
        action: string;
        vin: string | null;
        request_id: string;
        detail: string | null;
      }>(`SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${values.length}`, values);
      return rows.map((r): AuditEntry => ({
        id: r.id,
        at: iso(r.at_ms),
        principal: r.principal,
        action: r.action,
        vin: r.vin,
        requestId: r.request_id,
        detail: r.detail ? (JSON.parse(r.detail) as Record<string, unknown>) : null,
      }));
    },
  };
}
