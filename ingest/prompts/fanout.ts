// Where every prompt change goes once it is stored (docs/architecture.md#prompt-fan-out): the live
// stream (SSE subscribers), the car (HMI deliver / withdraw) and the lifecycle system (outbox rows,
// written in the change's own transaction, then a kick to the webhook dispatcher). One place, so
// every path fans out the same way.
import { EventEmitter } from 'node:events';
import type { Prompt, PromptChange } from '../store/ports.js';
import type { ChangeRecorder } from './recorder.js';

export interface FanoutDeps {
  /** Writes a change and its outbox rows in one transaction (prompts/recorder.ts). */
  recorder: Pick<ChangeRecorder, 'commit'>;
  hmi: {
    deliver(vins: Iterable<string>, opts?: { resend?: boolean }): Promise<void>;
    withdraw(p: Prompt): Promise<void>;
    /** Whether the vehicle had prompts held back at its last delivery (new telemetry may free them). */
    holdsBack(vin: string): boolean;
  };
  dispatcher: { kick(): void } | null;
  log: { warn(o: object, m?: string): void };
  /** A failed HMI deliver or withdraw (logged, retried later), counted by kind. */
  onError?(what: 'hmi_delivery' | 'hmi_withdraw'): void;
  /**
   * Cluster mode (docs/architecture.md#cluster-mode): changes reach the stream and the cars through
   * the shared change log (fromFeed, on every instance, in sequence order), not from where they were
   * made; a local change only wakes the feed.
   */
  feed?: { kick(): void };
}

export class PromptFanout {
  private readonly bus = new EventEmitter<{ change: [PromptChange] }>();

  constructor(private readonly deps: FanoutDeps) {
    this.bus.setMaxListeners(0);
  }

  /** The live stream's source: every change, in the order stored. */
  subscribe(fn: (c: PromptChange) => void): () => void {
    this.bus.on('change', fn);
    return () => this.bus.off('change', fn);
  }

  /**
   * Changes whose outbox rows are already written, in the same transaction as the change: the rules
   * runner's commit, or a store wrapped by transactionalPrompts. `deliver`: also try HMI delivery
   * for the vehicles concerned.
   */
  published(changes: PromptChange[], deliver = true): void {
    if (this.deps.feed) {
      if (changes.length) this.deps.feed.kick();
      this.deps.dispatcher?.kick();
      return;
    }
    this.fanOut(changes, deliver);
  }

  /** Cluster mode: changes read from the shared change log, made here or by another instance. */
  fromFeed(changes: PromptChange[]): void {
    this.fanOut(changes, true);
  }

  private fanOut(changes: PromptChange[], deliver: boolean): void {
    for (const c of changes) {
      // each subscriber on its own: one's failure must not keep the change from the others, the car or the outbox
      for (const fn of this.bus.listeners('change')) {
        try {
          fn(c);
        } catch (err) {
          this.deps.log.warn({ err: String(err), promptId: c.prompt.id }, 'a change subscriber failed');
        }
      }
      if (c.prompt.hmiState === 'withdrawn' && (c.step === 'withdrawn' || c.step === 'resolved')) {
        this.deps.hmi.withdraw(c.prompt).catch((err: unknown) => {
          this.deps.onError?.('hmi_withdraw');
          this.deps.log.warn({ err: String(err), promptId: c.prompt.id }, 'HMI withdraw failed');
        });
      }
    }
    if (deliver && changes.length) this.deliver(new Set(changes.map((c) => c.vin)));
    this.deps.dispatcher?.kick();
  }

  /**
   * Make prompt changes outside the rules (advisor acknowledge and resolve, expiry): `fn` makes them
   * and returns them; they and their outbox rows are committed in one transaction, then published.
   * If `fn` or the outbox write throws, nothing stays, nothing is published, and this throws.
   * Not to be called inside another transaction (it would publish before that one commits).
   */
  async record(fn: () => Promise<PromptChange[]>, deliver = false): Promise<PromptChange[]> {
    const changes = await this.deps.recorder.commit(fn);
    if (changes.length) this.published(changes, deliver);
    return changes;
  }

  /**
   * A rules step's vehicles, after its changes were published (with delivery, so the vehicles whose
   * prompts changed go first): delivery also for those holding prompts back (not parked, quiet
   * hours, a failed send), which their new telemetry may free. The others have nothing to send:
   * asking the store for each of a step's thousands of vehicles kept an urgent prompt waiting.
   */
  stepApplied(vins: Iterable<string>): void {
    const held = [...vins].filter((vin) => this.deps.hmi.holdsBack(vin));
    if (held.length) this.deliver(held);
  }

  /**
   * HMI delivery for these vehicles; a failure is logged and retried on the next sweep. `resend`
   * (birth, prompts subscribe): also the prompts sent but not yet confirmed by the car.
   */
  deliver(vins: Iterable<string>, opts: { resend?: boolean } = {}): void {
    this.deps.hmi.deliver(vins, opts).catch((err: unknown) => {
      this.deps.onError?.('hmi_delivery');
      this.deps.log.warn({ err: (err as Error).message }, 'HMI delivery failed; retried on the next sweep');
    });
  }
}
