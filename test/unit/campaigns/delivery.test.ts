// Campaign delivery over the memory stores (docs/domain.md#campaign-delivery): who gets a message
// when segments change, a pass at creation and resume, withdrawal when leaving the audience, on pause
// and cancel, the delivery rows following prompt steps, and the HMI gating a campaign message gets
// (parked, quiet hours and their edges, the shared daily cap, ranked after every other prompt).
import { describe, expect, it } from 'vitest';
import { decodeHmiPrompt } from '../../../proto/codec.js';
import type { Locale, Signals } from '../../../proto/domain.js';
import { VSS } from '../../../proto/signals.js';
import { CampaignDeliveries } from '../../../ingest/campaigns/delivery.js';
import { CampaignService } from '../../../ingest/campaigns/service.js';
import type { CampaignInput } from '../../../ingest/campaigns/model.js';
import { HmiDelivery } from '../../../ingest/prompts/hmi.js';
import { ChangeRecorder } from '../../../ingest/prompts/recorder.js';
import type { BrokerLink } from '../../../ingest/inbound/topics.js';
import type { PromptChange } from '../../../ingest/store/ports.js';
import { createMemoryStores } from '../../../ingest/stores.js';
import type { Segments } from '../../../rules/types.js';

const DAY = 86_400_000;
const NOON = Date.parse('2026-03-02T12:00:00Z');
const VINS = ['LSVAU2180N2183294', 'LSVAU2180N2183295', 'LSVAU2180N2183296'];
const dormant: Segments = { stage: 'active_owner', activity: 'dormant', maturity: 'skilled' };
const active: Segments = { ...dormant, activity: 'active' };
const URL = 'http://crm.test/hook';

async function setup(o: { cap?: number } = {}) {
  const stores = createMemoryStores();
  let now = NOON;
  const clock = { now: () => now };
  const locales: Locale[] = ['en', 'zh-CN', 'en'];
  for (const [i, vin] of VINS.entries()) {
    await stores.vehicles.upsert(
      vin,
      {
        model: 'Aurora EV',
        powertrain: 'BEV',
        deliveryDate: '2025-01-01',
        dealerId: 'D1',
        locale: locales[i],
        vehicleType: 'passenger',
        timeZone: 'UTC',
      },
      now,
    );
    await stores.vehicles.setOnline(vin, true, { at: now });
  }
  const delivery = new CampaignDeliveries({ stores, events: { urls: [URL] } });
  const recorder = new ChangeRecorder({
    transaction: (fn) => stores.transaction(fn),
    outbox: stores.outbox,
    eventsFor: () => [],
    track: (c) => delivery.track(c),
    clock,
  });
  const published: PromptChange[] = [];
  const record = async (fn: () => Promise<PromptChange[]>) => {
    const c = await recorder.commit(fn);
    published.push(...c);
    return c;
  };
  const service = new CampaignService({ stores, delivery, clock, record });
  let latest: Signals = { [VSS.lowVoltageSystemState]: 'OFF' };
  const sent: Array<ReturnType<typeof decodeHmiPrompt>> = [];
  const link: BrokerLink = {
    kind: 'embedded',
    confirmsDelivery: true,
    publish: async (_t, payload) => void sent.push(decodeHmiPrompt(payload)),
    ready: () => true,
    connectedClients: () => 1,
    close: async () => {},
  };
  const hmi = new HmiDelivery({
    stores: { ...stores, prompts: stores.prompts },
    link,
    prefix: 'v1',
    clock,
    dailyCap: o.cap ?? 3,
    latest: () => latest,
    onChanges: () => {},
  });
  /** A segment change the way the rules commit makes it. */
  const segmentsChange = (vin: string, s: Segments) =>
    stores.transaction(async () => {
      await stores.vehicles.setSegments(vin, s, now);
      const c = await delivery.onSegments(vin, await stores.vehicles.get(vin), s, now);
      await stores.outbox.enqueue(await delivery.track(c), now);
      return c;
    });
  const input = (over: Partial<CampaignInput> = {}): CampaignInput => ({
    name: 'Wake-up',
    audience: { activity: ['dormant'] },
    message: { en: { title: 'We miss you', body: 'A free check is waiting' }, 'zh-CN': { title: '好久不见', body: '免费检测等您' } },
    actions: [{ id: 'book_service', label: { en: 'Book', 'zh-CN': '预约' } }],
    startsAt: NOON - DAY,
    endsAt: NOON + 10 * DAY,
    priority: 5,
    frequencyCap: null,
    quietHoursRespected: true,
    ...over,
  });
  const campaignEvents = async () =>
    (await stores.outbox.list({ state: 'pending', limit: 1000 })).items
      .map((e) => JSON.parse(e.body) as { type: string; data: { vin: string } })
      .filter((e) => e.type.startsWith('com.odopulse.campaign.'));
  return {
    stores,
    service,
    delivery,
    hmi,
    sent,
    published,
    segmentsChange,
    input,
    campaignEvents,
    setNow: (t: number) => void (now = t),
    drive: () => void (latest = { [VSS.lowVoltageSystemState]: 'ON', [VSS.speed]: 40 }),
    park: () => void (latest = { [VSS.lowVoltageSystemState]: 'OFF' }),
    record,
  };
}

