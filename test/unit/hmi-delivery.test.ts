// HMI timing with the fleet clock: driving -> held -> parked -> delivered; quiet hours; urgent bypass;
// daily cap, highest value first; offline vehicles wait; withdrawn prompts are never sent; a prompt
// is delivered only when the car confirms it, and re-sent on birth/subscribe until then.
import { describe, expect, it } from 'vitest';
import { decodeHmiPrompt } from '../../proto/codec.js';
import type { Signals } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';
import { HmiDelivery } from '../../ingest/prompts/hmi.js';
import type { BrokerLink } from '../../ingest/inbound/topics.js';
import type { PromptChange } from '../../ingest/store/ports.js';
import { createMemoryStores } from '../../ingest/stores.js';
import type { PromptDraft, PromptKind, RuleEvent } from '../../rules/types.js';
import { renderPrompt } from '../../rules/i18n/index.js';

const VIN = 'LSVAU2180N2183294';
const NOON_UTC = Date.parse('2026-03-02T12:00:00Z');

async function setup(opts: { quiet?: { start: string; end: string }; cap?: number } = {}) {
  const stores = createMemoryStores();
  await stores.vehicles.upsert(
    VIN,
    {
      model: 'M',
      powertrain: 'BEV',
      deliveryDate: '2026-01-01',
      dealerId: 'd1',
      locale: 'en',
      vehicleType: 'passenger',
      timeZone: 'UTC',
      ...(opts.quiet ? { quietHours: opts.quiet } : {}),
    },
    NOON_UTC,
  );
  await stores.vehicles.setOnline(VIN, true, { at: NOON_UTC });
  let now = NOON_UTC;
  let latest: Signals = { [VSS.lowVoltageSystemState]: 'ON', [VSS.speed]: 50 };
  const sent: ReturnType<typeof decodeHmiPrompt>[] = [];
  const changes: PromptChange[] = [];
  let brokerDown = false;
  const link: BrokerLink = {
    kind: 'embedded',
    confirmsDelivery: true,
    publish: async (topic, payload) => {
      if (brokerDown) throw new Error('broker gone');
      expect(topic).toBe(`v1/vehicles/${VIN}/prompts`);
      sent.push(decodeHmiPrompt(payload));
    },
    ready: () => true,
    connectedClients: () => 1,
    close: async () => {},
  };
  const hmi = new HmiDelivery({
    stores,
    link,
    prefix: 'v1',
    clock: { now: () => now },
    dailyCap: opts.cap ?? 3,
    latest: () => latest,
    onChanges: (c) => changes.push(...c),
  });
  const open = async (kind: PromptKind, key: string, extra: Partial<PromptDraft> = {}) => {
    const ev: RuleEvent = {
      type: 'open',
      prompt: {
        kind,
        dedupKey: key,
        severity: 'warning',
        audience: ['hmi'],
        urgent: false,
        ts: now,
        evidence: {},
        params: {},
        value: 10,
        ...extra,
      },
    };
    // the rules' own texts and actions (rules/i18n), as the rules runner renders them
    await stores.prompts.applyRuleEvents(VIN, [ev], (d) => ({ ...renderPrompt(d, 'en'), title: kind, locale: 'en' }), 'd1', now);
  };
  return {
    stores,
    hmi,
    sent,
    changes,
    open,
    setNow: (t: number) => (now = t),
    park: () => (latest = { [VSS.lowVoltageSystemState]: 'OFF', [VSS.speed]: 0 }),
    drive: () => (latest = { [VSS.lowVoltageSystemState]: 'ON', [VSS.speed]: 50 }),
    setBrokerDown: (down: boolean) => (brokerDown = down),
  };
}

