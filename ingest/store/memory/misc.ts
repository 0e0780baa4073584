// In-memory rule states, dead letters and outbox for unit tests.
import type { VehicleRuleState } from '../../../rules/types.js';
import type { DeadLetterStore, Outbox, OutboxEvent, OutboxState, RuleStateStore } from '../ports.js';
import type { SyncOf } from '../sync-backend.js';
import { byKey, clampLimit, decodeOutboxCursor, iso, pageOf } from '../paging.js';
import { copy, type MemDb } from './state.js';

export function memoryRuleStateStore(db: MemDb): SyncOf<RuleStateStore> {
  return {
    load(vin) {
      const s = db.data.ruleStates.get(vin);
      return s === undefined ? undefined : (JSON.parse(s) as VehicleRuleState);
    },
    // Kept as JSON, like SQLite: what is saved is what a restart would load.
    save: (states) => {
      for (const s of states) db.data.ruleStates.set(s.vin, s.json);
    },
    all: () => [...db.data.ruleStates.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, s]) => JSON.parse(s) as VehicleRuleState),
  };
}

export function memoryDeadLetterStore(db: MemDb): SyncOf<DeadLetterStore> {
  return {
    add(d) {
      db.data.deadLetters.push({
        id: ++db.data.deadLetterSeq,
        atMs: d.at,
        topic: d.topic,
        clientId: d.clientId,
        reason: d.reason,
        payload: Uint8Array.from(d.payload),
      });
    },
    list: (limit) =>
      db.data.deadLetters
        .slice(-Math.max(1, Math.min(1000, limit)))
        .reverse()
        .map((d) => ({
          id: d.id,
          at: iso(d.atMs),
          topic: d.topic,
          clientId: d.clientId,
          reason: d.reason,
          payloadBase64: Buffer.from(d.payload).toString('base64'),
        })),
    count: () => db.data.deadLetters.length,
  };
}

const key = (id: string, url: string): string => `${id}\n${url}`;

export function memoryOutbox(db: MemDb): SyncOf<Outbox> {
  const inState = (state: OutboxState): OutboxEvent[] => [...db.data.outbox.values()].filter((e) => e.state === state);
  const revive = (e: OutboxEvent, now: number): OutboxEvent => {
    e.state = 'pending';
    e.nextAttemptAt = now;
    e.firstFailedAt = null;
    e.deadAt = null;
    return copy(e);
  };
  return {
    enqueue(events, now) {
      for (const e of events) {
        const k = key(e.id, e.url);
        if (db.data.outbox.has(k)) continue; // idempotent on (id, url)
        db.data.outbox.set(k, {
          id: e.id,
          url: e.url,
          body: e.body,
          state: 'pending',
          attempts: 0,
          nextAttemptAt: now,
          createdAt: now,
          deliveredAt: null,
          lastError: null,
          firstFailedAt: null,
          deadAt: null,
        });
      }
    },
    due: (now, limit) =>
      inState('pending')
        .filter((e) => e.attempts === 0 || e.nextAttemptAt <= now)
        .sort((a, b) => a.createdAt - b.createdAt) // stable: ties keep insertion order
        .slice(0, Math.max(1, limit))
        .map(copy),
    markDelivered(id, url, now) {
      const e = db.data.outbox.get(key(id, url));
      if (e && e.state !== 'delivered') {
        e.state = 'delivered';
        e.deliveredAt = now;
        e.lastError = null;
        e.deadAt = null;
      }
    },
    markFailed(id, url, error, nextAttemptAt, o = {}) {
      const e = db.data.outbox.get(key(id, url));
      if (!e || e.state !== 'pending') return;
      const now = o.now ?? nextAttemptAt;
      e.attempts++;
      e.lastError = error.slice(0, 1000);
      e.nextAttemptAt = nextAttemptAt;
      e.firstFailedAt ??= now;
      if (o.dead) {
        e.state = 'dead';
        e.deadAt = now;
      }
    },
    retry(id, url, now) {
      if (url !== null) {
        const e = db.data.outbox.get(key(id, url));
        return e?.state === 'dead' ? [revive(e, now)] : [];
      }
      return inState('dead')
        .filter((e) => e.id === id)
        .map((e) => revive(e, now))
        .sort(byKey);
    },
    list(q) {
      const limit = clampLimit(q.limit);
      const after = q.cursor === undefined ? undefined : decodeOutboxCursor(q.cursor);
      const rows = inState(q.state)
        .filter((e) => !after || byKey(e, { createdAt: after.createdMs, id: after.id, url: after.url }) > 0)
        .sort(byKey)
        .slice(0, limit + 1)
        .map(copy);
      return pageOf(rows, limit);
    },
    pending: () => inState('pending').length,
    count: (state) => inState(state).length,
    nextDueAt: () =>
      inState('pending').reduce<number | null>((m, e) => {
        const t = e.attempts === 0 ? 0 : e.nextAttemptAt;
        return m === null || t < m ? t : m;
      }, null),
    get: (id, url) => {
      const e = db.data.outbox.get(key(id, url));
      return e && copy(e);
    },
  };
}
