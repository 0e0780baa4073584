// In-memory API keys, console sessions and audit trail for unit tests (same suite as SQLite).
import type { ApiKeyRecord, AuditEntry, AuditLog, ConsoleSession, KeyStore, SecretHash } from '../ports.js';
import type { SyncOf } from '../sync-backend.js';
import { iso } from '../paging.js';
import { copy, type MemDb } from './state.js';

export function memoryKeyStore(db: MemDb): SyncOf<KeyStore> {
  const sessionKey = (b: Buffer) => b.toString('hex');
  return {
    create(rec, secret, now) {
      if (db.data.keys.has(rec.id)) throw new Error(`key ${rec.id} exists`);
      const stored: ApiKeyRecord & { secret: SecretHash } = {
        ...copy(rec),
        createdAt: iso(now),
        revokedAt: null,
        secret: { salt: Buffer.from(secret.salt), hash: Buffer.from(secret.hash) },
      };
      db.data.keys.set(rec.id, stored);
      const { secret: _s, ...out } = stored;
      return copy(out);
    },
    get(id) {
      const k = db.data.keys.get(id);
      return k
        ? { ...copy({ ...k, secret: undefined }), secret: { salt: Buffer.from(k.secret.salt), hash: Buffer.from(k.secret.hash) } }
        : undefined;
    },
    list: () =>
      [...db.data.keys.values()]
        .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.id.localeCompare(b.id))
        .map(({ secret: _s, ...k }) => copy(k)),
    revoke(id, now) {
      const k = db.data.keys.get(id);
      if (!k || k.revokedAt !== null) return false;
      k.revokedAt = iso(now);
      return true;
    },
    createSession: (s) => void db.data.sessions.set(sessionKey(s.idHash), { ...s, idHash: Buffer.from(s.idHash) }),
    getSession(idHash) {
      const s = db.data.sessions.get(sessionKey(idHash));
      return s ? ({ ...s, idHash: Buffer.from(s.idHash) } satisfies ConsoleSession) : undefined;
    },
    deleteSession: (idHash) => void db.data.sessions.delete(sessionKey(idHash)),
    pruneSessions(now) {
      let n = 0;
      for (const [k, s] of db.data.sessions) {
        if (s.expiresAt > now) continue;
        db.data.sessions.delete(k);
        n++;
      }
      return n;
    },
  };
}

export function memoryAuditLog(db: MemDb): SyncOf<AuditLog> {
  return {
    record(e) {
      db.data.audit.push({
        id: ++db.data.auditSeq,
        atMs: e.at,
        principal: e.principal,
        action: e.action,
        vin: e.vin,
        requestId: e.requestId,
        detail: e.detail ? copy(e.detail) : null,
      });
    },
    query(f) {
      const out: AuditEntry[] = [];
      for (let i = db.data.audit.length - 1; i >= 0 && out.length < Math.max(1, Math.min(1000, f.limit)); i--) {
        const a = db.data.audit[i];
        if (f.vin !== undefined && a.vin !== f.vin) continue;
        if (f.principal !== undefined && a.principal !== f.principal) continue;
        if (f.from !== undefined && a.atMs < f.from) continue;
        if (f.to !== undefined && a.atMs >= f.to) continue;
        if (f.before !== undefined && a.id >= f.before) continue;
        out.push({
          id: a.id,
          at: iso(a.atMs),
          principal: a.principal,
          action: a.action,
          vin: a.vin,
          requestId: a.requestId,
          detail: copy(a.detail),
        });
      }
      return out;
    },
  };
}
