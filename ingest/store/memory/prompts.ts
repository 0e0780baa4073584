// In-memory prompt storage for unit tests; the path logic is shared (ingest/prompts/service.ts).
import type { Prompt, PromptFilter, PromptRepo } from '../ports.js';
import type { SyncOf } from '../sync-backend.js';
import { decodeCursor, encodeCursor } from '../paging.js';
import { hmiOrder, isOpen, isPendingHmi } from '../prompt-queries.js';
import { copy, type MemDb } from './state.js';

const createdMs = (p: Prompt): number => Date.parse(p.createdAt);

/** Newest first: createdAt desc, then id desc (the same order the SQLite index gives). */
function newestFirst(a: Prompt, b: Prompt): number {
  return createdMs(b) - createdMs(a) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

export function memoryPromptRepo(db: MemDb): SyncOf<Omit<PromptRepo, 'tx'>> {
  const d = () => db.data;
  return {
    get: (id) => {
      const p = d().prompts.get(id);
      return p && copy(p);
    },
    findOpen(vin, key) {
      for (const p of d().prompts.values()) if (p.vin === vin && p.dedupKey === key && isOpen(p)) return copy(p);
      return undefined;
    },
    insert(p) {
      if (d().prompts.has(p.id)) throw new Error(`prompt ${p.id} exists`);
      for (const o of d().prompts.values()) {
        if (o.vin === p.vin && o.dedupKey === p.dedupKey && isOpen(o)) throw new Error(`an open prompt for ${p.dedupKey} exists`);
      }
      d().prompts.set(p.id, copy(p));
    },
    update: (p) => void d().prompts.set(p.id, copy(p)),
    appendChange(c) {
      const seq = ++d().changeSeq;
      d().changes.push(copy({ seq, ...c }));
      return seq;
    },
    list(f: PromptFilter) {
      const c = f.cursor === undefined ? undefined : decodeCursor(f.cursor);
      const all = [...d().prompts.values()]
        .filter(
          (p) =>
            (f.vin === undefined || p.vin === f.vin) &&
            (f.kind === undefined || p.kind === f.kind) &&
            (f.status === undefined || p.status === f.status) &&
            (f.dealerId === undefined || p.dealerId === f.dealerId) &&
            (f.dealerIds === undefined || (p.dealerId !== null && f.dealerIds.includes(p.dealerId))) &&
            (f.audience === undefined || p.audience.includes(f.audience)) &&
            (c === undefined || createdMs(p) < c.createdMs || (createdMs(p) === c.createdMs && p.id < c.id)),
        )
        .sort(newestFirst);
      const items = all.slice(0, f.limit).map(copy);
      const last = items[items.length - 1];
      return { items, nextCursor: all.length > f.limit && last ? encodeCursor(createdMs(last), last.id) : null };
    },
    pendingHmi: (vin, now, unconfirmed) =>
      [...d().prompts.values()]
        .filter((p) => isPendingHmi(p, vin, now, unconfirmed))
        .sort(hmiOrder)
        .map(copy),
    expiring: (now) =>
      [...d().prompts.values()]
        .filter((p) => isOpen(p) && p.expiresAt !== null && Date.parse(p.expiresAt) <= now)
        .sort((a, b) => Date.parse(a.expiresAt!) - Date.parse(b.expiresAt!))
        .map(copy),
    changesSince(seq, dealers, limit) {
      const out = [];
      const only = dealers === undefined ? undefined : typeof dealers === 'string' ? [dealers] : dealers;
      for (const c of d().changes) {
        if (c.seq <= seq || (only !== undefined && (c.dealerId === null || !only.includes(c.dealerId)))) continue;
        out.push(copy(c));
        if (out.length >= limit) break;
      }
      return out;
    },
    lastChangeSeq: () => d().changes.at(-1)?.seq ?? 0,
    stepsBetween(from, to, dealers) {
      const only = dealers === undefined ? undefined : typeof dealers === 'string' ? [dealers] : dealers;
      return d()
        .changes.filter((c) => {
          const at = Date.parse(c.at);
          return at >= from && at < to && (only === undefined || (c.dealerId !== null && only.includes(c.dealerId)));
        })
        .map((c) => ({ promptId: c.promptId, kind: c.prompt.kind, step: c.step, outcome: c.prompt.outcome }));
    },
  };
}
