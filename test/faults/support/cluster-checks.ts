// The checks of the cluster-mode fault case (test/faults/cluster.test.ts): the batches found in
// InfluxDB against the ledger, and after the load settle(), which waits for InfluxDB, the rules,
// the prompts and the outbox and reads everything back into an Outcome, which expectOutcome()
// asserts on.
import { expect } from 'vitest';
import type { PromptJson } from '../../support/api.js';
import { influxQuery } from '../../support/influxd.js';
import { apiGet, type IngestProcess } from '../../support/ingest.js';
import type { NatsCluster } from '../../support/nats.js';
import type { SseReader } from '../../support/sse.js';
import { waitFor } from '../../support/wait.js';
import { VSS } from '../../../proto/signals.js';
import { allPrompts, duplicatePrompts, type DtcLedger } from './cases.js';
import type { ClusterMember, ClusterRig, WebhookReceiver } from './cluster.js';
import { lastStreamSeqs, lateBatches, streamOrder } from './cluster-stream.js';
import { sample, SAMPLES_PER_BATCH, type Ledger } from './ledger.js';

/**
 * The batches found in InfluxDB, by `${vin}/${boot}/${seq}`, with their point count: a batch is
 * stored once when it has exactly SAMPLES_PER_BATCH points; more means a sample was written twice
 * under different tags (a write with the same series and time overwrites: InfluxDB's own dedup).
 */
export async function influxBatches(ledger: Ledger, influxUrl: string, db: string): Promise<Map<string, number>> {
  const step = ledger.sampleTs(0, 1, 0) - ledger.sampleTs(0, 0, 0);
  const perBoot = (ledger.sampleTs(1, 0, 0) - ledger.t0) / step;
  const res = await influxQuery(influxUrl, db, `SELECT "${VSS.soc}" FROM "telemetry" WHERE time >= ${ledger.t0}ms GROUP BY *`);
  const out = new Map<string, number>();
  for (const s of res.results?.[0]?.series ?? []) {
    const vin = s.tags?.vin ?? '';
    for (const [t] of s.values) {
      const slot = Math.floor((Number(t) - ledger.t0) / step);
      const boot = Math.floor(slot / perBoot);
      const k = `${vin}/${ledger.boots[boot] ?? `boot#${boot}`}/${slot % perBoot}`;
      out.set(k, (out.get(k) ?? 0) + 1);
    }
  }
  return out;
}

export interface StoredCheck {
  /** Acked batches with all their samples in InfluxDB (exactly once). */
  stored: number;
  /** Acked, not (fully) stored. */
  lost: string[];
  /** Batches with more points than samples. */
  duplicated: string[];
  /** Batches stored that no vehicle got a PUBACK for. */
  unexpected: string[];
}

export function checkStored(ledger: Ledger, found: Map<string, number>): StoredCheck {
  const lost: string[] = [];
  let stored = 0;
  for (const k of ledger.acked) {
    if ((found.get(k) ?? 0) >= SAMPLES_PER_BATCH) stored++;
    else lost.push(k);
  }
  const duplicated = [...found].filter(([, n]) => n > SAMPLES_PER_BATCH).map(([k, n]) => `${k} ×${n}/${SAMPLES_PER_BATCH}`);
  const unexpected = [...found.keys()].filter((k) => !ledger.acked.has(k));
  return { stored, lost: lost.sort(), duplicated: duplicated.sort(), unexpected: unexpected.sort() };
}

/** The newest seq each vehicle got a PUBACK for (boot 0), from the ledger's keys. */
export function newestAcked(ledger: Ledger): Map<string, number> {
  const out = new Map<string, number>();
  for (const k of ledger.acked) {
    const [vin, , seq] = k.split('/');
    out.set(vin, Math.max(out.get(vin) ?? 0, Number(seq)));
  }
  return out;
}

/** A moment of the fault, as the stream's last sequence then (late batches are counted per phase). */
export interface Mark {
  at: string;
  streamSeq: number;
}

/** allPrompts() through one member's API with the cluster's key. */
const promptsVia = (m: ClusterMember) => allPrompts({ ...m.proc, auth: m.auth } as IngestProcess);

