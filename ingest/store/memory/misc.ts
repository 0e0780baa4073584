// In-memory rule states, dead letters and outbox for unit tests.
import type { VehicleRuleState } from '../../../rules/types.js';
import type { DeadLetterStore, Outbox, OutboxEvent, RuleStateStore } from '../ports.js';
import { iso } from '../paging.js';
import { copy, type MemDb } from './state.js';

export function memoryRuleStateStore(db: MemDb): RuleStateStore {
  return {
    load(vin) {
      const s = db.data.ruleStates.get(vin);
      return s === undefined ? undefined : (JSON.parse(s) as VehicleRuleState);
    },
    // Kept as JSON, like SQLite: what is saved is what a restart would load.
    save: (states) => {
      for (const s of states) db.data.ruleStates.set(s.vin, JSON.stringify(s));
    },
    all: () => [...db.data.ruleStates.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, s]) => JSON.parse(s) as VehicleRuleState),
  };
}

export function memoryDeadLetterStore(db: MemDb): DeadLetterStore {
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

export function memoryOutbox(db: MemDb): Outbox {
  const undelivered = (): OutboxEvent[] => [...db.data.outbox.values()].filter((e) => e.deliveredAt === null);
  return {
    enqueue(events, now) {
      for (const e of events) {
        const k = key(e.id, e.url);
        if (db.data.outbox.has(k)) continue; // idempotent on (id, url)
        db.data.outbox.set(k, {
          id: e.id,
          url: e.url,
          body: e.body,
          attempts: 0,
          nextAttemptAt: now,
          createdAt: now,
          deliveredAt: null,
          lastError: null,
        });
      }
    },
    due: (now, limit) =>
      undelivered()
        .filter((e) => e.attempts === 0 || e.nextAttemptAt <= now)
        .sort((a, b) => a.createdAt - b.createdAt) // stable: ties keep insertion order
        .slice(0, Math.max(1, limit))
        .map(copy),
    markDelivered(id, url, now) {
      const e = db.data.outbox.get(key(id, url));
      if (e && e.deliveredAt === null) {
        e.deliveredAt = now;
        e.lastError = null;
      }
    },
    markFailed(id, url, error, nextAttemptAt) {
      const e = db.data.outbox.get(key(id, url));
      if (e && e.deliveredAt === null) {
        e.attempts++;
        e.lastError = error.slice(0, 1000);
        e.nextAttemptAt = nextAttemptAt;
      }
    },
    pending: () => undelivered().length,
    nextDueAt: () =>
      undelivered().reduce<number | null>((m, e) => {
        const t = e.attempts === 0 ? 0 : e.nextAttemptAt;
        return m === null || t < m ? t : m;
      }, null),
    get: (id, url) => {
      const e = db.data.outbox.get(key(id, url));
      return e && copy(e);
    },
  };
}
