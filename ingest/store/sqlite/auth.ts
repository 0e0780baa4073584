// SQLite API keys, console sessions and the audit trail (docs/contract.md#access-control).
import type { AuditLog, KeyStore } from '../ports.js';
import type { SyncOf } from '../sync-backend.js';
import type { AuditRow, KeyRow, SessionRow } from '../sql-rows.js';
import { KEY_COLUMNS, keyValues, toAuditEntry, toKey, toKeyWithSecret, toSession } from '../sql-rows.js';
import type { Db } from './db.js';

export function sqliteKeyStore(db: Db): SyncOf<KeyStore> {
  const insert = db.prepare(`INSERT INTO api_keys (${KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const get = db.prepare<[string], KeyRow>('SELECT * FROM api_keys WHERE id = ?');
  const list = db.prepare<[], KeyRow>('SELECT * FROM api_keys ORDER BY created_ms, id');
  const revoke = db.prepare('UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL');
  const putSession = db.prepare(
    'INSERT INTO console_sessions (id_hash, key_id, principal, csrf, created_ms, expires_ms) VALUES (?, ?, ?, ?, ?, ?)',
  );
  const getSession = db.prepare<[Buffer], SessionRow>('SELECT * FROM console_sessions WHERE id_hash = ?');
  const delSession = db.prepare('DELETE FROM console_sessions WHERE id_hash = ?');
  const pruneSessions = db.prepare('DELETE FROM console_sessions WHERE expires_ms <= ?');
  return {
    create(rec, secret, now) {
      insert.run(...keyValues(rec, secret, now));
      return toKey(get.get(rec.id)!);
    },
    get(id) {
      const r = get.get(id);
      return r ? toKeyWithSecret(r) : undefined;
    },
    list: () => list.all().map(toKey),
    revoke: (id, now) => revoke.run(now, id).changes === 1,
    createSession: (s) => void putSession.run(s.idHash, s.keyId, s.principal, s.csrf, s.createdAt, s.expiresAt),
    getSession(idHash) {
      const r = getSession.get(idHash);
      return r ? toSession(r) : undefined;
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
      return db
        .prepare<Array<string | number>, AuditRow>(sql)
        .all(...args, Math.max(1, Math.min(1000, f.limit)))
        .map(toAuditEntry);
    },
  };
}