export interface Outcome {
  stored: StoredCheck;
  prompts: PromptJson[];
  views: Map<string, string[]>;
  expected: string[];
  missing: string[];
  unexpected: string[];
  dups: { count: number; keys: string[] };
  missingCreated: string[];
  created: string[];
  webhookDups: string[];
  pending: number;
  outOfOrder: string[];
  journalBehind: string[];
  /** Batches after a newer one of their vehicle in the stream. */
  lateInStream: string[];
  /** Late batches per phase between the marks. */
  lateByPhase: string;
  stranded: string[];
  badSignatures: number;
  /** Per SSE stream read: created changes missing, seqs seen twice, seqs not after the one before. */
  sse: Map<string, { missing: string[]; twice: number[]; backwards: string[]; changes: number }>;
  drainMs: number;
  settleMs: number;
}

/** After the load: wait for InfluxDB, the rules, the prompts and the outbox, then read everything back. */
export async function settle(
  rig: ClusterRig,
  nats: NatsCluster,
  ledger: DtcLedger,
  receiver: WebhookReceiver,
  VINS: string[],
  streams: Map<string, SseReader>,
  marks: Mark[],
): Promise<Outcome> {
  const t = Date.now();
  let stored = checkStored(ledger, new Map());
  await waitFor(
    async () => {
      stored = checkStored(ledger, await influxBatches(ledger, rig.o.influxUrl, rig.o.influxDb));
      return stored.lost.length === 0;
    },
    { what: 'every acknowledged batch in InfluxDB', timeoutMs: 90_000, intervalMs: 500 },
  ).catch(() => {});
  const drainMs = Date.now() - t;

  // each vehicle's rule state at its newest sample: the rules applied everything, in order
  const newest = newestAcked(ledger);
  const tsOf = (vin: string) => ledger.sampleTs(0, newest.get(vin) ?? 0, SAMPLES_PER_BATCH - 1);
  let states = await rig.ruleStates();
  const behind = () => VINS.filter((v) => states.get(v)?.lastTs !== tsOf(v));
  await waitFor(
    async () => {
      states = await rig.ruleStates();
      return behind().length === 0;
    },
    { what: 'every rule state at its newest sample', timeoutMs: 60_000, intervalMs: 500 },
  ).catch(() => {});
  const outOfOrder = behind().map((v) => `${v} lastTs ${states.get(v)?.lastTs ?? 'none'} ≠ ${tsOf(v)}`);
  const streamSeqs = await lastStreamSeqs(nats.urls, VINS, rig.o.partitions);
  const journalBehind = VINS.filter((v) => states.get(v)?.journalId !== streamSeqs.get(v)).map(
    (v) => `${v} journalId ${states.get(v)?.journalId ?? 'none'} ≠ stream ${streamSeqs.get(v) ?? 'none'}`,
  );

  // the prompts, through every live instance's API
  const live = rig.live();
  const expected = ledger.expectedKeys();
  let prompts: PromptJson[] = [];
  await waitFor(
    async () => {
      prompts = (await promptsVia(live[0])).filter((p) => VINS.includes(p.vin));
      return expected.every((k) => prompts.some((p) => p.dedupKey === k));
    },
    { what: 'every planned DTC prompted', timeoutMs: 30_000, intervalMs: 500 },
  ).catch(() => {});
  const views = new Map<string, string[]>();
  for (const m of live)
    views.set(
      m.id,
      (await promptsVia(m))
        .filter((p) => VINS.includes(p.vin))
        .map((p) => p.id)
        .sort(),
    );
  const found = new Set(prompts.filter((p) => p.kind === 'fault.dtc').map((p) => p.dedupKey));
  // the stream's own order per vehicle: a batch behind a newer one is applied as stale (its DTCs unseen)
  const late = lateBatches(await streamOrder(nats.urls));
  const bounds = [{ at: 'start', streamSeq: 0 }, ...marks];
  const lateByPhase = bounds
    .map((m, i) => {
      const next = bounds[i + 1]?.streamSeq ?? Infinity;
      return `from ${m.at} ${late.filter((b) => b.streamSeq > m.streamSeq && b.streamSeq <= next).length}`;
    })
    .join(', ');
  const lateInStream = late.map((b) => `${b.vin} seq ${b.seq} at stream ${b.streamSeq}, after seq ${b.after.seq} at ${b.after.streamSeq}`);
  const missing = expected
    .filter((k) => !found.has(k))
    .map((k) => {
      const p = ledger.plan.find((x) => `${x.vin}:fault.dtc:${x.code}:1` === k);
      const l = p && late.find((b) => b.vin === p.vin && b.seq === p.seq);
      return `${k} (batch seq ${p?.seq}${l ? `: late in the stream, at ${l.streamSeq} after seq ${l.after.seq} at ${l.after.streamSeq}` : ''})`;
    });
  const unexpected = prompts.filter((p) => !expected.includes(p.dedupKey)).map((p) => `${p.kind} ${p.dedupKey}`);

  // the webhook: one created event per prompt, the outbox empty (an event a killed instance had
  // claimed is sent again once its claim runs out, 60 s: after that a second copy would show)
  let pending = -1;
  const createdMissing = () => {
    const created = new Set(receiver.promptIds('com.odopulse.prompt.created'));
    return prompts.filter((p) => !created.has(p.id)).map((p) => p.id);
  };
  await waitFor(
    async () => {
      const page = await apiGet<{ items: unknown[] }>(live[0], '/api/v1/outbox?state=pending&limit=500');
      pending = page.items.length;
      return pending === 0 && createdMissing().length === 0;
    },
    { what: 'every created event delivered, the outbox empty', timeoutMs: 90_000, intervalMs: 500 },
  ).catch(() => {});

  // every live SSE stream saw every prompt created, each change once, in seq order (tailing the shared change log)
  const sseMissing = (r: SseReader) => {
    const created = new Set(r.events.filter((e) => e.step === 'created').map((e) => e.prompt.id));
    return prompts.filter((p) => !created.has(p.id)).map((p) => p.id);
  };
  await waitFor(() => [...streams.values()].every((r) => sseMissing(r).length === 0), {
    what: 'every SSE stream saw every prompt created',
    timeoutMs: 15_000,
    intervalMs: 200,
  }).catch(() => {});
  const sse = new Map<string, { missing: string[]; twice: number[]; backwards: string[]; changes: number }>();
  for (const [id, r] of streams) {
    const seen = new Set<number>();
    const twice: number[] = [];
    const backwards: string[] = [];
    r.events.forEach((e, i) => {
      if (seen.has(e.seq)) twice.push(e.seq);
      seen.add(e.seq);
      if (i > 0 && !(e.seq > r.events[i - 1].seq)) backwards.push(`${r.events[i - 1].seq} then ${e.seq}`);
    });
    sse.set(id, { missing: sseMissing(r), twice, backwards, changes: r.events.length });
  }

  // every partition leased to a live instance
  const liveIds = new Set(live.map((m) => m.id));
  const stranded = (await rig.partitions()).filter((r) => !r.owner || !r.live || !liveIds.has(r.owner)).map((r) => `p${r.p} ${r.owner}`);

  return {
    stored,
    prompts,
    views,
    expected,
    missing,
    unexpected,
    dups: duplicatePrompts(prompts),
    created: receiver.promptIds('com.odopulse.prompt.created'),
    missingCreated: createdMissing(),
    webhookDups: receiver.duplicates(),
    pending,
    outOfOrder,
    journalBehind,
    lateInStream,
    lateByPhase,
    stranded,
    badSignatures: receiver.badSignatures,
    sse,
    drainMs,
    settleMs: Date.now() - t,
  };
}

