// A prompt change and the outbox rows that report it, in one store transaction
// (docs/architecture.md#guarantees): a crash, or a failing outbox write, leaves both or neither.
// The rules runner does this in its own commit; every other path (HMI sent, HMI acks, advisor
// acknowledge and resolve, expiry) goes through ChangeRecorder.commit, either directly
// (PromptFanout.record) or through a PromptStore wrapped by transactionalPrompts.
import type { Outbox, PromptChange, PromptStore, Stores } from '../store/ports.js';

export interface ChangeRecorderDeps {
  /** Stores.transaction: nested calls join the outer one. */
  transaction<T>(fn: () => Promise<T>): Promise<T>;
  outbox: Pick<Outbox, 'enqueue'>;
  /** CloudEvents for these changes, one per webhook URL (none when no webhook is configured). */
  eventsFor(changes: PromptChange[]): Array<{ id: string; url: string; body: string }>;
  clock: { now(): number };
  /**
   * Other records that follow prompt changes in the same transaction, returning their outbox rows:
   * campaign deliveries (ingest/campaigns/delivery.ts). Called whether or not a webhook is set.
   */
  track?(changes: PromptChange[]): Promise<Array<{ id: string; url: string; body: string }>>;
}

export class ChangeRecorder {
  constructor(private readonly deps: ChangeRecorderDeps) {}

  /**
   * Run `fn` (which changes prompts and returns the changes) and write their outbox rows, in one
   * transaction; if either throws, nothing of it stays and this throws. Publishing is the caller's
   * business, after this returns (i.e. after the commit, unless called inside an outer transaction).
   */
  commit(fn: () => Promise<PromptChange[]>): Promise<PromptChange[]> {
    const { transaction, outbox, eventsFor, clock, track } = this.deps;
    return transaction(async () => {
      const changes = await fn();
      if (changes.length) {
        const events = [...eventsFor(changes), ...((await track?.(changes)) ?? [])];
        if (events.length) await outbox.enqueue(events, clock.now());
      }
      return changes;
    });
  }
}

/**
 * The same PromptStore, but every method that changes a prompt also writes the change's outbox rows
 * in the same transaction. For parts that take a store and report changes afterwards through a
 * callback (HMI delivery's markHmiDelivered, the inbound ack handler's recordHmiAck): their callback then
 * only publishes (PromptFanout.published). Reads pass straight through.
 */
export function transactionalPrompts(prompts: PromptStore, recorder: Pick<ChangeRecorder, 'commit'>): PromptStore {
  const one = async (f: () => Promise<PromptChange | undefined>): Promise<PromptChange | undefined> => {
    const changes = await recorder.commit(async () => {
      const c = await f();
      return c ? [c] : [];
    });
    return changes[0];
  };
  return {
    applyRuleEvents: (vin, events, render, dealerId, now) =>
      recorder.commit(() => prompts.applyRuleEvents(vin, events, render, dealerId, now)),
    // published, not yet confirmed: no change step, so nothing for the outbox
    markHmiSent: (id, now) => prompts.markHmiSent(id, now),
    markHmiDelivered: (id, vin, now) => one(() => prompts.markHmiDelivered(id, vin, now)),
    recordHmiAck: (id, vin, outcome, at) => one(() => prompts.recordHmiAck(id, vin, outcome, at)),
    acknowledge: (id, by, note, now) => one(() => prompts.acknowledge(id, by, note, now)),
    resolve: (id, by, outcome, note, now) => one(() => prompts.resolve(id, by, outcome, note, now)),
    expire: (now) => recorder.commit(() => prompts.expire(now)),
    get: (id) => prompts.get(id),
    list: (filter) => prompts.list(filter),
    pendingHmi: (vin, now, unconfirmed) => prompts.pendingHmi(vin, now, unconfirmed),
    changesSince: (seq, dealers, limit) => prompts.changesSince(seq, dealers, limit),
    lastChangeSeq: () => prompts.lastChangeSeq(),
    stats: (from, to, dealers) => prompts.stats(from, to, dealers),
  };
}

/** The stores with their prompts wrapped by transactionalPrompts (for HMI delivery and the inbound handlers). */
export function recordingStores(stores: Stores, recorder: Pick<ChangeRecorder, 'commit'>): Stores {
  return { ...stores, prompts: transactionalPrompts(stores.prompts, recorder) };
}
