// Bridge between the journal and the rules pool: groups readings per vehicle, runs the detectors,
// and commits rule states, prompt changes, segments, charging sessions and outbox events in one
// store transaction. All pool work is serialised, so a vehicle's readings are applied in order.
import type { Reading, Signals, Vehicle } from '../../proto/domain.js';
import type { PoolResult, RulesPool } from '../../rules/pool.js';
import { renderPrompt } from '../../rules/i18n/index.js';
import { toStateJson } from '../../rules/state-json.js';
import type { RuleEvent, RuleStateJson, Segments, ServiceRecord, VehicleRuleState } from '../../rules/types.js';
import type { IngestClock } from '../clock.js';
import { eventsForChanges, eventsForSegmentChanges, segmentsChanged, type SegmentChange } from '../outbound/webhook.js';
import type { JournalEntry } from '../journal/journal.js';
import type { Metrics } from '../metrics.js';
import { readingsOf } from '../journal/readings.js';
import type { Stores } from '../store/ports.js';
import type { PromptChange } from '../store/ports.js';
import type { OutboundEvent } from '../outbound/cloudevents.js';

/**
 * Lifecycle campaigns in the rules commit (ingest/campaigns/delivery.ts, docs/domain.md#campaign-targeting):
 * a vehicle whose segments changed is targeted or withdrawn in the same transaction, and every
 * prompt change of a campaign message moves its delivery row and writes its events.
 */
export interface CampaignHook {
  onSegments(vin: string, profile: Vehicle | undefined, segments: Segments, now: number): Promise<PromptChange[]>;
  track(changes: readonly PromptChange[]): Promise<OutboundEvent[]>;
}

export interface RulesRunnerDeps {
  pool: RulesPool;
  stores: Stores;
  clock: IngestClock;
  metrics: Metrics;
  webhookUrls: string[];
  /** Position in outbound events only for this stated purpose (docs/domain.md#privacy-and-retention). */
  eventPositionPurpose?: string;
  campaigns?: CampaignHook;
  /**
   * Cluster mode (docs/architecture.md#cluster-mode): this instance applies only the vehicles of the
   * partitions it leases; their states are loaded when first needed (another instance may have
   * applied them before), and each commit of journal entries is fenced by the leases of their
   * partitions, in the same transaction (a stale owner's commit rolls back).
   */
  cluster?: {
    owns(vin: string): boolean;
    fence(entries: readonly JournalEntry[]): Promise<void>;
    /** The fence for work that is not journal entries (sweep ticks, service visits): the vehicles' partitions at their current epochs, taken now. */
    fenceFor(vins: readonly string[]): () => Promise<void>;
  };
  log: { warn(o: object, m?: string): void };
}

interface Item {
  vin: string;
  readings: Reading[];
  serviceRecords?: ServiceRecord[];
  /** Store the service records in the commit transaction and report their ids. */
  storeRecords?: (ids: number[]) => void;
  tick?: boolean;
  journalId?: number;
}

type Profile = Awaited<ReturnType<Stores['vehicles']['get']>>;

export class RulesRunner {
  /**
   * Each vehicle's committed state, as the JSON text its worker produced and the store keeps, and
   * its latest signals beside it (HMI delivery asks after every rules step whether a vehicle
   * holding prompts back is parked; a whole state's parse is 5–11 µs, its latest ~1 µs).
   */
  private readonly cache = new Map<string, { state: RuleStateJson; latest: Signals }>();
  private chain: Promise<unknown> = Promise.resolve();

  /** A runner with the stored rule states loaded (its cache must hold them before the first run). */
  static async open(deps: RulesRunnerDeps): Promise<RulesRunner> {
    // in a cluster the states are loaded per vehicle, as its partition comes to this instance
    return new RulesRunner(deps, deps.cluster ? [] : await deps.stores.ruleStates.all());
  }

