// PostgreSQL API keys, console sessions and the audit trail, as sqlite/auth.ts.
import type { AuditLog, KeyStore } from '../ports.js';
import type { AuditRow, KeyRow, SessionRow } from '../sql-rows.js';
import { KEY_COLUMNS, keyValues, toAuditEntry, toKey, toKeyWithSecret, toSession } from '../sql-rows.js';
import type { PgDb } from './db.js';

export function pgKeyStore(db: PgDb): KeyStore {
  return {
    async create(rec, secret, now) {
      const [r] = await db.rows<KeyRow>(
        `INSERT INTO api_keys (${KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *`,
        keyValues(rec, secret, now),
      );
      return toKey(r);
    },
    async get(id) {
      const [r] = await db.rows<KeyRow>('SELECT * FROM api_keys WHERE id = $1', [id]);
      return r ? toKeyWithSecret(r) : undefined;
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
      const [r] = await db.rows<SessionRow>('SELECT * FROM console_sessions WHERE id_hash = $1', [idHash]);
      return r ? toSession(r) : undefined;
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
      const rows = await db.rows<AuditRow>(
        `SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT $${values.length}`,
        values,
      );
      return rows.map(toAuditEntry);
    },
  };
}
