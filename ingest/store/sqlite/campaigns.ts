// SQLite CampaignStore: campaigns and their deliveries (docs/domain.md#campaigns), each row's
// whole record as JSON beside the columns it is looked up by.
import type { Campaign, CampaignDelivery, CampaignState, CampaignStore } from '../ports.js';
import type { SyncOf } from '../sync-backend.js';
import { clampLimit, decodeCursor, encodeCursor } from '../paging.js';
import type { DataRow } from '../sql-rows.js';
import { toCampaign as campaign, toDelivery as delivery } from '../sql-rows.js';
import type { Db } from './db.js';

export function sqliteCampaignStore(db: Db): SyncOf<CampaignStore> {
  const st = {
    insert: db.prepare('INSERT INTO campaigns (id, state, created_ms, data) VALUES (@id, @state, @created, @data)'),
    update: db.prepare('UPDATE campaigns SET state = @state, data = @data WHERE id = @id'),
    get: db.prepare<[string], DataRow>('SELECT data FROM campaigns WHERE id = ?'),
    list: db.prepare<[{ ms: number; id: string; lim: number }], DataRow>(
      `SELECT data FROM campaigns WHERE created_ms < @ms OR (created_ms = @ms AND id < @id)
       ORDER BY created_ms DESC, id DESC LIMIT @lim`,
    ),
    inState: db.prepare<[string], DataRow>('SELECT data FROM campaigns WHERE state = ? ORDER BY created_ms, id'),
    addDelivery: db.prepare(
      `INSERT INTO campaign_deliveries (campaign_id, vin, occurrence, prompt_id, state, data)
       VALUES (@campaignId, @vin, @occurrence, @promptId, @state, @data)`,
    ),
    updateDelivery: db.prepare(
      'UPDATE campaign_deliveries SET state = @state, data = @data WHERE campaign_id = @campaignId AND vin = @vin AND occurrence = @occurrence',
    ),
    byPrompt: db.prepare<[string], DataRow>('SELECT data FROM campaign_deliveries WHERE prompt_id = ?'),
    deliveries: db.prepare<[{ c: string; vin: string | null }], DataRow>(
      `SELECT data FROM campaign_deliveries WHERE campaign_id = @c AND (@vin IS NULL OR vin = @vin) ORDER BY vin, occurrence`,
    ),
    live: db.prepare<[string], DataRow>(
      "SELECT data FROM campaign_deliveries WHERE campaign_id = ? AND state IN ('targeted', 'delivered') ORDER BY vin, occurrence",
    ),
  };
  const row = (c: Campaign) => ({ id: c.id, state: c.state, created: Date.parse(c.createdAt), data: JSON.stringify(c) });
  const drow = (d: CampaignDelivery) => ({ ...d, data: JSON.stringify(d) });
  return {
    insert: (c) => void st.insert.run(row(c)),
    update: (c) => void st.update.run(row(c)),
    get: (id) => {
      const r = st.get.get(id);
      return r ? campaign(r) : undefined;
    },
    list(q) {
      const limit = clampLimit(q.limit);
      const after = q.cursor ? decodeCursor(q.cursor) : { createdMs: Number.MAX_SAFE_INTEGER, id: '' };
      const rows = st.list.all({ ms: after.createdMs, id: after.id, lim: limit + 1 }).map(campaign);
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      return { items, nextCursor: rows.length > limit ? encodeCursor(Date.parse(last.createdAt), last.id) : null };
    },
    inState: (state: CampaignState) => st.inState.all(state).map(campaign),
    addDelivery: (d) => void st.addDelivery.run(drow(d)),
    updateDelivery: (d) => void st.updateDelivery.run(drow(d)),
    deliveryByPrompt: (promptId) => {
      const r = st.byPrompt.get(promptId);
      return r ? delivery(r) : undefined;
    },
    deliveries: (campaignId, vin) => st.deliveries.all({ c: campaignId, vin: vin ?? null }).map(delivery),
    live: (campaignId) => st.live.all(campaignId).map(delivery),
  };
}
