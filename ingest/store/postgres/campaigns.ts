// PostgreSQL CampaignStore, as sqlite/campaigns.ts: each row's whole record as JSON beside the
// columns it is looked up by.
import type { CampaignStore } from '../ports.js';
import { clampLimit, decodeCursor, encodeCursor } from '../paging.js';
import type { DataRow } from '../sql-rows.js';
import { toCampaign as campaign, toDelivery as delivery } from '../sql-rows.js';
import type { PgDb } from './db.js';
import { keysetMs } from './keyset.js';

export function pgCampaignStore(db: PgDb): CampaignStore {
  return {
    async insert(c) {
      await db.query('INSERT INTO campaigns (id, state, created_ms, data) VALUES ($1, $2, $3, $4)', [
        c.id,
        c.state,
        Date.parse(c.createdAt),
        JSON.stringify(c),
      ]);
    },
    async update(c) {
      await db.query('UPDATE campaigns SET state = $2, data = $3 WHERE id = $1', [c.id, c.state, JSON.stringify(c)]);
    },
    async get(id) {
      const [r] = await db.rows<DataRow>('SELECT data FROM campaigns WHERE id = $1', [id]);
      return r ? campaign(r) : undefined;
    },
    async list(q) {
      const limit = clampLimit(q.limit);
      const after = q.cursor ? decodeCursor(q.cursor) : { createdMs: Number.MAX_SAFE_INTEGER, id: '' };
      const k = keysetMs(after.createdMs);
      const rows = (
        await db.rows<DataRow>('SELECT data FROM campaigns WHERE (created_ms, id) < ($1, $2) ORDER BY created_ms DESC, id DESC LIMIT $3', [
          k.ms,
          k.exact ? after.id : '',
          limit + 1,
        ])
      ).map(campaign);
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      return { items, nextCursor: rows.length > limit ? encodeCursor(Date.parse(last.createdAt), last.id) : null };
    },
    inState: async (state) =>
      (await db.rows<DataRow>('SELECT data FROM campaigns WHERE state = $1 ORDER BY created_ms, id', [state])).map(campaign),
    async addDelivery(d) {
      await db.query(
        'INSERT INTO campaign_deliveries (campaign_id, vin, occurrence, prompt_id, state, data) VALUES ($1, $2, $3, $4, $5, $6)',
        [d.campaignId, d.vin, d.occurrence, d.promptId, d.state, JSON.stringify(d)],
      );
    },
    async updateDelivery(d) {
      await db.query('UPDATE campaign_deliveries SET state = $4, data = $5 WHERE campaign_id = $1 AND vin = $2 AND occurrence = $3', [
        d.campaignId,
        d.vin,
        d.occurrence,
        d.state,
        JSON.stringify(d),
      ]);
    },
    async deliveryByPrompt(promptId) {
      const [r] = await db.rows<DataRow>('SELECT data FROM campaign_deliveries WHERE prompt_id = $1', [promptId]);
      return r ? delivery(r) : undefined;
    },
    deliveries: async (campaignId, vin) =>
      (
        await db.rows<DataRow>(
          'SELECT data FROM campaign_deliveries WHERE campaign_id = $1 AND ($2::text IS NULL OR vin = $2) ORDER BY vin, occurrence',
          [campaignId, vin ?? null],
        )
      ).map(delivery),
    live: async (campaignId) =>
      (
        await db.rows<DataRow>(
          "SELECT data FROM campaign_deliveries WHERE campaign_id = $1 AND state IN ('targeted', 'delivered') ORDER BY vin, occurrence",
          [campaignId],
        )
      ).map(delivery),
  };
}
