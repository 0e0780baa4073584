// In-memory CampaignStore for unit tests (the same shared suite as SQLite).
import type { CampaignStore } from '../ports.js';
import type { SyncOf } from '../sync-backend.js';
import { clampLimit, decodeCursor, encodeCursor } from '../paging.js';
import { copy, type MemDb } from './state.js';

const LIVE = new Set(['targeted', 'delivered']);

export function memoryCampaignStore(db: MemDb): SyncOf<CampaignStore> {
  const d = () => db.data;
  const key = (campaignId: string, vin: string, occurrence: number) => `${campaignId}\n${vin}\n${occurrence}`;
  const sorted = (campaignId: string) =>
    [...d().deliveries.values()]
      .filter((x) => x.campaignId === campaignId)
      .sort((a, b) => (a.vin < b.vin ? -1 : a.vin > b.vin ? 1 : a.occurrence - b.occurrence));
  return {
    insert(c) {
      if (d().campaigns.has(c.id)) throw new Error(`campaign ${c.id} exists`);
      d().campaigns.set(c.id, copy(c));
    },
    update(c) {
      if (d().campaigns.has(c.id)) d().campaigns.set(c.id, copy(c));
    },
    get: (id) => {
      const c = d().campaigns.get(id);
      return c && copy(c);
    },
    list(q) {
      const limit = clampLimit(q.limit);
      const after = q.cursor ? decodeCursor(q.cursor) : { createdMs: Number.MAX_SAFE_INTEGER, id: '' };
      const rows = [...d().campaigns.values()]
        .map((c) => ({ c, ms: Date.parse(c.createdAt) }))
        .filter(({ c, ms }) => ms < after.createdMs || (ms === after.createdMs && c.id < after.id))
        .sort((a, b) => b.ms - a.ms || (a.c.id < b.c.id ? 1 : -1))
        .map(({ c }) => copy(c));
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      return { items, nextCursor: rows.length > limit ? encodeCursor(Date.parse(last.createdAt), last.id) : null };
    },
    inState: (state) =>
      [...d().campaigns.values()]
        .filter((c) => c.state === state)
        .sort((a, b) => Date.parse(a.createdAt) - Date.parse(b.createdAt) || (a.id < b.id ? -1 : 1))
        .map(copy),
    addDelivery(x) {
      const k = key(x.campaignId, x.vin, x.occurrence);
      if (d().deliveries.has(k) || [...d().deliveries.values()].some((y) => y.promptId === x.promptId))
        throw new Error(`delivery ${k} exists`);
      d().deliveries.set(k, copy(x));
    },
    updateDelivery(x) {
      const k = key(x.campaignId, x.vin, x.occurrence);
      if (d().deliveries.has(k)) d().deliveries.set(k, copy(x));
    },
    deliveryByPrompt: (promptId) => {
      const x = [...d().deliveries.values()].find((y) => y.promptId === promptId);
      return x && copy(x);
    },
    deliveries: (campaignId, vin) =>
      sorted(campaignId)
        .filter((x) => vin === undefined || x.vin === vin)
        .map(copy),
    live: (campaignId) =>
      sorted(campaignId)
        .filter((x) => LIVE.has(x.state))
        .map(copy),
  };
}
