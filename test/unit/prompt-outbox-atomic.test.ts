// A prompt change and its CloudEvent are all-or-nothing on every path outside the rules commit
// (docs/architecture.md#guarantees): HMI sent, HMI ack, advisor acknowledge and resolve, expiry.
// Wired as ingest/main.ts wires them, over the in-memory stores, with an outbox whose enqueue can
// be made to throw: then the change must not stay, no change row, no event, nothing published.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeHmiPrompt, encodePromptAck } from '../../proto/codec.js';
import { VSS } from '../../proto/signals.js';
import { createClock } from '../../ingest/clock.js';
import { createInboundHandlers } from '../../ingest/inbound/handlers.js';
import type { BrokerLink } from '../../ingest/inbound/topics.js';
import { DecodedCache } from '../../ingest/journal/decoded-cache.js';
import { Journal } from '../../ingest/journal/journal.js';
import { createMetrics } from '../../ingest/metrics.js';
import { eventsForChanges } from '../../ingest/outbound/cloudevents.js';
import { PromptFanout } from '../../ingest/prompts/fanout.js';
import { HmiDelivery } from '../../ingest/prompts/hmi.js';
import { ChangeRecorder, recordingStores, transactionalPrompts } from '../../ingest/prompts/recorder.js';
import type { PromptChange, Stores } from '../../ingest/store/ports.js';
import { createMemoryStores } from '../../ingest/stores.js';
import { makeHarness, type Harness } from './http/harness.js';
import { HOUR, T0, VIN_A, open, render } from '../ports/fixtures.js';

const URL = 'http://lifecycle.invalid/hook';
const PROFILE = {
  model: 'M',
  powertrain: 'BEV',
  deliveryDate: '2026-01-01',
  dealerId: 'D1',
  locale: 'en',
  vehicleType: 'passenger',
  timeZone: 'UTC',
} as const;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'odopulse-atomic-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** The wiring of ingest/main.ts around prompt changes, on given stores; `fail.enqueue` makes the outbox throw. */
function wire(stores: Stores, now: () => number) {
  const fail = { enqueue: false };
  const recorder = new ChangeRecorder({
    transaction: (fn) => stores.transaction(fn),
    outbox: {
      enqueue: async (events, at) => {
        if (fail.enqueue) throw new Error('disk I/O error');
        await stores.outbox.enqueue(events, at);
      },
    },
    eventsFor: (c) => eventsForChanges(c, { urls: [URL] }),
    clock: { now },
  });
  const recording = recordingStores(stores, recorder);
  const sent: string[] = [];
  const link: BrokerLink = {
    kind: 'embedded',
    confirmsDelivery: true,
    publish: async (_topic, payload) => void sent.push(decodeHmiPrompt(payload).promptId),
    ready: () => true,
    connectedClients: () => 1,
    close: async () => {},
  };
  const late: { fanout?: PromptFanout } = {};
  const hmi = new HmiDelivery({
    stores: recording,
    link,
    prefix: 'v1',
    clock: { now },
    dailyCap: 3,
    latest: () => ({ [VSS.lowVoltageSystemState]: 'OFF', [VSS.speed]: 0 }),
    onChanges: (c) => late.fanout?.published(c, false),
  });
  const warnings: string[] = [];
  let kicks = 0;
  const fanout = new PromptFanout({
    recorder,
    hmi,
    dispatcher: { kick: () => void kicks++ },
    log: { warn: (_o, m) => void warnings.push(m ?? '') },
  });
  late.fanout = fanout;
  const bus: PromptChange[] = [];
  fanout.subscribe((c) => bus.push(c));
  const journal = new Journal(dir);
  const handlers = createInboundHandlers({
    journal,
    decoded: new DecodedCache(),
    stores: recording,
    metrics: createMetrics(),
    clock: createClock('wall', now),
    onJournalled: () => {},
    onOnline: () => {},
    onAcks: (c) => fanout.published(c, false),
  });
  return { fail, recorder, fanout, hmi, handlers, journal, sent, bus, warnings, kicks: () => kicks };
}

/** Everything a change leaves behind: the prompt, its change rows and its outbox rows. */
async function footprint(stores: Stores, promptId: string) {
  return {
    prompt: await stores.prompts.get(promptId),
    changes: (await stores.prompts.changesSince(0, undefined, 1000)).filter((c) => c.promptId === promptId).map((c) => c.step),
    events: (await stores.outbox.list({ state: 'pending', limit: 1000 })).items
      .filter((e) => e.id.startsWith(promptId))
      .map((e) => (JSON.parse(e.body) as { type: string }).type),
  };
}