describe('campaign targeting through the stores', () => {
  it('a created campaign reaches exactly the vehicles in its audience, each in its locale, once', async () => {
    const t = await setup();
    await t.segmentsChange(VINS[0], dormant);
    await t.segmentsChange(VINS[1], dormant);
    await t.segmentsChange(VINS[2], active);
    const c = await t.service.create(t.input(), 'crm', () => {});
    expect(c.status).toBe('active');
    expect(c.counts).toMatchObject({ targeted: 2, pending: 2 });
    const prompts = (await t.stores.prompts.list({ kind: 'campaign.message', limit: 50 })).items;
    expect(prompts.map((p) => [p.vin, p.locale, p.title]).sort()).toEqual([
      [VINS[0], 'en', 'We miss you'],
      [VINS[1], 'zh-CN', '好久不见'],
    ]);
    const p = prompts.find((x) => x.vin === VINS[1])!;
    expect(p).toMatchObject({
      severity: 'info',
      audience: ['hmi', 'lifecycle'],
      urgent: false,
      value: 5,
      expiresAt: new Date(NOON + 10 * DAY).toISOString(),
      dedupKey: `${VINS[1]}:campaign.message:${c.id}:1`,
      actions: [{ id: 'book_service', label: '预约' }],
      evidence: { campaignId: c.id, occurrence: 1 },
    });
    // a second segment change of a targeted vehicle changes nothing: once per campaign
    await t.segmentsChange(VINS[0], { ...dormant, maturity: 'veteran' });
    expect((await t.service.get(c.id))!.counts.targeted).toBe(2);
    expect((await t.campaignEvents()).map((e) => e.type)).toEqual(['com.odopulse.campaign.targeted', 'com.odopulse.campaign.targeted']);
  });

  it('a vehicle entering the audience while it runs gets it; one leaving before delivery has it withdrawn', async () => {
    const t = await setup();
    const c = await t.service.create(t.input(), 'crm', () => {});
    expect(c.counts.targeted).toBe(0);
    const [created] = await t.segmentsChange(VINS[0], dormant);
    expect(created).toMatchObject({ step: 'created', prompt: { kind: 'campaign.message' } });
    const withdrawn = await t.segmentsChange(VINS[0], active);
    expect(withdrawn).toMatchObject([{ step: 'withdrawn', prompt: { hmiState: 'withdrawn' } }]);
    expect((await t.service.get(c.id))!.counts).toMatchObject({ targeted: 1, pending: 0, withdrawn: 1 });
    // back in the audience: the withdrawn one never reached the car, so it gets a new one
    const again = await t.segmentsChange(VINS[0], dormant);
    expect(again[0].prompt.dedupKey).toBe(`${VINS[0]}:campaign.message:${c.id}:2`);
  });

  it('one already on the car is not withdrawn when the vehicle leaves the audience (it may be showing)', async () => {
    const t = await setup();
    await t.segmentsChange(VINS[0], dormant);
    const c = await t.service.create(t.input(), 'crm', () => {});
    const [p] = (await t.stores.prompts.list({ kind: 'campaign.message', limit: 5 })).items;
    await t.record(async () => [(await t.stores.prompts.markHmiDelivered(p.id, VINS[0], NOON))!]);
    expect(await t.segmentsChange(VINS[0], active)).toEqual([]);
    expect((await t.service.get(c.id))!.counts).toMatchObject({ delivered: 1, withdrawn: 0 });
  });

  it('a profile change moves a vehicle into an audience or out of it, with the segments it has', async () => {
    const t = await setup();
    await t.segmentsChange(VINS[0], dormant);
    const c = await t.service.create(t.input({ audience: { activity: ['dormant'], dealerId: ['D2'] } }), 'crm', () => {});
    expect(c.counts.targeted).toBe(0);
    const moved = async (dealerId: string) => ({ ...(await t.stores.vehicles.get(VINS[0]))!, dealerId });
    await t.stores.vehicles.upsert(VINS[0], await moved('D2'), NOON);
    expect((await t.service.onProfileChanged(VINS[0])).map((x) => x.step)).toEqual(['created']);
    await t.stores.vehicles.upsert(VINS[0], await moved('D1'), NOON);
    expect((await t.service.onProfileChanged(VINS[0])).map((x) => x.step)).toEqual(['withdrawn']);
    expect(await t.service.onProfileChanged(VINS[1])).toEqual([]); // no segments yet: in no audience
  });

  it('before startsAt nothing; the sweep launches it at startsAt; after endsAt nothing', async () => {
    const t = await setup();
    await t.segmentsChange(VINS[0], dormant);
    const c = await t.service.create(t.input({ startsAt: NOON + DAY }), 'crm', () => {});
    expect(c).toMatchObject({ status: 'scheduled', launchedAt: null, counts: { targeted: 0 } });
    t.setNow(NOON + DAY - 1);
    expect(await t.service.sweep()).toEqual([]);
    t.setNow(NOON + DAY);
    expect(await t.service.sweep()).toHaveLength(1);
    expect((await t.service.get(c.id))!.launchedAt).toBe(new Date(NOON + DAY).toISOString());
    t.setNow(NOON + 10 * DAY);
    expect(await t.segmentsChange(VINS[1], dormant)).toEqual([]);
    expect((await t.service.get(c.id))!.status).toBe('ended');
    // the message expires with the campaign
    const expired = await t.record(() => t.stores.prompts.expire(NOON + 10 * DAY));
    expect(expired.map((x) => x.step)).toEqual(['expired']);
    expect((await t.service.get(c.id))!.counts.expired).toBe(1);
  });

  it('pause withdraws what the owners have not seen and targets no one; resume makes a pass; cancel is final', async () => {
    const t = await setup();
    await t.segmentsChange(VINS[0], dormant);
    await t.segmentsChange(VINS[1], dormant);
    const c = await t.service.create(t.input(), 'crm', () => {});
    const [a, b] = await t.stores.campaigns.deliveries(c.id);
    await t.record(async () => [(await t.stores.prompts.recordHmiAck(a.promptId, a.vin, 'SHOWN', NOON))!]);
    const paused = (await t.service.command(c.id, 'pause', () => {}))!;
    expect(paused.status).toBe('paused');
    expect(await t.stores.prompts.get(b.promptId)).toMatchObject({ status: 'resolved', hmiState: 'withdrawn', outcome: 'withdrawn' });
    expect((await t.stores.prompts.get(a.promptId))!.hmiState).toBe('shown');
    expect(await t.segmentsChange(VINS[2], dormant)).toEqual([]);
    expect(await t.service.command(c.id, 'pause', () => {})).toBeUndefined();
    const resumed = (await t.service.command(c.id, 'resume', () => {}))!;
    // VINS[1] (withdrawn unseen) and VINS[2] (entered while paused) get one; VINS[0] saw it
    expect(resumed.counts).toMatchObject({ targeted: 4, pending: 2, shown: 1, withdrawn: 1 });
    const cancelled = (await t.service.command(c.id, 'cancel', () => {}))!;
    expect(cancelled).toMatchObject({ status: 'cancelled', counts: { pending: 0, withdrawn: 3 } });
    expect(await t.service.command(c.id, 'resume', () => {})).toBeUndefined();
    expect(await t.segmentsChange(VINS[1], { ...dormant, stage: 'upgrade_window' })).toEqual([]);
    const types = (await t.campaignEvents()).map((e) => e.type);
    expect(types.filter((x) => x === 'com.odopulse.campaign.withdrawn')).toHaveLength(3);
    expect(types).toContain('com.odopulse.campaign.shown');
  });

  it('the frequency cap allows a repeat once the message is over and the window has room, on the sweep', async () => {
    const t = await setup();
    await t.segmentsChange(VINS[0], dormant);
    const c = await t.service.create(t.input({ frequencyCap: { perVehicle: 1, perDays: 3 } }), 'crm', () => {});
    const [d] = await t.stores.campaigns.deliveries(c.id);
    expect(await t.service.sweep()).toEqual([]); // still live
    await t.record(async () => [(await t.stores.prompts.recordHmiAck(d.promptId, d.vin, 'DISMISSED', NOON + 1))!]);
    t.setNow(NOON + 3 * DAY - 1);
    expect(await t.service.sweep()).toEqual([]);
    t.setNow(NOON + 3 * DAY);
    const [again] = await t.service.sweep();
    expect(again.prompt.dedupKey).toBe(`${VINS[0]}:campaign.message:${c.id}:2`);
  });
});

