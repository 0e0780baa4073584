// The lifecycle system's webhook receiver down, under a fleet load whose DTCs keep making prompts:
// (1) down for several multiples of the retry ceiling (ODOPULSE_WEBHOOK_MAX_BACKOFF_MS = 2 s), with
// an ingest kill -9 while it is down, then up: every event arrives, once per id; (2) down past the
// give-up age (ODOPULSE_WEBHOOK_GIVE_UP_HOURS = 0.001, 3.6 s; the setting takes fractions): the
// events go dead, stay dead across a kill -9 and after the receiver is back, and once an operator
// retries them (POST /api/v1/outbox/{id}/retry) each arrives exactly once. The receiver verifies
// every signature and counts 2xx answers per webhook-id.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CloudEvent } from '../../ingest/outbound/cloudevents.js';
import { verifySignature } from '../../ingest/outbound/webhook.js';
import { startInfluxd, influxQuery, type InfluxdHandle } from '../support/influxd.js';
import { apiGet, apiRequest, rulesSentinel, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';
import {
  allPrompts,
  drain,
  DtcLedger,
  duplicatePrompts,
  planDtcs,
  readings,
  restartIngest,
  seededRandom,
  faultSeed,
  vins,
  waitForPlanAcked,
} from './support/cases.js';
import { sample } from './support/ledger.js';
import { FleetLoad } from './support/load.js';
import { recordFault } from './support/table.js';

const SECRET = 'fault-suite-webhook-secret';
const CEILING_MS = 2000;
const VEHICLES = 30;
const RATE = 10;

interface OutboxJson {
  id: string;
  url: string;
  state: string;
  type: string | null;
  subject: string | null;
  attempts: number;
  lastError: string | null;
  nextAttemptAt: string | null;
  firstFailedAt: string | null;
  deadAt: string | null;
}

/** A lifecycle system: down = not listening (connection refused); up = verify, count, answer 204. */
class Receiver {
  private server: http.Server | undefined;
  /** 2xx answers per webhook-id. */
  readonly accepted = new Map<string, number>();
  readonly events = new Map<string, CloudEvent<{ id?: string; vin?: string }>>();
  badSignatures = 0;
  constructor(readonly port: number) {}
  get url(): string {
    return `http://127.0.0.1:${this.port}/events`;
  }
  async up(): Promise<void> {
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        if (!verifySignature(SECRET, req.headers as Record<string, string>, body, 300)) {
          this.badSignatures++;
          res.writeHead(401).end();
          return;
        }
        const id = String(req.headers['webhook-id']);
        this.accepted.set(id, (this.accepted.get(id) ?? 0) + 1);
        this.events.set(id, JSON.parse(body) as CloudEvent<{ id?: string; vin?: string }>);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => server.listen(this.port, '127.0.0.1', () => r()));
    this.server = server;
  }
  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  /** Ids answered 2xx more than once. */
  duplicates(): string[] {
    return [...this.accepted].filter(([, n]) => n > 1).map(([id, n]) => `${id} ×${n}`);
  }
}

