// Cluster mode's prompt fan-out (docs/architecture.md#cluster-mode): every instance tails the shared
// prompt change log in PostgreSQL, in sequence order, and fans each change out locally (its SSE
// subscribers, the cars connected to it, the webhook dispatcher). A change is appended under a
// transaction-level lock, so sequence order is commit order and a reader paging by sequence never
// skips one committed late. LISTEN/NOTIFY only wakes the reader; the periodic read is the safety net
// (a notification is lost while the listening connection is down).
import type { PromptChange } from '../store/ports.js';

export interface ChangeFeedDeps {
  /** The store's change log (PromptStore.changesSince, every dealer). */
  changesSince(seq: number, limit: number): Promise<PromptChange[]>;
  /** The newest sequence at start: the feed begins after it (earlier changes were fanned out already). */
  lastChangeSeq(): Promise<number>;
  /** Subscribe to the store's "changes committed" notification; resolves once listening, returns unlisten. */
  listen(onNotify: () => void): Promise<() => Promise<void>>;
  /** The local fan-out of changes, in order. */
  onChanges(changes: PromptChange[]): void;
  log: { warn(o: object, m?: string): void };
  onError?(): void;
  /** The safety-net read interval (ms). */
  pollMs?: number;
}

const PAGE = 1000;

export class ChangeFeed {
  private last = 0;
  private running = false;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private unlisten: (() => Promise<void>) | null = null;
  private reading: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly deps: ChangeFeedDeps) {}

  /** The sequence of the last change fanned out. */
  position(): number {
    return this.last;
  }

  async start(): Promise<void> {
    this.last = await this.deps.lastChangeSeq();
    this.unlisten = await this.deps.listen(() => this.kick());
    const poll = () => {
      if (this.stopped) return;
      this.kick();
      this.timer = setTimeout(poll, this.deps.pollMs ?? 1000);
    };
    this.timer = setTimeout(poll, this.deps.pollMs ?? 1000);
  }

  /** Read now (a notification, or a local commit that is known to have changed something). */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.reading = this.drain().finally(() => {
      this.running = false;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        const page = await this.deps.changesSince(this.last, PAGE);
        if (page.length === 0) return;
        this.last = page[page.length - 1].seq;
        this.deps.onChanges(page);
        if (page.length < PAGE) return;
      }
    } catch (err) {
      this.deps.onError?.();
      this.deps.log.warn({ err: (err as Error).message }, 'reading the shared change log failed; retried at the next poll');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.reading;
    await this.unlisten?.().catch(() => undefined);
  }
}
