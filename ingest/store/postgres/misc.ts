// PostgreSQL rule states, dead letters and the webhook outbox, as sqlite/misc.ts.
//
// Outbox claims (a cluster: every instance runs a dispatcher on the same rows). due(now, limit)
// CLAIMS the rows it returns for this instance: one UPDATE sets claimed_by = instanceId and
// claimed_until_ms = the database's clock + claimTtlMs (60 s by default) on rows chosen by a
// SELECT ... FOR UPDATE SKIP LOCKED, and returns them. A row is chosen when it is due (as on SQLite)
// and not under another instance's live claim: unclaimed, claimed by this instance (so this
// instance gets its own rows again, as a single instance does on SQLite: the shared suite holds),
// or claimed by one whose claim ran out (an instance that died or hung mid-delivery: its rows are
// taken over after the TTL). SKIP LOCKED skips rows another instance's due() is claiming right now;
// and a row whose claim committed after this statement's snapshot is re-checked on its newest
// version by FOR UPDATE, so two instances never get the same row while a claim is live.
// markDelivered, markFailed and retry clear the claim. nextDueAt leaves out rows under another
// instance's live claim (they are not this dispatcher's to try: it would otherwise wake at once,
// find nothing due, and spin); once such a claim runs out, the row counts again.
// The claim's clock is the database's (clock_timestamp()), one clock for every instance; `now`
// stays the dispatcher's clock for next_attempt_ms, as on SQLite.
import type { DeadLetterStore, Outbox, RuleStateStore } from '../ports.js';
import { byKey, clampLimit, decodeOutboxCursor, pageOf } from '../paging.js';
import type { DeadLetterRow, OutboxRow as SharedOutboxRow, RuleStateRow } from '../sql-rows.js';
import { toDeadLetter, toEvent, toRuleState } from '../sql-rows.js';
import type { PgDb } from './db.js';
import { keysetMs } from './keyset.js';

/** The database's clock in epoch ms. */
const DB_NOW_MS = '(extract(epoch from clock_timestamp()) * 1000)::bigint';