async function outbox(ingest: IngestProcess, state: 'pending' | 'dead' | 'delivered'): Promise<OutboxJson[]> {
  const out: OutboxJson[] = [];
  let cursor: string | null = null;
  do {
    const page: { items: OutboxJson[]; nextCursor: string | null } = await apiGet(
      ingest,
      `/api/v1/outbox?state=${state}&limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    );
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}

let influx: InfluxdHandle;
const running: IngestProcess[] = [];
const receivers: Receiver[] = [];

beforeAll(async () => {
  influx = await startInfluxd({ database: 'faulthook1' });
  await influxQuery(influx.url, 'faulthook1', 'CREATE DATABASE "faulthook2"');
});

afterAll(async () => {
  for (const p of running) await p.stop('SIGKILL');
  for (const r of receivers) await r.down();
  await influx?.stop();
});

/** ingest with the receiver as its webhook (the receiver itself not started: down). */
async function setup(db: string, env: Record<string, string>) {
  const receiver = new Receiver(await freePort());
  receivers.push(receiver);
  const ingest = await startIngestProcess({
    INFLUX_URL: influx.url,
    INFLUX_BUCKET: db,
    ODOPULSE_WEBHOOK_URL: receiver.url,
    ODOPULSE_WEBHOOK_SECRET: SECRET,
    ODOPULSE_WEBHOOK_MAX_BACKOFF_MS: String(CEILING_MS),
    ...env,
  });
  running.push(ingest);
  return { receiver, ingest };
}

async function killAndRestart(ingest: IngestProcess): Promise<IngestProcess> {
  running.splice(running.indexOf(ingest), 1);
  await ingest.stop('SIGKILL');
  const next = await restartIngest(ingest);
  running.push(next);
  return next;
}

describe('webhook receiver down', () => {
  it('longer than the retry ceiling, across an ingest kill -9: every event once per id', async () => {
    const DB = 'faulthook1';
    const VINS = vins('LHKA', VEHICLES);
    const rnd = seededRandom(faultSeed('webhook-down ceiling'));
    // prompts before, during and after the outage (10 batches/s: seq 300 is about 30 s in)
    const ledger = new DtcLedger(planDtcs(rnd, VINS.slice(0, 15), { perVehicle: 2, minSeq: 5, maxSeq: 300 }));
    const { receiver, ingest: first } = await setup(DB, {});
    let ingest = first;
    const load = new FleetLoad({ url: () => ingest.mqttUrl, vins: VINS, ledger, ratePerVehicle: RATE }).start();
    const started = Date.now();

    // down: events fail and are retried, never more than the ceiling apart
    let longestWait = 0;
    const retried = async (n: number) => {
      const pending = await outbox(ingest, 'pending');
      const at = Date.now();
      for (const e of pending) if (e.attempts > 0) longestWait = Math.max(longestWait, Date.parse(e.nextAttemptAt!) - at);
      return pending.some((e) => e.attempts >= n);
    };
    await waitFor(() => retried(5), { what: 'an event failed 5 times', timeoutMs: 60_000, intervalMs: 250 });
    // an advisor acknowledges two prompts meanwhile (more events for the queue)
    const acked = (await waitFor(
      async () => {
        const prompts = await allPrompts(ingest);
        return prompts.length >= 2 ? prompts.slice(0, 2) : undefined;
      },
      { what: 'two prompts' },
    ))!;
    for (const p of acked) expect((await apiRequest(ingest, 'POST', `/api/v1/prompts/${p.id}/ack`, { by: 'advisor' })).status).toBe(200);

    // kill -9 while the receiver is down; the queue survives and is retried on
    ingest = await killAndRestart(ingest);
    await waitFor(() => retried(9), { what: 'an event failed 9 times (after the restart)', timeoutMs: 60_000, intervalMs: 250 });
    const downMs = Date.now() - started;
    const maxAttempts = Math.max(...(await outbox(ingest, 'pending')).map((e) => e.attempts));

    await receiver.up();
    await waitForPlanAcked(ledger, load, { timeoutMs: 120_000 });
    const d = await drain(ledger, load, influx.url, DB);
    await rulesSentinel(ingest, 'LHKASENT000000001', { ts: Date.now() - 3600_000, seq: 1 });

    const pending = await waitFor(async () => ((await outbox(ingest, 'pending')).length === 0 ? [] : undefined), {
      what: 'the outbox drained',
      timeoutMs: 60_000,
      intervalMs: 250,
    }).catch(() => outbox(ingest, 'pending'));
    const delivered = await outbox(ingest, 'delivered');
    const dead = await outbox(ingest, 'dead');
    const prompts = await allPrompts(ingest);
    const dups = duplicatePrompts(prompts);
    const ofType = (type: string) => [...receiver.events.values()].filter((e) => e.type === type).map((e) => e.data.id!);
    const created = ofType('com.odopulse.prompt.created');
    const missingCreated = prompts.filter((p) => !created.includes(p.id)).map((p) => p.id);

    recordFault({
      fault: `webhook receiver down > retry ceiling (${CEILING_MS / 1000} s), kill -9 while down`,
      load: `${VEHICLES} vehicles × ${RATE} batches/s, QoS 1, 8 in flight, ${Math.round((Date.now() - started) / 1000)} s`,
      produced: readings(ledger.acked.size),
      stored: readings(d.stored.size),
      lost: readings(d.lost.length),
      promptsDuplicated: dups.count,
      notes:
        `down ${(downMs / 1000).toFixed(1)} s (${(downMs / CEILING_MS).toFixed(1)}× the ceiling), up to ${maxAttempts} attempts, ` +
        `longest wait ${longestWait} ms; ${receiver.accepted.size} events delivered (${prompts.length} prompts), ` +
        `${receiver.duplicates().length} ids twice, ${receiver.badSignatures} bad signatures; drain ${d.drainMs} ms`,
    });

    expect(d.lost, sample(d.lost)).toEqual([]);
    expect(longestWait).toBeLessThanOrEqual(CEILING_MS);
    expect(pending.map((e) => e.id)).toEqual([]);
    expect(dead.map((e) => e.id)).toEqual([]);
    expect([...receiver.accepted.keys()].sort()).toEqual(delivered.map((e) => e.id).sort());
    expect(receiver.duplicates()).toEqual([]);
    expect(receiver.badSignatures).toBe(0);
    expect(missingCreated).toEqual([]);
    expect(created).toHaveLength(prompts.length);
    expect(ofType('com.odopulse.prompt.acknowledged').sort()).toEqual(acked.map((p) => p.id).sort());
    expect(dups.keys).toEqual([]);
  });

  it('past the give-up age: dead, kept across a kill -9, sent only when an operator retries, then once each', async () => {
    const DB = 'faulthook2';
    const VINS = vins('LHKB', 20);
    const rnd = seededRandom(faultSeed('webhook-down give-up'));
    // every prompt early (10 batches/s: within ~6 s), so all their events can go dead together
    const ledger = new DtcLedger(planDtcs(rnd, VINS.slice(0, 10), { perVehicle: 2, minSeq: 5, maxSeq: 60 }));
    const { receiver, ingest: first } = await setup(DB, { ODOPULSE_WEBHOOK_GIVE_UP_HOURS: '0.001' }); // 3.6 s
    let ingest = first;
    const load = new FleetLoad({ url: () => ingest.mqttUrl, vins: VINS, ledger, ratePerVehicle: RATE }).start();
    const started = Date.now();
    const expected = ledger.expectedKeys();

    await waitForPlanAcked(ledger, load, { timeoutMs: 60_000 });
    const dead = await waitFor(
      async () => {
        const prompts = await allPrompts(ingest);
        if (!expected.every((k) => prompts.some((p) => p.dedupKey === k))) return undefined;
        const [pending, dead] = [await outbox(ingest, 'pending'), await outbox(ingest, 'dead')];
        return pending.length === 0 && dead.length === prompts.length ? dead : undefined;
      },
      { what: 'every event dead', timeoutMs: 60_000, intervalMs: 250 },
    );
    const failingMs = dead.map((e) => Date.parse(e.deadAt!) - Date.parse(e.firstFailedAt!));

    // dead events are kept across a kill -9
    ingest = await killAndRestart(ingest);
    expect((await outbox(ingest, 'dead')).map((e) => e.id).sort()).toEqual(dead.map((e) => e.id).sort());

    // the receiver is back: a new event arrives; the dead ones are not sent on their own
    await receiver.up();
    const SENTINEL = 'LHKBSENT000000001';
    await rulesSentinel(ingest, SENTINEL, { ts: Date.now() - 3600_000, seq: 1 });
    await waitFor(() => [...receiver.events.values()].some((e) => e.subject === SENTINEL), { what: 'the new event delivered' });
    const sentOnTheirOwn = dead.filter((e) => receiver.accepted.has(e.id)).map((e) => e.id);
    expect(sentOnTheirOwn).toEqual([]);
    expect(await outbox(ingest, 'dead')).toHaveLength(dead.length);

    // an operator retries each dead event
    for (const e of dead) {
      const r = await apiRequest(ingest, 'POST', `/api/v1/outbox/${e.id}/retry`);
      expect(r.status, await r.clone().text()).toBe(200);
      expect(((await r.json()) as { items: OutboxJson[] }).items.map((x) => x.state)).toEqual(['pending']);
    }
    await waitFor(() => dead.every((e) => receiver.accepted.has(e.id)), { what: 'every retried event delivered', timeoutMs: 60_000 });
    const again = await apiRequest(ingest, 'POST', `/api/v1/outbox/${dead[0].id}/retry`, { url: receiver.url });
    const d = await drain(ledger, load, influx.url, DB);
    const [pending, deadAfter] = [await outbox(ingest, 'pending'), await outbox(ingest, 'dead')];
    const prompts = await allPrompts(ingest);
    const dups = duplicatePrompts(prompts);

    recordFault({
      fault: 'webhook receiver down past the give-up age (3.6 s), operator retry',
      load: `${VINS.length} vehicles × ${RATE} batches/s, QoS 1, 8 in flight, ${Math.round((Date.now() - started) / 1000)} s`,
      produced: readings(ledger.acked.size),
      stored: readings(d.stored.size),
      lost: readings(d.lost.length),
      promptsDuplicated: dups.count,
      notes:
        `${dead.length} events dead after ${Math.min(...failingMs)}–${Math.max(...failingMs)} ms failing, kept across a kill -9, ` +
        `0 sent before the retry; after it ${dead.filter((e) => receiver.accepted.get(e.id) === 1).length}/${dead.length} delivered once, ` +
        `${receiver.duplicates().length} ids twice, ${receiver.badSignatures} bad signatures; drain ${d.drainMs} ms`,
    });

    expect(d.lost, sample(d.lost)).toEqual([]);
    for (const ms of failingMs) expect(ms).toBeGreaterThanOrEqual(3600);
    expect(again.status).toBe(409); // delivered, not dead: nothing to retry
    expect(pending.map((e) => e.id)).toEqual([]);
    expect(deadAfter.map((e) => e.id)).toEqual([]);
    expect(receiver.duplicates()).toEqual([]);
    expect(receiver.badSignatures).toBe(0);
    expect(dups.keys).toEqual([]);
    expect(
      prompts
        .filter((p) => VINS.includes(p.vin))
        .map((p) => p.dedupKey)
        .sort(),
    ).toEqual(expected);
  });
});
