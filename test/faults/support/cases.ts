// What the fault cases (ingest kill -9, SIGTERM, HMI offline, webhook receiver down) share: a
// seeded RNG whose seed is printed, a ledger whose vehicles report DTCs at planned seqs (so prompts
// arise under the load, from batches that are retried like any other), restarts on the same data
// dir and ports, the drain at the end, and the prompt checks (one prompt per situation).
import { apiGet, startIngestProcess, type IngestProcess } from '../../support/ingest.js';
import type { PromptJson, PromptPageJson } from '../../support/api.js';
import { waitFor } from '../../support/wait.js';
import { Ledger, SAMPLES_PER_BATCH, type LedgerOptions } from './ledger.js';
import type { FleetLoad } from './load.js';

/** mulberry32: small, fast, good enough to pick delays and seqs reproducibly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The run's seed: ODOPULSE_FAULT_SEED, else a random one; printed so a failure can be replayed. */
export function faultSeed(name: string): number {
  const env = process.env.ODOPULSE_FAULT_SEED;
  const seed = env ? Number(env) >>> 0 : Math.floor(Math.random() * 2 ** 31);
  console.log(`[${name}] seed ${seed} (rerun with ODOPULSE_FAULT_SEED=${seed})`);
  return seed;
}

/** `count` VINs (17 characters) starting with `prefix` (up to 6 letters, none of I, O, Q). */
export function vins(prefix: string, count: number): string[] {
  if (!/^[A-HJ-NPR-Z0-9]{1,6}$/.test(prefix)) throw new Error(`VIN prefix ${prefix}: up to 6 of A-Z/0-9 without I, O, Q`);
  return Array.from({ length: count }, (_, i) => `${prefix}${String(i).padStart(17 - prefix.length, '0')}`);
}

/** A DTC some vehicle reports in batch `seq` (with the codes it reported before: the list is cumulative). */
export interface PlannedDtc {
  vin: string;
  seq: number;
  code: string;
}

/** Codes of each catalogue severity: critical (urgent), warning, info. */
export const DTC_CODES = ['P0A80', 'P0300', 'P0420', 'B0001', 'C0035', 'U0100', 'P0171', 'P0A7F'];

/**
 * A ledger whose vehicles report DTCs in planned batches: batch `seq` of a planned vehicle carries
 * every code planned for it up to that seq (cumulative, so no code clears and each prompts exactly
 * once). The plan is fixed before the load starts, so a re-sent batch has the same bytes.
 */
export class DtcLedger extends Ledger {
  private readonly reports = new Map<string, string[]>();
  readonly plan: PlannedDtc[];

  constructor(plan: PlannedDtc[], o: LedgerOptions = {}) {
    super(o);
    this.plan = [...plan].sort((a, b) => a.seq - b.seq);
    const sofar = new Map<string, string[]>();
    for (const p of this.plan) {
      const codes = [...(sofar.get(p.vin) ?? []), p.code];
      sofar.set(p.vin, codes);
      this.reports.set(`${p.vin}/${p.seq}`, codes);
    }
  }

  override batch(vin: string, bootIndex: number, seq: number, extra: { dtcs?: string[]; soc?: number } = {}): Buffer {
    const dtcs = extra.dtcs ?? (bootIndex === 0 ? this.reports.get(`${vin}/${seq}`) : undefined);
    return super.batch(vin, bootIndex, seq, { ...extra, dtcs });
  }

  /** Planned batches not acknowledged yet. */
  unackedPlan(): PlannedDtc[] {
    return this.plan.filter((p) => !this.acked.has(this.key(p.vin, 0, p.seq)));
  }

  /** The dedup key each planned code's prompt must have (first occurrence). */
  expectedKeys(): string[] {
    return this.plan.map((p) => `${p.vin}:fault.dtc:${p.code}:1`).sort();
  }
}

/**
 * A plan of `perVehicle` distinct codes for each of `vinsWithDtcs`, at seqs drawn from
 * [minSeq, maxSeq] (distinct per vehicle).
 */
export function planDtcs(
  rnd: () => number,
  vinsWithDtcs: string[],
  o: { perVehicle: number; minSeq: number; maxSeq: number },
): PlannedDtc[] {
  const plan: PlannedDtc[] = [];
  for (const vin of vinsWithDtcs) {
    const codes = [...DTC_CODES];
    for (let i = codes.length - 1; i > 0; i--) {
      const j = Math.floor(rnd() * (i + 1));
      [codes[i], codes[j]] = [codes[j], codes[i]];
    }
    codes.length = Math.min(codes.length, o.perVehicle);
    const seqs = new Set<number>();
    while (seqs.size < codes.length) seqs.add(o.minSeq + Math.floor(rnd() * (o.maxSeq - o.minSeq + 1)));
    [...seqs].sort((a, b) => a - b).forEach((seq, i) => plan.push({ vin, seq, code: codes[i] }));
  }
  return plan;
}

