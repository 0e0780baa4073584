// CampaignStore behaviour, run against every implementation.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Campaign, CampaignDelivery, Stores } from '../../ingest/store/ports.js';
import { T0, VIN_A, VIN_B } from './fixtures.js';

export function campaign(over: Partial<Campaign> = {}): Campaign {
  return {
    id: 'c_1',
    name: 'Wake-up',
    audience: { activity: ['dormant'] },
    message: { en: { title: 'We miss you', body: 'Come back' } },
    actions: [{ id: 'book_service', label: { en: 'Book' } }],
    startsAt: new Date(T0).toISOString(),
    endsAt: new Date(T0 + 30 * 86_400_000).toISOString(),
    priority: 5,
    frequencyCap: null,
    quietHoursRespected: true,
    state: 'active',
    launchedAt: null,
    createdAt: new Date(T0).toISOString(),
    updatedAt: new Date(T0).toISOString(),
    createdBy: 'test',
    ...over,
  };
}

export function delivery(over: Partial<CampaignDelivery> = {}): CampaignDelivery {
  return {
    campaignId: 'c_1',
    vin: VIN_A,
    occurrence: 1,
    promptId: 'p_1',
    dealerId: 'D1',
    locale: 'en',
    segments: { stage: 'active_owner', activity: 'dormant', maturity: 'skilled' },
    state: 'targeted',
    targetedAt: T0,
    deliveredAt: null,
    shownAt: null,
    dismissedAt: null,
    actedAt: null,
    closedAt: null,
    ...over,
  };
}

export function campaignStoreSuite(name: string, make: () => Stores | Promise<Stores>): void {
  describe(`CampaignStore (${name})`, () => {
    let stores: Stores;
    beforeEach(async () => {
      stores = await make();
    });
    afterEach(async () => {
      await stores.close();
    });

    it('stores a campaign as given and updates it; an unknown id is undefined', async () => {
      const c = campaign();
      await stores.campaigns.insert(c);
      expect(await stores.campaigns.get('c_1')).toEqual(c);
      await stores.campaigns.update({ ...c, state: 'paused', launchedAt: c.createdAt });
      expect(await stores.campaigns.get('c_1')).toMatchObject({ state: 'paused', launchedAt: c.createdAt });
      expect(await stores.campaigns.get('c_nope')).toBeUndefined();
      await expect(stores.campaigns.insert(c)).rejects.toThrow();
    });

    it('lists newest first in pages, and by state oldest first', async () => {
      for (let i = 1; i <= 5; i++) {
        await stores.campaigns.insert(
          campaign({ id: `c_${i}`, createdAt: new Date(T0 + i * 1000).toISOString(), state: i % 2 ? 'active' : 'paused' }),
        );
      }
      const first = await stores.campaigns.list({ limit: 2 });
      expect(first.items.map((c) => c.id)).toEqual(['c_5', 'c_4']);
      const second = await stores.campaigns.list({ limit: 2, cursor: first.nextCursor! });
      expect(second.items.map((c) => c.id)).toEqual(['c_3', 'c_2']);
      const third = await stores.campaigns.list({ limit: 2, cursor: second.nextCursor! });
      expect(third).toEqual({ items: [expect.objectContaining({ id: 'c_1' })], nextCursor: null });
      expect((await stores.campaigns.inState('active')).map((c) => c.id)).toEqual(['c_1', 'c_3', 'c_5']);
      expect(await stores.campaigns.inState('cancelled')).toEqual([]);
    });

    it('keeps deliveries per (campaign, vin, occurrence): by prompt, per vehicle, live ones', async () => {
      await stores.campaigns.insert(campaign());
      await stores.campaigns.addDelivery(delivery());
      await stores.campaigns.addDelivery(delivery({ vin: VIN_B, promptId: 'p_2', state: 'delivered', deliveredAt: T0 + 1 }));
      await stores.campaigns.addDelivery(delivery({ occurrence: 2, promptId: 'p_3', state: 'withdrawn', closedAt: T0 + 2 }));
      await expect(stores.campaigns.addDelivery(delivery({ promptId: 'p_9' }))).rejects.toThrow();
      expect(await stores.campaigns.deliveryByPrompt('p_2')).toMatchObject({ vin: VIN_B, state: 'delivered', deliveredAt: T0 + 1 });
      expect(await stores.campaigns.deliveryByPrompt('p_x')).toBeUndefined();
      expect((await stores.campaigns.deliveries('c_1', VIN_A)).map((d) => d.occurrence)).toEqual([1, 2]);
      expect((await stores.campaigns.deliveries('c_1')).map((d) => d.promptId)).toEqual(['p_1', 'p_3', 'p_2']);
      expect((await stores.campaigns.live('c_1')).map((d) => d.promptId)).toEqual(['p_1', 'p_2']);
      await stores.campaigns.updateDelivery({ ...delivery(), state: 'acted', deliveredAt: T0, shownAt: T0, actedAt: T0 });
      expect((await stores.campaigns.live('c_1')).map((d) => d.promptId)).toEqual(['p_2']);
      expect(await stores.campaigns.deliveryByPrompt('p_1')).toEqual({
        ...delivery(),
        state: 'acted',
        deliveredAt: T0,
        shownAt: T0,
        actedAt: T0,
      });
      expect(await stores.campaigns.deliveries('c_other')).toEqual([]);
    });

    it('rolls a delivery back with the transaction it was written in', async () => {
      await stores.campaigns.insert(campaign());
      await expect(
        stores.transaction(async () => {
          await stores.campaigns.addDelivery(delivery());
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      expect(await stores.campaigns.deliveries('c_1')).toEqual([]);
    });
  });
}