describe('prompt changes outside the rules commit: change and outbox rows all-or-nothing', () => {
  let stores: Stores;
  let now: number;
  let w: ReturnType<typeof wire>;
  let promptId: string;
  beforeEach(async () => {
    stores = createMemoryStores();
    now = T0;
    await stores.vehicles.upsert(VIN_A, PROFILE, T0);
    await stores.vehicles.setOnline(VIN_A, true, { at: T0 });
    w = wire(stores, () => now);
    // opened by the rules (their own commit writes its event: here by hand, as the runner does)
    const [created] = await stores.prompts.applyRuleEvents(VIN_A, [open({ urgent: true, audience: ['hmi', 'advisor'] })], render, 'D1', T0);
    await stores.outbox.enqueue(eventsForChanges([created], [URL]), T0);
    promptId = created.promptId;
    now = T0 + 1000;
  });
  afterEach(async () => {
    await w.handlers.drained();
    w.journal.close();
    await stores.close();
  });

  it('HMI delivered (the car PUBACKed): a failing outbox records nothing and the prompt stays sent; recorded once it works', async () => {
    await w.hmi.deliver([VIN_A]); // published: no change step yet, so no event
    expect(w.sent).toEqual([promptId]);
    const before = await footprint(stores, promptId);
    expect(before.prompt).toMatchObject({ hmiState: 'sent', status: 'open' });
    w.fail.enqueue = true;
    await w.hmi.confirmed(VIN_A, promptId); // from the broker's PUBACK event: must not throw
    expect(await footprint(stores, promptId)).toEqual(before);
    expect(w.bus).toEqual([]);

    w.fail.enqueue = false;
    await w.hmi.confirmed(VIN_A, promptId);
    expect(await footprint(stores, promptId)).toEqual({
      prompt: expect.objectContaining({ hmiState: 'delivered', status: 'delivered' }),
      changes: ['created', 'delivered'],
      events: ['com.odopulse.prompt.created', 'com.odopulse.prompt.delivered'],
    });
    expect(w.bus.map((c) => c.step)).toEqual(['delivered']);
    expect(w.kicks()).toBe(1);
  });

  it('HMI ack: a failing outbox leaves the prompt as it was (the ack is dead-lettered with the reason), recorded once it works', async () => {
    await w.hmi.deliver([VIN_A]);
    await w.hmi.confirmed(VIN_A, promptId);
    const before = await footprint(stores, promptId);
    const ack = Buffer.from(encodePromptAck({ promptId, outcome: 'ACTED', ts: now }));
    w.fail.enqueue = true;
    await w.handlers.ack(VIN_A, ack, 'client');
    expect(await footprint(stores, promptId)).toEqual(before);
    expect((await stores.prompts.get(promptId))?.hmiState).toBe('delivered');
    expect((await stores.deadLetters.list(10)).map((d) => d.reason)).toEqual(['disk I/O error']);
    expect(w.bus.map((c) => c.step)).toEqual(['delivered']);

    w.fail.enqueue = false;
    await w.handlers.ack(VIN_A, ack, 'client');
    expect(await footprint(stores, promptId)).toMatchObject({
      prompt: expect.objectContaining({ hmiState: 'acted', outcome: 'acted' }),
      changes: ['created', 'delivered', 'acted'],
      events: ['com.odopulse.prompt.created', 'com.odopulse.prompt.delivered', 'com.odopulse.prompt.acted'],
    });
    expect(w.bus.map((c) => c.step)).toEqual(['delivered', 'acted']);
  });

  it('expiry (the sweep): a failing outbox expires nothing; then the prompt expires with its event', async () => {
    const [soon] = await stores.prompts.applyRuleEvents(VIN_A, [open({ dedupKey: 'soon', expiresAt: T0 + HOUR })], render, 'D1', T0);
    now = T0 + 2 * HOUR;
    const before = await footprint(stores, soon.promptId);
    w.fail.enqueue = true;
    await expect(w.fanout.record(() => stores.prompts.expire(now))).rejects.toThrow('disk I/O error');
    expect(await footprint(stores, soon.promptId)).toEqual(before);
    expect((await stores.prompts.get(soon.promptId))?.status).toBe('open');
    expect(w.bus).toEqual([]);

    w.fail.enqueue = false;
    expect((await w.fanout.record(() => stores.prompts.expire(now))).map((c) => c.step)).toEqual(['expired']);
    expect(await footprint(stores, soon.promptId)).toMatchObject({
      prompt: expect.objectContaining({ status: 'expired' }),
      changes: ['created', 'expired'],
      events: ['com.odopulse.prompt.expired'],
    });
    expect(w.bus.map((c) => c.promptId)).toEqual([soon.promptId]);
  });

  it('transactionalPrompts: every changing call writes its events, reads pass through, a throwing change leaves nothing', async () => {
    const tx = transactionalPrompts(stores.prompts, w.recorder);
    const [made] = await tx.applyRuleEvents(VIN_A, [open({ dedupKey: 'other' })], render, 'D1', now);
    const c = await tx.acknowledge(made.promptId, 'Ann', undefined, now);
    expect(c?.step).toBe('acknowledged');
    expect(await tx.acknowledge(made.promptId, 'Ann', undefined, now)).toBeUndefined(); // no change, no event
    expect((await footprint(stores, made.promptId)).events).toEqual(['com.odopulse.prompt.created', 'com.odopulse.prompt.acknowledged']);
    expect((await tx.get(made.promptId))?.status).toBe('acknowledged');
    expect((await tx.list({ limit: 10 })).items).toHaveLength(2);
    expect(await tx.lastChangeSeq()).toBe(await stores.prompts.lastChangeSeq());
    w.fail.enqueue = true;
    await expect(tx.resolve(made.promptId, 'Ann', 'booked', undefined, now)).rejects.toThrow('disk I/O error');
    expect((await stores.prompts.get(made.promptId))?.status).toBe('acknowledged');
    await expect(tx.applyRuleEvents(VIN_A, [open({ dedupKey: 'third' })], render, 'D1', now)).rejects.toThrow('disk I/O error');
    expect((await stores.prompts.list({ limit: 10 })).items).toHaveLength(2);
  });
});