describe('HMI delivery', () => {
  it('holds a non-urgent prompt while driving and delivers it once parked, once', async () => {
    const t = await setup();
    await t.open('maintenance.upcoming', 'k1');
    await t.hmi.deliver([VIN]);
    expect(t.sent).toHaveLength(0);
    t.park();
    await t.hmi.deliver([VIN]);
    await t.hmi.deliver([VIN]);
    expect(t.sent.map((p) => p.kind)).toEqual(['maintenance.upcoming']);
    expect(t.sent[0].actions.map((a) => a.id)).toContain('book_service');
  });

  it('a vehicle whose delivery failed holds its prompt back, so its next telemetry tries again', async () => {
    const t = await setup();
    await t.open('charging.critical_soc', 'k-fail', { urgent: true, severity: 'critical' });
    t.setBrokerDown(true);
    await expect(t.hmi.deliver([VIN])).rejects.toThrow('broker gone');
    expect(t.hmi.holdsBack(VIN)).toBe(true);
    t.setBrokerDown(false);
    await t.hmi.deliver([VIN]);
    expect(t.sent.map((p) => p.kind)).toEqual(['charging.critical_soc']);
    expect(t.hmi.holdsBack(VIN)).toBe(false);
  });

  it("sends the prompt's own actions as the rules rendered them: critical SOC offers roadside assistance", async () => {
    const t = await setup();
    await t.open('charging.critical_soc', 'k-crit', { urgent: true, severity: 'critical', params: { soc: 4, rangeKm: 12 } });
    await t.hmi.deliver([VIN]); // urgent: while driving too
    expect(t.sent.map((p) => p.actions.map((a) => a.id))).toEqual([['find_charger', 'roadside', 'dismiss']]);
    expect(t.sent[0].actions[1].label).toBe('Roadside assistance');
  });

  it('urgent prompts go at once, while driving and in quiet hours', async () => {
    const t = await setup({ quiet: { start: '11:00', end: '13:00' } });
    await t.open('charging.critical_soc', 'k2', { urgent: true, severity: 'critical', value: 100 });
    await t.open('charging.low_soc', 'k3');
    await t.hmi.deliver([VIN]);
    expect(t.sent.map((p) => p.kind)).toEqual(['charging.critical_soc']);
    t.park();
    await t.hmi.deliver([VIN]);
    expect(t.sent).toHaveLength(1); // parked, but in quiet hours
    t.setNow(Date.parse('2026-03-02T13:00:00Z'));
    await t.hmi.deliver([VIN]);
    expect(t.sent.map((p) => p.kind)).toEqual(['charging.critical_soc', 'charging.low_soc']);
  });

  it('default quiet hours are 22:00-07:00 in the vehicle time zone', async () => {
    const t = await setup();
    t.park();
    t.setNow(Date.parse('2026-03-02T23:30:00Z'));
    await t.open('maintenance.due', 'k4');
    await t.hmi.deliver([VIN]);
    expect(t.sent).toHaveLength(0);
    t.setNow(Date.parse('2026-03-03T07:00:00Z'));
    await t.hmi.deliver([VIN]);
    expect(t.sent).toHaveLength(1);
  });

  it('caps non-urgent prompts per local day, highest value first, and resumes the next day', async () => {
    const t = await setup({ cap: 2 });
    t.park();
    await t.open('usage.dormant_vehicle', 'low', { value: 1 });
    await t.open('maintenance.overdue', 'high', { value: 90 });
    await t.open('battery.low_voltage_12v', 'mid', { value: 50 });
    await t.hmi.deliver([VIN]);
    expect(t.sent.map((p) => p.kind)).toEqual(['maintenance.overdue', 'battery.low_voltage_12v']);
    await t.hmi.deliver([VIN]);
    expect(t.sent).toHaveLength(2);
    t.setNow(Date.parse('2026-03-03T12:00:00Z'));
    await t.hmi.deliver([VIN]);
    expect(t.sent.map((p) => p.kind)).toEqual(['maintenance.overdue', 'battery.low_voltage_12v', 'usage.dormant_vehicle']);
  });

  it('an offline vehicle gets nothing until it is back; a prompt withdrawn meanwhile is never sent', async () => {
    const t = await setup();
    t.park();
    await t.stores.vehicles.setOnline(VIN, false, { at: NOON_UTC });
    await t.open('maintenance.upcoming', 'k5');
    await t.open('charging.low_soc', 'k6');
    await t.hmi.deliver([VIN]);
    expect(t.sent).toHaveLength(0);
    await t.stores.prompts.applyRuleEvents(
      VIN,
      [{ type: 'resolve', dedupKey: 'k6', ts: NOON_UTC, reason: 'charging' }],
      () => ({ title: '', body: '', locale: 'en' }),
      'd1',
      NOON_UTC,
    );
    await t.stores.vehicles.setOnline(VIN, true, { at: NOON_UTC });
    await t.hmi.deliver([VIN]);
    expect(t.sent.map((p) => p.kind)).toEqual(['maintenance.upcoming']);
  });

  it('never sends an expired prompt', async () => {
    const t = await setup();
    t.park();
    await t.open('charging.habit', 'k7', { expiresAt: NOON_UTC + 1000 });
    t.setNow(NOON_UTC + 2000);
    await t.hmi.deliver([VIN]);
    expect(t.sent).toHaveLength(0);
  });

  it('concurrent triggers for one vehicle send each prompt once', async () => {
    const t = await setup();
    t.park();
    for (let i = 0; i < 3; i++) await t.open('maintenance.upcoming', `c${i}`, { value: i });
    await Promise.all([t.hmi.deliver([VIN]), t.hmi.deliver([VIN]), t.hmi.deliver([VIN, VIN])]);
    expect(new Set(t.sent.map((p) => p.promptId)).size).toBe(t.sent.length);
    expect(t.sent).toHaveLength(3);
  });

  describe('confirmed delivery', () => {
    const deliveredSteps = (t: Awaited<ReturnType<typeof setup>>) => t.changes.filter((c) => c.step === 'delivered');

    it('published but not confirmed: still pending for delivery, no delivered step, not re-sent by an ordinary trigger', async () => {
      const t = await setup();
      await t.open('charging.critical_soc', 'u1', { urgent: true, severity: 'critical' });
      await t.hmi.deliver([VIN]);
      expect(t.sent).toHaveLength(1);
      const p = (await t.stores.prompts.get(t.sent[0].promptId))!;
      expect(p).toMatchObject({ status: 'open', hmiState: 'sent' });
      expect(deliveredSteps(t)).toHaveLength(0);
      expect((await t.stores.prompts.pendingHmi(VIN, NOON_UTC, true)).map((x) => x.id)).toEqual([p.id]);
      await t.hmi.deliver([VIN]); // a telemetry step, a sweep
      expect(t.sent).toHaveLength(1);
    });

    it('re-sent on the next birth / subscribe until confirmed; delivered on the PUBACK, one delivered step only', async () => {
      const t = await setup();
      await t.open('charging.critical_soc', 'u2', { urgent: true, severity: 'critical' });
      await t.hmi.deliver([VIN]);
      await t.hmi.deliver([VIN], { resend: true });
      await t.hmi.deliver([VIN], { resend: true });
      expect(t.sent.map((x) => x.promptId)).toEqual([t.sent[0].promptId, t.sent[0].promptId, t.sent[0].promptId]);
      const id = t.sent[0].promptId;
      await t.hmi.confirmed(VIN, id);
      await t.hmi.confirmed(VIN, id); // a PUBACK of a re-send
      expect(deliveredSteps(t).map((c) => c.promptId)).toEqual([id]);
      expect(await t.stores.prompts.get(id)).toMatchObject({ status: 'delivered', hmiState: 'delivered' });
      await t.hmi.deliver([VIN], { resend: true });
      expect(t.sent).toHaveLength(3); // confirmed: never sent again
    });

    it('a confirmation from another vehicle changes nothing', async () => {
      const t = await setup();
      await t.open('charging.critical_soc', 'u3', { urgent: true, severity: 'critical' });
      await t.hmi.deliver([VIN]);
      await t.hmi.confirmed('LSVAU2180N2183295', t.sent[0].promptId);
      expect(deliveredSteps(t)).toHaveLength(0);
      expect((await t.stores.prompts.get(t.sent[0].promptId))?.hmiState).toBe('sent');
    });

    it('a PUBACK before the publish is recorded as sent (loopback) still leaves it delivered', async () => {
      const t = await setup();
      await t.open('charging.critical_soc', 'u4', { urgent: true, severity: 'critical' });
      const [p] = await t.stores.prompts.pendingHmi(VIN, NOON_UTC);
      await t.hmi.confirmed(VIN, p.id);
      expect(await t.stores.prompts.markHmiSent(p.id, NOON_UTC)).toBeUndefined();
      expect((await t.stores.prompts.get(p.id))?.hmiState).toBe('delivered');
      expect(deliveredSteps(t)).toHaveLength(1);
    });

    it('re-sends of unconfirmed prompts are not counted twice against the daily cap', async () => {
      const t = await setup({ cap: 2 });
      t.park();
      await t.open('maintenance.overdue', 'c1', { value: 90 });
      await t.open('battery.low_voltage_12v', 'c2', { value: 50 });
      await t.open('usage.dormant_vehicle', 'c3', { value: 1 });
      await t.hmi.deliver([VIN]);
      expect(t.sent.map((p) => p.kind)).toEqual(['maintenance.overdue', 'battery.low_voltage_12v']);
      // two births: both unconfirmed ones again, and the cap still has no room for the third
      await t.hmi.deliver([VIN], { resend: true });
      await t.hmi.deliver([VIN], { resend: true });
      expect(t.sent.map((p) => p.kind)).toEqual([
        'maintenance.overdue',
        'battery.low_voltage_12v',
        'maintenance.overdue',
        'battery.low_voltage_12v',
        'maintenance.overdue',
        'battery.low_voltage_12v',
      ]);
      for (const p of t.sent.slice(0, 2)) await t.hmi.confirmed(VIN, p.promptId);
      await t.hmi.deliver([VIN], { resend: true });
      expect(t.sent).toHaveLength(6); // confirmed, and the cap of 2 is used by them (not by 6 sends)
      t.setNow(Date.parse('2026-03-03T12:00:00Z'));
      await t.hmi.deliver([VIN]);
      expect(t.sent.at(-1)?.kind).toBe('usage.dormant_vehicle');
      expect(deliveredSteps(t).map((c) => c.prompt.kind)).toEqual(['maintenance.overdue', 'battery.low_voltage_12v']);
    });

    it('a re-send still waits for parked: an unconfirmed non-urgent prompt is not re-sent while driving', async () => {
      const t = await setup();
      t.park();
      await t.open('maintenance.upcoming', 'r1');
      await t.hmi.deliver([VIN]);
      t.drive();
      await t.hmi.deliver([VIN], { resend: true });
      expect(t.sent).toHaveLength(1);
      t.park();
      await t.hmi.deliver([VIN], { resend: true });
      expect(t.sent).toHaveLength(2);
    });

    it('a withdrawn unconfirmed prompt is never re-sent', async () => {
      const t = await setup();
      t.park();
      await t.open('charging.low_soc', 'w1');
      await t.hmi.deliver([VIN]);
      await t.stores.prompts.applyRuleEvents(
        VIN,
        [{ type: 'resolve', dedupKey: 'w1', ts: NOON_UTC, reason: 'charging' }],
        () => ({ title: '', body: '', locale: 'en' }),
        'd1',
        NOON_UTC,
      );
      await t.hmi.deliver([VIN], { resend: true });
      expect(t.sent).toHaveLength(1);
      expect((await t.stores.prompts.get(t.sent[0].promptId))?.hmiState).toBe('withdrawn');
    });
  });
});
