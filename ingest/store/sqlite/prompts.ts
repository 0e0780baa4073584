// SQLite storage for prompts and their change log. The full prompt is kept as JSON (`data`);
// the columns beside it exist for indexes and filters.
import type { Prompt, PromptFilter, PromptRepo } from '../ports.js';
import type { SyncOf } from '../sync-backend.js';
import { decodeCursor, encodeCursor } from '../paging.js';
import { hmiOrder } from '../prompt-queries.js';
import type { ChangeRow, DataRow, StepChangeRow } from '../sql-rows.js';
import { parsePrompt, toChange, toPrompt, toStep } from '../sql-rows.js';
import type { Db } from './db.js';

function columns(p: Prompt) {
  return {
    id: p.id,
    vin: p.vin,
    kind: p.kind,
    dedup_key: p.dedupKey,
    status: p.status,
    hmi_state: p.hmiState,
    audience: JSON.stringify(p.audience),
    dealer_id: p.dealerId,
    urgent: p.urgent ? 1 : 0,
    value: p.value,
    created_ms: Date.parse(p.createdAt),
    updated_ms: Date.parse(p.updatedAt),
    expires_ms: p.expiresAt === null ? null : Date.parse(p.expiresAt),
    data: JSON.stringify(p),
  };
}

export function sqlitePromptRepo(db: Db): SyncOf<Omit<PromptRepo, 'tx'>> {
  const st = {
    get: db.prepare<[string], DataRow>('SELECT data FROM prompts WHERE id = ?'),
    findOpen: db.prepare<[string, string], DataRow>(
      "SELECT data FROM prompts WHERE vin = ? AND dedup_key = ? AND status NOT IN ('resolved', 'expired')",
    ),
    insert: db.prepare(
      `INSERT INTO prompts (id, vin, kind, dedup_key, status, hmi_state, audience, dealer_id, urgent, value, created_ms, updated_ms, expires_ms, data)
       VALUES (@id, @vin, @kind, @dedup_key, @status, @hmi_state, @audience, @dealer_id, @urgent, @value, @created_ms, @updated_ms, @expires_ms, @data)`,
    ),
    update: db.prepare(
      `UPDATE prompts SET status = @status, hmi_state = @hmi_state, dealer_id = @dealer_id, urgent = @urgent, value = @value,
       updated_ms = @updated_ms, expires_ms = @expires_ms, data = @data WHERE id = @id`,
    ),
    change: db.prepare(
      `INSERT INTO prompt_changes (prompt_id, vin, dealer_id, kind, step, outcome, at_ms, by, prompt)
       VALUES (@prompt_id, @vin, @dealer_id, @kind, @step, @outcome, @at_ms, @by, @prompt)`,
    ),
    pendingHmi: db.prepare<[string], DataRow>(
      "SELECT data FROM prompts WHERE vin = ? AND hmi_state = 'pending' AND status NOT IN ('resolved', 'expired')",
    ),
    // sent, not yet confirmed by the car (few: they wait for its next birth or subscribe; index on vin)
    unconfirmedHmi: db.prepare<[string], DataRow>(
      "SELECT data FROM prompts WHERE vin = ? AND hmi_state = 'sent' AND status NOT IN ('resolved', 'expired')",
    ),
    expiring: db.prepare<[number], DataRow>(
      "SELECT data FROM prompts WHERE expires_ms IS NOT NULL AND expires_ms <= ? AND status NOT IN ('resolved', 'expired') ORDER BY expires_ms",
    ),
    lastSeq: db.prepare<[], { seq: number | null }>('SELECT max(seq) AS seq FROM prompt_changes'),
    since: db.prepare<[number, number], ChangeRow>('SELECT * FROM prompt_changes WHERE seq > ? ORDER BY seq LIMIT ?'),
    sinceDealer: db.prepare<[number, string, number], ChangeRow>(
      'SELECT * FROM prompt_changes WHERE seq > ? AND dealer_id IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT ?',
    ),
    steps: db.prepare<[{ from: number; to: number; dealers: string | null }], StepChangeRow>(
      `SELECT prompt_id, kind, step, outcome FROM prompt_changes WHERE at_ms >= @from AND at_ms < @to
       AND (@dealers IS NULL OR dealer_id IN (SELECT value FROM json_each(@dealers)))`,
    ),
  };

  // One statement per filter combination (at most 64), prepared on first use.
  const listCache = new Map<string, ReturnType<typeof db.prepare<[Record<string, unknown>], DataRow>>>();

  return {
    get: (id) => parsePrompt(st.get.get(id)),
    findOpen: (vin, key) => parsePrompt(st.findOpen.get(vin, key)),
    insert: (p) => void st.insert.run(columns(p)),
    update: (p) => void st.update.run(columns(p)),
    appendChange(c) {
      const r = st.change.run({
        prompt_id: c.promptId,
        vin: c.vin,
        dealer_id: c.dealerId,
        kind: c.prompt.kind,
        step: c.step,
        outcome: c.prompt.outcome,
        at_ms: Date.parse(c.at),
        by: c.by,
        prompt: JSON.stringify(c.prompt),
      });
      return Number(r.lastInsertRowid);
    },
    list(f: PromptFilter) {
      const where: string[] = [];
      const args: Record<string, unknown> = {};
      const cond = (sql: string, name: string, value: unknown) => {
        where.push(sql);
        args[name] = value;
      };
      if (f.vin !== undefined) cond('vin = @vin', 'vin', f.vin);
      if (f.kind !== undefined) cond('kind = @kind', 'kind', f.kind);
      if (f.status !== undefined) cond('status = @status', 'status', f.status);
      if (f.dealerId !== undefined) cond('dealer_id = @dealer', 'dealer', f.dealerId);
      // a JSON array of the scope's dealers: json_each keeps the statement text (and its cache entry) fixed
      if (f.dealerIds !== undefined) cond('dealer_id IN (SELECT value FROM json_each(@dealers))', 'dealers', JSON.stringify(f.dealerIds));
      // audience is a JSON array of fixed words: a quoted-word match is exact.
      if (f.audience !== undefined) cond('instr(audience, @aud) > 0', 'aud', JSON.stringify(f.audience));
      if (f.cursor !== undefined) {
        const c = decodeCursor(f.cursor);
        where.push('(created_ms < @cms OR (created_ms = @cms AND id < @cid))');
        args.cms = c.createdMs;
        args.cid = c.id;
      }
      args.lim = f.limit + 1;
      const sql = `SELECT data FROM prompts ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY created_ms DESC, id DESC LIMIT @lim`;
      let stmt = listCache.get(sql);
      if (!stmt) listCache.set(sql, (stmt = db.prepare<[Record<string, unknown>], DataRow>(sql)));
      const rows = stmt.all(args);
      const items = rows.slice(0, f.limit).map(toPrompt);
      const last = items[items.length - 1];
      return { items, nextCursor: rows.length > f.limit && last ? encodeCursor(Date.parse(last.createdAt), last.id) : null };
    },
    pendingHmi(vin, now, unconfirmed) {
      return [...st.pendingHmi.all(vin), ...(unconfirmed ? st.unconfirmedHmi.all(vin) : [])]
        .map(toPrompt)
        .filter((p) => p.audience.includes('hmi') && (p.expiresAt === null || Date.parse(p.expiresAt) > now))
        .sort(hmiOrder);
    },
    expiring: (now) => st.expiring.all(now).map(toPrompt),
    changesSince: (seq, dealers, limit) =>
      (dealers === undefined
        ? st.since.all(seq, limit)
        : st.sinceDealer.all(seq, JSON.stringify(typeof dealers === 'string' ? [dealers] : dealers), limit)
      ).map(toChange),
    lastChangeSeq: () => st.lastSeq.get()?.seq ?? 0,
    stepsBetween: (from, to, dealers) =>
      st.steps
        .all({ from, to, dealers: dealers === undefined ? null : JSON.stringify(typeof dealers === 'string' ? [dealers] : dealers) })
        .map(toStep),
  };
}
