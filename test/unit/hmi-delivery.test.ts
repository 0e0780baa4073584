// HMI timing with the fleet clock: driving -> held -> parked -> delivered; quiet hours; urgent bypass;
// daily cap, highest value first; offline vehicles wait; withdrawn prompts are never sent.
import { describe, expect, it } from 'vitest';
import { decodeHmiPrompt } from '../../proto/codec.js';
import type { Signals } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';
import { HmiDelivery } from '../../ingest/prompts/hmi.js';
import type { BrokerLink } from '../../ingest/inbound/topics.js';
import { createMemoryStores } from '../../ingest/stores.js';
import type { PromptDraft, PromptKind, RuleEvent } from '../../rules/types.js';

const VIN = 'LSVAU2180N2183294';
const NOON_UTC = Date.parse('2026-03-02T12:00:00Z');

function setup(opts: { quiet?: { start: string; end: string }; cap?: number } = {}) {
  const stores = createMemoryStores();
  stores.vehicles.upsert(
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
  stores.vehicles.setOnline(VIN, true, { at: NOON_UTC });
  let now = NOON_UTC;
  let latest: Signals = { [VSS.lowVoltageSystemState]: 'ON', [VSS.speed]: 50 };
  const sent: ReturnType<typeof decodeHmiPrompt>[] = [];
  const link: BrokerLink = {
    kind: 'embedded',
    publish: async (topic, payload) => {
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
    onChanges: () => {},
  });
  const open = (kind: PromptKind, key: string, extra: Partial<PromptDraft> = {}) => {
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
    stores.prompts.applyRuleEvents(VIN, [ev], () => ({ title: kind, body: 'b', locale: 'en' }), 'd1', now);
  };
  return {
    stores,
    hmi,
    sent,
    open,
    setNow: (t: number) => (now = t),
    park: () => (latest = { [VSS.lowVoltageSystemState]: 'OFF', [VSS.speed]: 0 }),
    drive: () => (latest = { [VSS.lowVoltageSystemState]: 'ON', [VSS.speed]: 50 }),
  };
}

describe('HMI delivery', () => {
  it('holds a non-urgent prompt while driving and delivers it once parked, once', async () => {
    const t = setup();
    t.open('maintenance.upcoming', 'k1');
    await t.hmi.deliver([VIN]);
    expect(t.sent).toHaveLength(0);
    t.park();
    await t.hmi.deliver([VIN]);
    await t.hmi.deliver([VIN]);
    expect(t.sent.map((p) => p.kind)).toEqual(['maintenance.upcoming']);
    expect(t.sent[0].actions.map((a) => a.id)).toContain('book_service');
  });

  it('urgent prompts go at once, while driving and in quiet hours', async () => {
    const t = setup({ quiet: { start: '11:00', end: '13:00' } });
    t.open('charging.critical_soc', 'k2', { urgent: true, severity: 'critical', value: 100 });
    t.open('charging.low_soc', 'k3');
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
    const t = setup();
    t.park();
    t.setNow(Date.parse('2026-03-02T23:30:00Z'));
    t.open('maintenance.due', 'k4');
    await t.hmi.deliver([VIN]);
    expect(t.sent).toHaveLength(0);
    t.setNow(Date.parse('2026-03-03T07:00:00Z'));
    await t.hmi.deliver([VIN]);
    expect(t.sent).toHaveLength(1);
  });

  it('caps non-urgent prompts per local day, highest value first, and resumes the next day', async () => {
    const t = setup({ cap: 2 });
    t.park();
    t.open('usage.dormant_vehicle', 'low', { value: 1 });
    t.open('maintenance.overdue', 'high', { value: 90 });
    t.open('battery.low_voltage_12v', 'mid', { value: 50 });
    await t.hmi.deliver([VIN]);
    expect(t.sent.map((p) => p.kind)).toEqual(['maintenance.overdue', 'battery.low_voltage_12v']);
    await t.hmi.deliver([VIN]);
    expect(t.sent).toHaveLength(2);
    t.setNow(Date.parse('2026-03-03T12:00:00Z'));
    await t.hmi.deliver([VIN]);
    expect(t.sent.map((p) => p.kind)).toEqual(['maintenance.overdue', 'battery.low_voltage_12v', 'usage.dormant_vehicle']);
  });

  it('an offline vehicle gets nothing until it is back; a prompt withdrawn meanwhile is never sent', async () => {
    const t = setup();
    t.park();
    t.stores.vehicles.setOnline(VIN, false, { at: NOON_UTC });
    t.open('maintenance.upcoming', 'k5');
    t.open('charging.low_soc', 'k6');
    await t.hmi.deliver([VIN]);
    expect(t.sent).toHaveLength(0);
    t.stores.prompts.applyRuleEvents(
      VIN,
      [{ type: 'resolve', dedupKey: 'k6', ts: NOON_UTC, reason: 'charging' }],
      () => ({ title: '', body: '', locale: 'en' }),
      'd1',
      NOON_UTC,
    );
    t.stores.vehicles.setOnline(VIN, true, { at: NOON_UTC });
    await t.hmi.deliver([VIN]);
    expect(t.sent.map((p) => p.kind)).toEqual(['maintenance.upcoming']);
  });

  it('never sends an expired prompt', async () => {
    const t = setup();
    t.park();
    t.open('charging.habit', 'k7', { expiresAt: NOON_UTC + 1000 });
    t.setNow(NOON_UTC + 2000);
    await t.hmi.deliver([VIN]);
    expect(t.sent).toHaveLength(0);
  });

  it('concurrent triggers for one vehicle send each prompt once', async () => {
    const t = setup();
    t.park();
    for (let i = 0; i < 3; i++) t.open('maintenance.upcoming', `c${i}`, { value: i });
    await Promise.all([t.hmi.deliver([VIN]), t.hmi.deliver([VIN]), t.hmi.deliver([VIN, VIN])]);
    expect(new Set(t.sent.map((p) => p.promptId)).size).toBe(t.sent.length);
    expect(t.sent).toHaveLength(3);
  });
});
