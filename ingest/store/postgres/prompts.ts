// PostgreSQL storage for prompts and their change log, as sqlite/prompts.ts: the full prompt is kept
// as JSON (`data`), the columns beside it exist for indexes and filters. Every call inside a
// transaction takes the prompt write lock first (db.ts: one prompt-changing transaction at a time,
// change seqs in commit order, a situation opened once).
import type { DealerSelector, Prompt, PromptFilter, PromptRepo, StepRow } from '../ports.js';
import { decodeCursor, encodeCursor } from '../paging.js';
import { hmiOrder } from '../prompt-queries.js';
import type { ChangeRow, DataRow, StepChangeRow } from '../sql-rows.js';
import { parsePrompt, toChange, toPrompt, toStep } from '../sql-rows.js';
import type { PgDb } from './db.js';
import { keysetMs } from './keyset.js';

const dealerList = (d: Exclude<DealerSelector, undefined>): readonly string[] => (typeof d === 'string' ? [d] : d);
const TERMINAL = "status NOT IN ('resolved', 'expired')";

function columns(p: Prompt): unknown[] {
  return [
    p.id,
    p.vin,
    p.kind,
    p.dedupKey,
    p.status,
    p.hmiState,
    p.audience,
    p.dealerId,
    p.urgent,
    p.value,
    Date.parse(p.createdAt),
    Date.parse(p.updatedAt),
    p.expiresAt === null ? null : Date.parse(p.expiresAt),
    JSON.stringify(p),
  ];
}

/** The LISTEN/NOTIFY channel told of committed prompt changes. */
export const CHANGES_CHANNEL = 'odopulse_changes';

export function pgPromptRepo(db: PgDb): Omit<PromptRepo, 'tx'> {
  /** A statement of a prompt-changing path: under the prompt write lock inside a transaction. */
  const locked = async <R extends Record<string, unknown>>(sql: string, values: unknown[]) => {
    await db.lockPrompts();
    return db.rows<R>(sql, values);
  };
  const one = async (sql: string, values: unknown[]) => parsePrompt((await locked<DataRow>(sql, values))[0]);

  return {
    get: (id) => one('SELECT data FROM prompts WHERE id = $1', [id]),
    findOpen: (vin, key) => one(`SELECT data FROM prompts WHERE vin = $1 AND dedup_key = $2 AND ${TERMINAL}`, [vin, key]),
    insert: async (p) => {
      await locked(
        `INSERT INTO prompts (id, vin, kind, dedup_key, status, hmi_state, audience, dealer_id, urgent, value, created_ms, updated_ms, expires_ms, data)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
        columns(p),
      );
    },
    update: async (p) => {
      const c = columns(p);
      await locked(
        `UPDATE prompts SET status = $2, hmi_state = $3, dealer_id = $4, urgent = $5, value = $6, updated_ms = $7, expires_ms = $8, data = $9
         WHERE id = $1`,
        [c[0], c[4], c[5], c[7], c[8], c[9], c[11], c[12], c[13]],
      );
    },
    async appendChange(c) {
      const insert = async () => {
        const [r] = await locked<{ seq: number }>(
          // the notification (sent at commit, one per transaction) wakes every instance's change feed (cluster/change-feed.ts)
          `WITH ins AS (INSERT INTO prompt_changes (prompt_id, vin, dealer_id, kind, step, outcome, at_ms, by, prompt)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING seq)
           SELECT seq, pg_notify('${CHANGES_CHANNEL}', '') FROM ins`,
          [c.promptId, c.vin, c.dealerId, c.prompt.kind, c.step, c.prompt.outcome, Date.parse(c.at), c.by, JSON.stringify(c.prompt)],
        );
        return r.seq;
      };
      // The seq must be taken under the lock, which only a transaction holds.
      return db.inTransaction() ? insert() : db.transaction(insert);
    },
    async list(f: PromptFilter) {
      const where: string[] = [];
      const values: unknown[] = [];
      const cond = (sql: (n: string) => string, value: unknown) => {
        values.push(value);
        where.push(sql(`$${values.length}`));
      };
      if (f.vin !== undefined) cond((n) => `vin = ${n}`, f.vin);
      if (f.kind !== undefined) cond((n) => `kind = ${n}`, f.kind);
      if (f.status !== undefined) cond((n) => `status = ${n}`, f.status);
      if (f.dealerId !== undefined) cond((n) => `dealer_id = ${n}`, f.dealerId);
      if (f.dealerIds !== undefined) cond((n) => `dealer_id = ANY(${n}::text[])`, f.dealerIds);
      if (f.audience !== undefined) cond((n) => `${n} = ANY(audience)`, f.audience);
      if (f.cursor !== undefined) {
        const c = decodeCursor(f.cursor);
        const k = keysetMs(c.createdMs);
        values.push(k.ms, k.exact ? c.id : ''); // ('' sorts first: a non-integer ms pages below ceil(ms))
        where.push(`(created_ms, id) < ($${values.length - 1}, $${values.length})`);
      }
      values.push(f.limit + 1);
      const sql = `SELECT data FROM prompts ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_ms DESC, id DESC LIMIT $${values.length}`;
      const rows = await db.rows<DataRow>(sql, values);
      const items = rows.slice(0, f.limit).map(toPrompt);
      const last = items[items.length - 1];
      return { items, nextCursor: rows.length > f.limit && last ? encodeCursor(Date.parse(last.createdAt), last.id) : null };
    },
    async pendingHmi(vin, now, unconfirmed) {
      const states = unconfirmed ? ['pending', 'sent'] : ['pending'];
      const rows = await db.rows<DataRow>(
        `SELECT data FROM prompts WHERE vin = $1 AND hmi_state = ANY($2::text[]) AND hmi_state IN ('pending', 'sent') AND ${TERMINAL}`,
        [vin, states],
      );
      return rows
        .map(toPrompt)
        .filter((p) => p.audience.includes('hmi') && (p.expiresAt === null || Date.parse(p.expiresAt) > now))
        .sort(hmiOrder);
    },
    expiring: async (now) =>
      (
        await locked<DataRow>(
          `SELECT data FROM prompts WHERE expires_ms IS NOT NULL AND expires_ms <= $1 AND ${TERMINAL} ORDER BY expires_ms, created_ms, id`,
          [now],
        )
      ).map(toPrompt),
    changesSince: async (seq, dealers, limit) =>
      (dealers === undefined
        ? await db.rows<ChangeRow>('SELECT * FROM prompt_changes WHERE seq > $1 ORDER BY seq LIMIT $2', [seq, limit])
        : await db.rows<ChangeRow>('SELECT * FROM prompt_changes WHERE seq > $1 AND dealer_id = ANY($2::text[]) ORDER BY seq LIMIT $3', [
            seq,
            dealerList(dealers),
            limit,
          ])
      ).map(toChange),
    lastChangeSeq: async () => (await db.rows<{ seq: number | null }>('SELECT max(seq) AS seq FROM prompt_changes'))[0].seq ?? 0,
    stepsBetween: async (from, to, dealers): Promise<StepRow[]> =>
      (
        await db.rows<StepChangeRow>(
          `SELECT prompt_id, kind, step, outcome FROM prompt_changes WHERE at_ms >= $1 AND at_ms < $2
           AND ($3::text[] IS NULL OR dealer_id = ANY($3::text[])) ORDER BY seq`,
          [from, to, dealers === undefined ? null : dealerList(dealers)],
        )
      ).map(toStep),
  };
}
