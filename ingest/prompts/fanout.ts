// Where every prompt change goes once it is stored (docs/architecture.md#prompt-fan-out): the live
// stream (SSE subscribers), the car (HMI deliver / withdraw) and the lifecycle system (outbox rows,
// then a kick to the webhook dispatcher). One place, so every path fans out the same way.
import { EventEmitter } from 'node:events';
import type { Outbox, Prompt, PromptChange } from '../store/ports.js';

export interface FanoutDeps {
  outbox: Pick<Outbox, 'enqueue'>;
  /** CloudEvents for these changes, one per webhook URL (none when no webhook is configured). */
  eventsFor(changes: PromptChange[]): Array<{ id: string; url: string; body: string }>;
  clock: { now(): number };
  hmi: { deliver(vins: Iterable<string>): Promise<void>; withdraw(p: Prompt): Promise<void> };
  dispatcher: { kick(): void } | null;
  log: { warn(o: object, m?: string): void };
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
   * Changes whose outbox rows are already written (the rules runner writes them in its own
   * transaction). `deliver`: also try HMI delivery for the vehicles concerned.
   */
  published(changes: PromptChange[], deliver = true): void {
    for (const c of changes) {
      this.bus.emit('change', c);
      if (c.prompt.hmiState === 'withdrawn' && (c.step === 'withdrawn' || c.step === 'resolved')) {
        this.deps.hmi
          .withdraw(c.prompt)
          .catch((err: unknown) => this.deps.log.warn({ err: String(err), promptId: c.prompt.id }, 'HMI withdraw failed'));
      }
    }
    if (deliver && changes.length) this.deliver(new Set(changes.map((c) => c.vin)));
    this.deps.dispatcher?.kick();
  }

  /** Changes made outside the rules' transaction (HMI sent and acks, advisor ack/resolve, expiry): outbox rows are written here. */
  recorded(changes: PromptChange[], deliver = false): void {
    if (changes.length === 0) return;
    const events = this.deps.eventsFor(changes);
    if (events.length) this.deps.outbox.enqueue(events, this.deps.clock.now());
    this.published(changes, deliver);
  }

  /** HMI delivery for these vehicles; a failure is logged and retried on the next sweep. */
  deliver(vins: Iterable<string>): void {
    this.deps.hmi
      .deliver(vins)
      .catch((err: unknown) => this.deps.log.warn({ err: (err as Error).message }, 'HMI delivery failed; retried on the next sweep'));
  }
}