export function pgRuleStateStore(db: PgDb): RuleStateStore {
  return {
    async load(vin) {
      const [r] = await db.rows<RuleStateRow>('SELECT state FROM rule_states WHERE vin = $1', [vin]);
      return r ? toRuleState(r) : undefined;
    },
    async save(states) {
      if (states.length === 0) return;
      // One statement for the lot; the last state of a vin given twice wins, as on SQLite. In VIN
      // order, so two instances saving overlapping sets lock rows in the same order (no deadlock).
      const last = new Map([...new Map(states.map((s) => [s.vin, s.json]))].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
      await db.query(
        `INSERT INTO rule_states (vin, state) SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT (vin) DO UPDATE SET state = excluded.state`,
        [[...last.keys()], [...last.values()]],
      );
    },
    all: async () => (await db.rows<RuleStateRow>('SELECT state FROM rule_states ORDER BY vin')).map(toRuleState),
  };
}

export function pgDeadLetterStore(db: PgDb): DeadLetterStore {
  return {
    add: async (d) => {
      await db.query('INSERT INTO dead_letters (at_ms, topic, client_id, reason, payload) VALUES ($1, $2, $3, $4, $5)', [
        d.at,
        d.topic,
        d.clientId,
        d.reason,
        Buffer.from(d.payload),
      ]);
    },
    list: async (limit) =>
      (await db.rows<DeadLetterRow>('SELECT * FROM dead_letters ORDER BY id DESC LIMIT $1', [Math.max(1, Math.min(1000, limit))])).map(
        toDeadLetter,
      ),
    count: async () => (await db.rows<{ n: number }>('SELECT count(*) AS n FROM dead_letters'))[0].n,
  };
}

/** `ord`: the enqueue order (an identity column; due()'s tie order, as SQLite's rowid). */
interface OutboxRow extends SharedOutboxRow {
  ord: number;
}

const COLS = 'id, url, body, state, attempts, next_attempt_ms, created_ms, delivered_ms, last_error, first_failed_ms, dead_ms, ord';
const UNCLAIM = 'claimed_by = NULL, claimed_until_ms = NULL';

export function pgOutbox(db: PgDb, claim: { instanceId: string; ttlMs: number }): Outbox {
  const { instanceId, ttlMs } = claim;
  return {
    async enqueue(events, now) {
      if (events.length === 0) return;
      // (id, url) is the primary key: enqueueing the same event again (a retried batch) is a no-op.
      // WITH ORDINALITY keeps the given order in `ord` (due()'s tie order, as SQLite's rowid).
      await db.query(
        `INSERT INTO outbox (id, url, body, next_attempt_ms, created_ms)
         SELECT id, url, body, $4, $4 FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS e(id, url, body, n) ORDER BY n
         ON CONFLICT (id, url) DO NOTHING`,
        [events.map((e) => e.id), events.map((e) => e.url), events.map((e) => e.body), now],
      );
    },
    async due(now, limit) {
      const rows = await db.rows<OutboxRow>(
        `UPDATE outbox o SET claimed_by = $3, claimed_until_ms = ${DB_NOW_MS} + $4
         FROM (SELECT id, url FROM outbox
               WHERE state = 'pending' AND (attempts = 0 OR next_attempt_ms <= $1)
                 AND (claimed_by IS NULL OR claimed_by = $3 OR claimed_until_ms <= ${DB_NOW_MS})
               ORDER BY created_ms, ord LIMIT $2 FOR UPDATE SKIP LOCKED) c
         WHERE o.id = c.id AND o.url = c.url
         RETURNING ${COLS.split(', ')
           .map((c) => `o.${c}`)
           .join(', ')}`,
        [now, Math.max(1, limit), instanceId, ttlMs],
      );
      return rows.sort((a, b) => a.created_ms - b.created_ms || a.ord - b.ord).map(toEvent);
    },
    async markDelivered(id, url, now) {
      await db.query(
        `UPDATE outbox SET state = 'delivered', delivered_ms = $1, last_error = NULL, dead_ms = NULL, ${UNCLAIM}
         WHERE id = $2 AND url = $3 AND state != 'delivered'`,
        [now, id, url],
      );
    },
    async markFailed(id, url, error, nextAttemptAt, o = {}) {
      const now = o.now ?? nextAttemptAt;
      await db.query(
        `UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_ms = $2,
           first_failed_ms = coalesce(first_failed_ms, $3), state = CASE WHEN $4::bigint IS NULL THEN state ELSE 'dead' END, dead_ms = $4,
           ${UNCLAIM}
         WHERE id = $5 AND url = $6 AND state = 'pending'`,
        [error.slice(0, 1000), nextAttemptAt, now, o.dead ? now : null, id, url],
      );
    },
    async retry(id, url, now) {
      const set = `UPDATE outbox SET state = 'pending', next_attempt_ms = $1, first_failed_ms = NULL, dead_ms = NULL, ${UNCLAIM}`;
      const rows =
        url === null
          ? await db.rows<OutboxRow>(`${set} WHERE id = $2 AND state = 'dead' RETURNING ${COLS}`, [now, id])
          : await db.rows<OutboxRow>(`${set} WHERE id = $2 AND url = $3 AND state = 'dead' RETURNING ${COLS}`, [now, id, url]);
      return rows.map(toEvent).sort(byKey);
    },
    async list(q) {
      const limit = clampLimit(q.limit);
      let rows: OutboxRow[];
      if (q.cursor === undefined) {
        rows = await db.rows<OutboxRow>(`SELECT ${COLS} FROM outbox WHERE state = $1 ORDER BY created_ms, id, url LIMIT $2`, [
          q.state,
          limit + 1,
        ]);
      } else {
        const after = decodeOutboxCursor(q.cursor);
        const k = keysetMs(after.createdMs);
        rows = await db.rows<OutboxRow>(
          `SELECT ${COLS} FROM outbox WHERE state = $1 AND (created_ms, id, url) ${k.exact ? '>' : '>='} ($2, $3, $4)
           ORDER BY created_ms, id, url LIMIT $5`,
          [q.state, k.ms, k.exact ? after.id : '', k.exact ? after.url : '', limit + 1],
        );
      }
      return pageOf(rows.map(toEvent), limit);
    },
    pending: async () => (await db.rows<{ n: number }>("SELECT count(*) AS n FROM outbox WHERE state = 'pending'"))[0].n,
    count: async (state) => (await db.rows<{ n: number }>('SELECT count(*) AS n FROM outbox WHERE state = $1', [state]))[0].n,
    nextDueAt: async () =>
      (
        await db.rows<{ t: number | null }>(
          `SELECT min(CASE WHEN attempts = 0 THEN 0 ELSE next_attempt_ms END) AS t FROM outbox
           WHERE state = 'pending' AND (claimed_by IS NULL OR claimed_by = $1 OR claimed_until_ms <= ${DB_NOW_MS})`,
          [instanceId],
        )
      )[0].t,
    get: async (id, url) => {
      const [r] = await db.rows<OutboxRow>(`SELECT ${COLS} FROM outbox WHERE id = $1 AND url = $2`, [id, url]);
      return r ? toEvent(r) : undefined;
    },
  };
}