  /** Forget cached states (a partition came to this instance: another may have applied them since). */
  evict(which: (vin: string) => boolean): void {
    for (const vin of this.cache.keys()) if (which(vin)) this.cache.delete(vin);
  }

  /** Cluster mode: the stored states of these vehicles, where not cached yet. */
  private async loadMissing(vins: Iterable<string>): Promise<void> {
    if (!this.deps.cluster) return;
    for (const vin of vins) {
      if (this.cache.has(vin)) continue;
      const s = await this.deps.stores.ruleStates.load(vin);
      if (s) this.cache.set(vin, { state: toStateJson(s), latest: s.latest });
    }
  }

  private constructor(
    private readonly deps: RulesRunnerDeps,
    states: readonly VehicleRuleState[],
  ) {
    for (const s of states) this.cache.set(s.vin, { state: toStateJson(s), latest: s.latest });
  }

  latest(vin: string): Signals | undefined {
    return this.cache.get(vin)?.latest;
  }

  knownVins(): string[] {
    return [...this.cache.keys()];
  }

  /** Apply journal entries (in id order). Entries a vehicle's state already includes are skipped. */
  applyEntries(entries: JournalEntry[]): Promise<PromptChange[]> {
    return this.exclusive(async () => {
      await this.loadMissing(new Set(entries.map((e) => e.vin)));
      const byVin = new Map<string, Item>();
      for (const e of entries) {
        const applied = this.cache.get(e.vin)?.state.journalId ?? 0;
        if (e.id <= applied) continue;
        let readings: Reading[];
        try {
          readings = e.readings ?? readingsOf(e);
        } catch (err) {
          // validated before it was journalled; only a codec change could make this happen
          this.deps.log.warn({ vin: e.vin, seq: e.seq, err: (err as Error).message }, 'journal entry no longer decodes; skipped');
          continue;
        }
        const item = byVin.get(e.vin) ?? { vin: e.vin, readings: [] };
        item.readings.push(...readings);
        item.journalId = e.id;
        byVin.set(e.vin, item);
      }
      const cluster = this.deps.cluster;
      // every entry (skipped ones too) moves its partition's position, with the results
      if (cluster && byVin.size === 0 && entries.length > 0) {
        await this.deps.stores.transaction(() => cluster.fence(entries));
        return [];
      }
      return this.run([...byVin.values()], cluster ? () => cluster.fence(entries) : undefined);
    });
  }

  /**
   * A service visit: stored and applied to the maintenance schedule in one transaction, so a crash
   * or a failing rules run never leaves a record the rules did not see (or applies one not stored).
   */
  async serviceRecord(vin: string, record: ServiceRecord): Promise<{ id: number; changes: PromptChange[] }> {
    let id = 0;
    const changes = await this.exclusive(async () => {
      await this.loadMissing([vin]);
      return this.run(
        [{ vin, readings: [], serviceRecords: [record], storeRecords: (ids) => (id = ids[0]) }],
        this.deps.cluster?.fenceFor([vin]),
      );
    });
    return { id, changes };
  }