describe('campaign messages in HMI timing', () => {
  const at = (hhmm: string) => Date.parse(`2026-03-02T${hhmm}:00Z`);
  const setupOne = async (o: { quietHoursRespected?: boolean; cap?: number } = {}) => {
    const t = await setup({ cap: o.cap });
    await t.segmentsChange(VINS[0], dormant);
    await t.service.create(t.input({ quietHoursRespected: o.quietHoursRespected ?? true }), 'crm', () => {});
    return t;
  };
  const profileOf = (t: Awaited<ReturnType<typeof setup>>) => t.stores.vehicles.get(VINS[0]);

  it('only when parked', async () => {
    const t = await setupOne();
    t.drive();
    expect(await t.hmi.selectable(VINS[0], await profileOf(t))).toEqual([]);
    t.park();
    expect((await t.hmi.selectable(VINS[0], await profileOf(t))).map((p) => p.kind)).toEqual(['campaign.message']);
  });

  it('outside quiet hours (default 22:00–07:00), at their edges', async () => {
    const t = await setupOne();
    for (const [hhmm, ok] of [
      ['21:59', true],
      ['22:00', false],
      ['06:59', false],
      ['07:00', true],
    ] as const) {
      t.setNow(at(hhmm));
      expect((await t.hmi.selectable(VINS[0], await profileOf(t))).length, hhmm).toBe(ok ? 1 : 0);
    }
  });

  it('a campaign that does not respect quiet hours may go in them (still parked only)', async () => {
    const t = await setupOne({ quietHoursRespected: false });
    t.setNow(at('23:00'));
    expect(await t.hmi.selectable(VINS[0], await profileOf(t))).toHaveLength(1);
    t.drive();
    expect(await t.hmi.selectable(VINS[0], await profileOf(t))).toHaveLength(0);
  });

  it('ranks below service prompts and shares their daily cap', async () => {
    const t = await setupOne({ cap: 1 });
    await t.stores.prompts.applyRuleEvents(
      VINS[0],
      [
        {
          type: 'open',
          prompt: {
            kind: 'charging.habit',
            dedupKey: 'h',
            severity: 'info',
            audience: ['hmi'],
            urgent: false,
            ts: NOON,
            evidence: {},
            params: {},
            value: 20,
          },
        },
      ],
      () => ({ title: 'Habit', body: 'b', locale: 'en' }),
      'D1',
      NOON + 1,
    );
    expect((await t.hmi.selectable(VINS[0], await profileOf(t))).map((p) => p.kind)).toEqual(['charging.habit']);
    await t.hmi.deliver([VINS[0]]);
    expect(t.sent.map((s) => s.kind)).toEqual(['charging.habit']);
    expect(await t.hmi.selectable(VINS[0], await profileOf(t))).toEqual([]); // the cap is used up for today
    t.setNow(at('12:00') + DAY);
    await t.hmi.deliver([VINS[0]]);
    expect(t.sent.map((s) => s.kind)).toEqual(['charging.habit', 'campaign.message']);
    expect(t.sent[1]).toMatchObject({ title: 'We miss you', actions: [{ id: 'book_service', label: 'Book' }, { id: 'dismiss' }] });
  });

  it('never after endsAt', async () => {
    const t = await setupOne();
    t.setNow(NOON + 10 * DAY - 1);
    expect(await t.hmi.selectable(VINS[0], await profileOf(t))).toHaveLength(1);
    t.setNow(NOON + 10 * DAY);
    expect(await t.hmi.selectable(VINS[0], await profileOf(t))).toHaveLength(0);
  });
});