describe('advisor acknowledge and resolve through the API: change, audit entry and event all-or-nothing', () => {
  let h: Harness;
  let w: ReturnType<typeof wire>;
  beforeEach(async () => {
    const ref: { fanout?: PromptFanout } = {};
    h = await makeHarness({
      changes: { subscribe: (fn) => ref.fanout!.subscribe(fn), record: (fn) => ref.fanout!.record(fn) },
    });
    w = wire(h.stores, () => h.clock.now());
    ref.fanout = w.fanout;
    await h.register(VIN_A, 'D001');
  });
  afterEach(async () => {
    await w.handlers.drained();
    w.journal.close();
    await h.close();
  });

  for (const action of ['ack', 'resolve'] as const) {
    it(`${action}: a failing outbox is a 500 and leaves the prompt open, without change, audit or event; then it works`, async () => {
      const c = await h.openPrompt(VIN_A);
      const payload = action === 'ack' ? { note: 'called' } : { outcome: 'booked' };
      const before = { ...(await footprint(h.stores, c.promptId)), audit: (await h.stores.audit.query({ limit: 100 })).length };
      w.fail.enqueue = true;
      const failed = await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${c.promptId}/${action}`, payload });
      expect(failed.statusCode).toBe(500);
      expect({ ...(await footprint(h.stores, c.promptId)), audit: (await h.stores.audit.query({ limit: 100 })).length }).toEqual(before);
      expect((await h.stores.prompts.get(c.promptId))?.status).toBe('open');
      expect(w.bus).toEqual([]);

      w.fail.enqueue = false;
      const ok = await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${c.promptId}/${action}`, payload });
      expect(ok.statusCode).toBe(200);
      const step = action === 'ack' ? 'acknowledged' : 'resolved';
      expect(await footprint(h.stores, c.promptId)).toMatchObject({ changes: ['created', step], events: [`com.odopulse.prompt.${step}`] });
      expect((await h.stores.audit.query({ limit: 100 })).map((a) => a.action)).toEqual([
        action === 'ack' ? 'prompt.acknowledged' : 'prompt.resolved',
      ]);
      expect(w.bus.map((x) => x.step)).toEqual([step]);
      expect(w.kicks()).toBe(1);
    });
  }

  it('a change that cannot be made (409) writes nothing and publishes nothing', async () => {
    const c = await h.openPrompt(VIN_A);
    expect(
      (await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${c.promptId}/resolve`, payload: { outcome: 'other' } })).statusCode,
    ).toBe(200);
    const events = await h.stores.outbox.count('pending');
    const res = await h.app.inject({ method: 'POST', url: `/api/v1/prompts/${c.promptId}/ack`, payload: {} });
    expect(res.statusCode).toBe(409);
    expect(await h.stores.outbox.count('pending')).toBe(events);
    expect(w.bus.map((x) => x.step)).toEqual(['resolved']);
    expect(await h.stores.audit.query({ limit: 100 })).toHaveLength(1);
  });
});
