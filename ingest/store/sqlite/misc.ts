// SQLite rule states, dead letters and the webhook outbox.
import type { VehicleRuleState } from '../../../rules/types.js';
import type { DeadLetter, DeadLetterStore, Outbox, OutboxEvent, RuleStateStore } from '../ports.js';
import { iso } from '../paging.js';
import type { Db } from './db.js';

export function sqliteRuleStateStore(db: Db): RuleStateStore {
  const get = db.prepare<[string], { state: string }>('SELECT state FROM rule_states WHERE vin = ?');
  const put = db.prepare('INSERT INTO rule_states (vin, state) VALUES (?, ?) ON CONFLICT (vin) DO UPDATE SET state = excluded.state');
  const all = db.prepare<[], { state: string }>('SELECT state FROM rule_states ORDER BY vin');
  const saveAll = db.transaction((states: VehicleRuleState[]) => {
    for (const s of states) put.run(s.vin, JSON.stringify(s));
  });
  return {
    load(vin) {
      const r = get.get(vin);
      return r ? (JSON.parse(r.state) as VehicleRuleState) : undefined;
    },
    save: (states) => saveAll(states),
    // Materialised: iterating a live statement would block writes on this connection meanwhile.
    all: () => all.all().map((r) => JSON.parse(r.state) as VehicleRuleState),
  };
}

export function sqliteDeadLetterStore(db: Db): DeadLetterStore {
  const add = db.prepare('INSERT INTO dead_letters (at_ms, topic, client_id, reason, payload) VALUES (?, ?, ?, ?, ?)');
  const list = db.prepare<
    [number],
    { id: number; at_ms: number; topic: string; client_id: string | null; reason: string; payload: Buffer }
  >('SELECT * FROM dead_letters ORDER BY id DESC LIMIT ?');
  const count = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM dead_letters');
  return {
    add: (d) => void add.run(d.at, d.topic, d.clientId, d.reason, Buffer.from(d.payload)),
    list: (limit): DeadLetter[] =>
      list.all(Math.max(1, Math.min(1000, limit))).map((r) => ({
        id: r.id,
        at: iso(r.at_ms),
        topic: r.topic,
        clientId: r.client_id,
        reason: r.reason,
        payloadBase64: r.payload.toString('base64'),
      })),
    count: () => count.get()!.n,
  };
}

interface OutboxRow {
  id: string;
  url: string;
  body: string;
  attempts: number;
  next_attempt_ms: number;
  created_ms: number;
  delivered_ms: number | null;
  last_error: string | null;
}

const toEvent = (r: OutboxRow): OutboxEvent => ({
  id: r.id,
  url: r.url,
  body: r.body,
  attempts: r.attempts,
  nextAttemptAt: r.next_attempt_ms,
  createdAt: r.created_ms,
  deliveredAt: r.delivered_ms,
  lastError: r.last_error,
});

export function sqliteOutbox(db: Db): Outbox {
  // (id, url) is the primary key: enqueueing the same event again (a retried batch) is a no-op.
  const enqueue = db.prepare('INSERT OR IGNORE INTO outbox (id, url, body, next_attempt_ms, created_ms) VALUES (?, ?, ?, ?, ?)');
  const enqueueAll = db.transaction((events: Array<{ id: string; url: string; body: string }>, now: number) => {
    for (const e of events) enqueue.run(e.id, e.url, e.body, now, now);
  });
  const due = db.prepare<[number, number], OutboxRow>(
    'SELECT * FROM outbox WHERE delivered_ms IS NULL AND (attempts = 0 OR next_attempt_ms <= ?) ORDER BY created_ms, rowid LIMIT ?',
  );
  const delivered = db.prepare('UPDATE outbox SET delivered_ms = ?, last_error = NULL WHERE id = ? AND url = ? AND delivered_ms IS NULL');
  const failed = db.prepare(
    'UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_ms = ? WHERE id = ? AND url = ? AND delivered_ms IS NULL',
  );
  const pending = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM outbox WHERE delivered_ms IS NULL');
  const next = db.prepare<[], { t: number | null }>(
    'SELECT min(CASE WHEN attempts = 0 THEN 0 ELSE next_attempt_ms END) AS t FROM outbox WHERE delivered_ms IS NULL',
  );
  const get = db.prepare<[string, string], OutboxRow>('SELECT * FROM outbox WHERE id = ? AND url = ?');
  return {
    enqueue: (events, now) => enqueueAll(events, now),
    due: (now, limit) => due.all(now, Math.max(1, limit)).map(toEvent),
    markDelivered: (id, url, now) => void delivered.run(now, id, url),
    markFailed: (id, url, error, nextAttemptAt) => void failed.run(error.slice(0, 1000), nextAttemptAt, id, url),
    pending: () => pending.get()!.n,
    nextDueAt: () => next.get()!.t,
    get: (id, url) => {
      const r = get.get(id, url);
      return r ? toEvent(r) : undefined;
    },
  };
}