/** Every prompt the API lists (all statuses), paged. */
export async function allPrompts(ingest: IngestProcess, query = ''): Promise<PromptJson[]> {
  const out: PromptJson[] = [];
  let cursor: string | null = null;
  do {
    const qs: string = `limit=500${query ? `&${query}` : ''}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page: PromptPageJson = await apiGet<PromptPageJson>(ingest, `/api/v1/prompts?${qs}`);
    out.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor);
  return out;
}

/** Prompts beyond the first per (vin, kind, dedup key): 0 unless a situation prompted twice. */
export function duplicatePrompts(prompts: PromptJson[]): { count: number; keys: string[] } {
  const n = new Map<string, number>();
  for (const p of prompts) n.set(`${p.vin}|${p.kind}|${p.dedupKey}`, (n.get(`${p.vin}|${p.kind}|${p.dedupKey}`) ?? 0) + 1);
  const dups = [...n].filter(([, c]) => c > 1);
  return { count: dups.reduce((s, [, c]) => s + c - 1, 0), keys: dups.map(([k, c]) => `${k} ×${c}`) };
}

/** Start ingest again on the same data dir, ports and key (after a kill or a stop). */
export function restartIngest(ingest: IngestProcess): Promise<IngestProcess> {
  return startIngestProcess(ingest.env, {
    dataDir: ingest.dataDir,
    httpPort: ingest.httpPort,
    mqttPort: ingest.mqttPort,
    token: ingest.token,
  });
}

export interface Drained {
  /** Acknowledged batches found in InfluxDB (all their samples). */
  stored: Set<string>;
  /** Acknowledged, not found. */
  lost: string[];
  /** From the load's stop to the last acknowledged batch in InfluxDB (or the deadline). */
  drainMs: number;
}

/**
 * Stop the load (every batch sent is acknowledged first), then wait until InfluxDB holds every
 * acknowledged batch. Resolves at the deadline too (with what is missing), so the case can record
 * its row before it asserts.
 */
export async function drain(ledger: Ledger, load: FleetLoad, influxUrl: string, db: string, timeoutMs = 90_000): Promise<Drained> {
  await load.stop();
  const t = Date.now();
  let stored = new Set<string>();
  try {
    await waitFor(
      async () => {
        stored = await ledger.stored(influxUrl, db);
        return ledger.lost(stored).length === 0;
      },
      { what: 'every acknowledged batch in InfluxDB', timeoutMs, intervalMs: 500 },
    );
  } catch {
    // reported as lost below
  }
  const acked = new Set(ledger.acked);
  return { stored: new Set([...stored].filter((k) => acked.has(k))), lost: ledger.lost(stored), drainMs: Date.now() - t };
}

/**
 * Wait until every planned DTC batch is acknowledged. At the deadline the error names each batch
 * still unacknowledged and what the load(s) know of it and its vehicle (sent? how often, on which
 * connections, its last error; the vehicle's loop connecting, connected or ended), so a failure in
 * CI says where the batch got stuck.
 */
export async function waitForPlanAcked(
  ledger: DtcLedger,
  loads: FleetLoad | FleetLoad[],
  o: { timeoutMs: number; intervalMs?: number },
): Promise<void> {
  try {
    await waitFor(() => ledger.unackedPlan().length === 0, { what: 'every planned DTC batch acknowledged', ...o });
  } catch (err) {
    const left = ledger.unackedPlan();
    const known = [loads]
      .flat()
      .map((l) => l.explain(left))
      .filter((s) => s !== '');
    const what = left.map((p) => `${p.vin}/${p.seq} (${p.code})`).join(', ');
    throw new Error(`${(err as Error).message}\n${left.length} planned batches unacknowledged: ${what}\n${known.join('\n')}`);
  }
}

/** Readings in `batches` batches. */
export const readings = (batches: number): number => batches * SAMPLES_PER_BATCH;

/**
 * Send `signal` and wait for the exit, at most `boundMs` (then kill -9, so a hang fails the case
 * instead of the suite's timeout): the exit code (null after a kill) and how long it took.
 */
export async function stopWithin(
  ingest: IngestProcess,
  signal: NodeJS.Signals,
  boundMs: number,
): Promise<{ code: number | null; ms: number; hung: boolean }> {
  const t = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), boundMs)));
  const r = await Promise.race([ingest.stop(signal), hung]);
  clearTimeout(timer);
  const ms = Date.now() - t;
  if (r === 'hung') {
    await ingest.stop('SIGKILL');
    return { code: null, ms, hung: true };
  }
  return { code: r, ms, hung: false };
}
