// SQLite API keys, console sessions and the audit trail (docs/contract.md#access-control).
import type { ApiKeyRecord, AuditEntry, AuditLog, KeyStore, Permission, Role } from '../ports.js';
import type { SyncOf } from '../sync-backend.js';
import { iso } from '../paging.js';
import type { Db } from './db.js';

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

export function sqliteKeyStore(db: Db): SyncOf<KeyStore> {
  const insert = db.prepare(
    'INSERT INTO api_keys (id, name, role, dealers, permissions, salt, hash, created_ms, created_by, expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const get = db.prepare<[string], KeyRow>('SELECT * FROM api_keys WHERE id = ?');
  const list = db.prepare<[], KeyRow>('SELECT * FROM api_keys ORDER BY created_ms, id');
  const revoke = db.prepare('UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL');
  const putSession = db.prepare(
    'INSERT INTO console_sessions (id_hash, key_id, principal, csrf, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const getSession = db.prepare<
    [Buffer],
    { id_hash: Buffer; key_id: string | null; principal: string | null; csrf: string; created_ms: number; expires_ms: number }
  >('SELECT * FROM console_sessions WHERE id_hash = ?');
  const delSession = db.prepare('DELETE FROM console_sessions WHERE id_hash = ?');
  const pruneSessions = db.prepare('DELETE FROM console_sessions WHERE expires_ms <= ?');
  return {
    create(rec, secret, now) {
      const expires = rec.expiresAt === null ? null : Date.parse(rec.expiresAt);
      insert.run(
        rec.id,
        rec.name,
        rec.role,
        JSON.stringify(rec.dealers),
        JSON.stringify(rec.permissions),
        secret.salt,
        secret.hash,
        now,
        rec.createdBy,
        expires,
      );
      return toKey(get.get(rec.id)!);
    },
    get(id) {
      const r = get.get(id);
      return r ? { ...toKey(r), secret: { salt: r.salt, hash: r.hash } } : undefined;
    },
    list: () => list.all().map(toKey),
    revoke: (id, now) => revoke.run(now, id).changes === 1,
    createSession: (s) => void putSession.run(s.idHash, s.keyId, s.principal, s.csrf, s.createdAt, s.expiresAt),
    getSession(idHash) {
      const r = getSession.get(idHash);
      return r
        ? { idHash: r.id_hash, keyId: r.key_id, principal: r.principal, csrf: r.csrf, createdAt: r.created_ms, expiresAt: r.expires_ms }
        : undefined;
    },
    deleteSession: (idHash) => void delSession.run(idHash),
    pruneSessions: (now) => pruneSessions.run(now).changes,
  };
}

export function sqliteAuditLog(db: Db): SyncOf<AuditLog> {
  const insert = db.prepare('INSERT INTO audit (at_ms, principal, action, vin, request_id, detail) VALUES (?, ?, ?, ?, ?, ?)');
  return {
    record: (e) => void insert.run(e.at, e.principal, e.action, e.vin, e.requestId, e.detail ? JSON.stringify(e.detail) : null),
    query(f) {
      const where: string[] = [];
      const args: Array<string | number> = [];
      if (f.vin !== undefined) {
        where.push('vin = ?');
        args.push(f.vin);
      }
      if (f.principal !== undefined) {
        where.push('principal = ?');
        args.push(f.principal);
      }
      if (f.from !== undefined) {
        where.push('at_ms >= ?');
        args.push(f.from);
      }
      if (f.to !== undefined) {
        where.push('at_ms < ?');
        args.push(f.to);
      }
      if (f.before !== undefined) {
        where.push('id < ?');
        args.push(f.before);
      }
      const sql = `SELECT * FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
      const rows = db
        .prepare<
          Array<string | number>,
          { id: number; at_ms: number; principal: string; action: string; vin: string | null; request_id: string; detail: string | null }
        >(sql)
        .all(...args, Math.max(1, Math.min(1000, f.limit)));
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
