// SQLite rule states, dead letters and the webhook outbox.
import type { RuleStateJson } from '../../../rules/types.js';
import type { DeadLetterStore, Outbox, OutboxState, RuleStateStore } from '../ports.js';
import type { SyncOf } from '../sync-backend.js';
import { byKey, clampLimit, decodeOutboxCursor, pageOf } from '../paging.js';
import type { DeadLetterRow, OutboxRow, RuleStateRow } from '../sql-rows.js';
import { toDeadLetter, toEvent, toRuleState } from '../sql-rows.js';
import type { Db } from './db.js';

export function sqliteRuleStateStore(db: Db): SyncOf<RuleStateStore> {
  const get = db.prepare<[string], RuleStateRow>('SELECT state FROM rule_states WHERE vin = ?');
  const put = db.prepare('INSERT INTO rule_states (vin, state) VALUES (?, ?) ON CONFLICT (vin) DO UPDATE SET state = excluded.state');
  const all = db.prepare<[], RuleStateRow>('SELECT state FROM rule_states ORDER BY vin');
  const saveAll = db.transaction((states: readonly RuleStateJson[]) => {
    for (const s of states) put.run(s.vin, s.json);
  });
  return {
    load(vin) {
      const r = get.get(vin);
      return r ? toRuleState(r) : undefined;
    },
    save: (states) => saveAll(states),
    // Materialised: iterating a live statement would block writes on this connection meanwhile.
    all: () => all.all().map(toRuleState),
  };
}

export function sqliteDeadLetterStore(db: Db): SyncOf<DeadLetterStore> {
  const add = db.prepare('INSERT INTO dead_letters (at_ms, topic, client_id, reason, payload) VALUES (?, ?, ?, ?, ?)');
  const list = db.prepare<[number], DeadLetterRow>('SELECT * FROM dead_letters ORDER BY id DESC LIMIT ?');
  const count = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM dead_letters');
  return {
    add: (d) => void add.run(d.at, d.topic, d.clientId, d.reason, Buffer.from(d.payload)),
    list: (limit) => list.all(Math.max(1, Math.min(1000, limit))).map(toDeadLetter),
    count: () => count.get()!.n,
  };
}

export function sqliteOutbox(db: Db): SyncOf<Outbox> {
  // (id, url) is the primary key: enqueueing the same event again (a retried batch) is a no-op.
  const enqueue = db.prepare('INSERT OR IGNORE INTO outbox (id, url, body, next_attempt_ms, created_ms) VALUES (?, ?, ?, ?, ?)');
  const enqueueAll = db.transaction((events: Array<{ id: string; url: string; body: string }>, now: number) => {
    for (const e of events) enqueue.run(e.id, e.url, e.body, now, now);
  });
  // By outbox_state_list (migration 4): pending rows in created order (ties sorted by rowid), dead ones never scanned.
  const due = db.prepare<[number, number], OutboxRow>(
    "SELECT * FROM outbox WHERE state = 'pending' AND (attempts = 0 OR next_attempt_ms <= ?) ORDER BY created_ms, rowid LIMIT ?",
  );
  const delivered = db.prepare(
    "UPDATE outbox SET state = 'delivered', delivered_ms = ?, last_error = NULL, dead_ms = NULL WHERE id = ? AND url = ? AND state != 'delivered'",
  );
  const failed = db.prepare<[{ error: string; next: number; now: number; dead: number | null; id: string; url: string }]>(
    `UPDATE outbox SET attempts = attempts + 1, last_error = @error, next_attempt_ms = @next,
       first_failed_ms = coalesce(first_failed_ms, @now), state = CASE WHEN @dead IS NULL THEN state ELSE 'dead' END, dead_ms = @dead
     WHERE id = @id AND url = @url AND state = 'pending'`,
  );
  const retryOne = db.prepare<[number, string, string], OutboxRow>(
    `UPDATE outbox SET state = 'pending', next_attempt_ms = ?, first_failed_ms = NULL, dead_ms = NULL
     WHERE id = ? AND url = ? AND state = 'dead' RETURNING *`,
  );
  const retryAll = db.prepare<[number, string], OutboxRow>(
    `UPDATE outbox SET state = 'pending', next_attempt_ms = ?, first_failed_ms = NULL, dead_ms = NULL
     WHERE id = ? AND state = 'dead' RETURNING *`,
  );
  const list = db.prepare<[OutboxState, number, string, string, number], OutboxRow>(
    'SELECT * FROM outbox WHERE state = ? AND (created_ms, id, url) > (?, ?, ?) ORDER BY created_ms, id, url LIMIT ?',
  );
  const count = db.prepare<[OutboxState], { n: number }>('SELECT count(*) AS n FROM outbox WHERE state = ?');
  const next = db.prepare<[], { t: number | null }>(
    "SELECT min(CASE WHEN attempts = 0 THEN 0 ELSE next_attempt_ms END) AS t FROM outbox WHERE state = 'pending'",
  );
  const get = db.prepare<[string, string], OutboxRow>('SELECT * FROM outbox WHERE id = ? AND url = ?');
  return {
    enqueue: (events, now) => enqueueAll(events, now),
    due: (now, limit) => due.all(now, Math.max(1, limit)).map(toEvent),
    markDelivered: (id, url, now) => void delivered.run(now, id, url),
    markFailed: (id, url, error, nextAttemptAt, o = {}) => {
      const now = o.now ?? nextAttemptAt;
      failed.run({ error: error.slice(0, 1000), next: nextAttemptAt, now, dead: o.dead ? now : null, id, url });
    },
    retry: (id, url, now) => (url === null ? retryAll.all(now, id) : retryOne.all(now, id, url)).map(toEvent).sort(byKey),
    list: (q) => {
      const limit = clampLimit(q.limit);
      const after = q.cursor === undefined ? { createdMs: -Infinity, id: '', url: '' } : decodeOutboxCursor(q.cursor);
      const rows = list.all(q.state, after.createdMs, after.id, after.url, limit + 1).map(toEvent);
      return pageOf(rows, limit);
    },
    pending: () => count.get('pending')!.n,
    count: (state) => count.get(state)!.n,
    nextDueAt: () => next.get()!.t,
    get: (id, url) => {
      const r = get.get(id, url);
      return r ? toEvent(r) : undefined;
    },
  };
}