  /** Time-based sweep against the fleet clock, for every vehicle known to rules or registered.
   *  The changes returned are already in the outbox (same transaction). */
  sweep(): Promise<PromptChange[]> {
    return this.exclusive(async () => {
      const vins = new Set(this.cache.keys());
      let cursor: string | undefined;
      do {
        const page = await this.deps.stores.vehicles.list({ limit: 1000, cursor });
        for (const v of page.items) vins.add(v.vin);
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
      const owns = this.deps.cluster?.owns;
      const all = owns ? [...vins].filter((v) => owns(v)) : [...vins];
      await this.loadMissing(all);
      const changes: PromptChange[] = [];
      for (let i = 0; i < all.length; i += 2000) {
        const chunk = all.slice(i, i + 2000);
        // in a cluster the chunk commits only while this instance still holds those partitions
        changes.push(
          ...(await this.run(
            chunk.map((vin) => ({ vin, readings: [], tick: true })),
            this.deps.cluster?.fenceFor(chunk),
          )),
        );
      }
      return changes;
    });
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async run(items: Item[], inCommit?: () => Promise<void>): Promise<PromptChange[]> {
    if (items.length === 0) return [];
    const { pool, stores, clock } = this.deps;
    const profiles = await Promise.all(items.map((it) => stores.vehicles.get(it.vin)));
    const results = await pool.run(
      items.map((it, i) => ({
        vin: it.vin,
        state: this.cache.get(it.vin)?.state,
        // written into the new state: the entries it includes (a sweep or a visit keeps the last)
        journalId: it.journalId ?? this.cache.get(it.vin)?.state.journalId,
        profile: profiles[i],
        readings: it.readings,
        serviceRecords: it.serviceRecords,
        tick: it.tick,
      })),
      clock.now(),
    );
    return this.commit(items, profiles, results, inCommit);
  }

  private async commit(items: Item[], profiles: Profile[], results: PoolResult[], inCommit?: () => Promise<void>): Promise<PromptChange[]> {
    const { stores, metrics, clock, webhookUrls } = this.deps;
    const policy = { urls: webhookUrls, positionPurpose: this.deps.eventPositionPurpose };
    const now = clock.now();
    const states: RuleStateJson[] = [];
    const changes: PromptChange[] = [];
    const segmentChanges: SegmentChange[] = [];
    // one transaction; its writes one after another in this order (the change seqs follow it)
    await stores.transaction(async () => {
      for (const [i, r] of results.entries()) {
        const item = items[i];
        if (item.storeRecords && item.serviceRecords) {
          const ids: number[] = [];
          for (const rec of item.serviceRecords) ids.push(await stores.vehicles.addServiceRecord(item.vin, rec, now));
          item.storeRecords(ids);
        }
        const profile = profiles[i];
        // as returned: the pool knows its worker holds this object's state (rules/pool.ts)
        states.push(r.state);
        const promptEvents: RuleEvent[] = [];
        let segments: Segments | undefined;
        for (const ev of r.events) {
          if (ev.type === 'segments') {
            const prev = await stores.vehicles.segments(item.vin);
            if (segmentsChanged(prev, ev.segments))
              segmentChanges.push({ vin: item.vin, from: prev, to: ev.segments, at: now, dealerId: profile?.dealerId ?? null });
            await stores.vehicles.setSegments(item.vin, ev.segments, now);
            segments = ev.segments;
          } else if (ev.type === 'charging_session') await stores.vehicles.addChargingSession(ev.session);
          else promptEvents.push(ev);
        }
        if (promptEvents.length) {
          const locale = profile?.locale ?? 'en';
          const render = (d: Parameters<typeof renderPrompt>[0]) => ({ ...renderPrompt(d, locale), locale });
          changes.push(...(await stores.prompts.applyRuleEvents(item.vin, promptEvents, render, profile?.dealerId ?? null, now)));
        }
        if (segments && this.deps.campaigns) changes.push(...(await this.deps.campaigns.onSegments(item.vin, profile, segments, now)));
      }
      await stores.ruleStates.save(states);
      const campaignEvents = (await this.deps.campaigns?.track(changes)) ?? [];
      if (campaignEvents.length) await stores.outbox.enqueue(campaignEvents, now);
      if (webhookUrls.length && changes.length) await stores.outbox.enqueue(eventsForChanges(changes, policy), now);
      if (webhookUrls.length && segmentChanges.length) await stores.outbox.enqueue(eventsForSegmentChanges(segmentChanges, policy), now);
      await inCommit?.();
    });
    // counted once committed: a rolled-back step is retried and would count its failures twice
    for (const r of results) for (const f of r.failures) metrics.detectorFailures.inc({ family: f.family });
    for (const r of results) this.cache.set(r.state.vin, { state: r.state, latest: r.latest });
    for (const c of changes) metrics.prompts.inc({ step: c.step, kind: c.prompt.kind });
    return changes;
  }
}