/** Everything the case asserts on an Outcome. */
export function expectOutcome(o: Outcome): void {
  expect(o.stored.lost, sample(o.stored.lost)).toEqual([]);
  expect(o.stored.duplicated, sample(o.stored.duplicated)).toEqual([]);
  expect(o.stored.unexpected, sample(o.stored.unexpected)).toEqual([]);
  expect(o.missing, sample(o.missing)).toEqual([]);
  expect(o.unexpected, sample(o.unexpected)).toEqual([]);
  expect(o.dups.keys).toEqual([]);
  expect(o.prompts).toHaveLength(o.expected.length);
  const ids = o.prompts.map((p) => p.id).sort();
  for (const [id, view] of o.views) expect(view, `prompts listed by ${id}`).toEqual(ids);
  expect(o.webhookDups).toEqual([]);
  expect(o.missingCreated, sample(o.missingCreated)).toEqual([]);
  expect(o.created).toHaveLength(o.prompts.length);
  expect(o.pending).toBe(0);
  expect(o.badSignatures).toBe(0);
  expect(o.outOfOrder, sample(o.outOfOrder)).toEqual([]);
  expect(o.journalBehind, sample(o.journalBehind)).toEqual([]);
  expect(o.lateInStream, sample(o.lateInStream)).toEqual([]);
  expect(o.stranded, sample(o.stranded)).toEqual([]);
  for (const [id, x] of o.sse) {
    expect(x.missing, `${id}'s SSE stream: created changes missing`).toEqual([]);
    expect(x.twice, `${id}'s SSE stream: changes twice`).toEqual([]);
    expect(x.backwards, `${id}'s SSE stream: changes out of order`).toEqual([]);
  }
}
