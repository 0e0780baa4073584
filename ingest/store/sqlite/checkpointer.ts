// WAL checkpoints off the event loop. SQLite checkpoints a WAL database in the commit that takes
// the WAL past `wal_autocheckpoint` pages: that commit copies ~1,000 pages into the database and
// fsyncs it, on the caller's thread. On ingest's event loop that was a 7-40 ms stall every second or
// two at a steady load (bench/README.md#the-journals-payloads-apart-wal-checkpoints-on-their-own-thread). Here a thread of its
// own checkpoints every `everyMs` on its own connection (PASSIVE: never in a writer's way), and the
// owner's connection keeps an automatic checkpoint only as a far bound, should this thread lag.
import { Worker } from 'node:worker_threads';
import { distModule } from '../../../proto/paths.js';
import type { CheckpointResult, CheckpointerData } from './checkpoint-worker.js';
import type { Database } from './driver.js';

export type { CheckpointResult } from './checkpoint-worker.js';

/** How often ingest checkpoints its databases (ingest/main.ts): a few hundred pages each time at a steady load. */
export const WAL_CHECKPOINT_MS = 200;

/** The owner's own automatic checkpoint while a checkpointer runs, in pages (~32 MB of WAL). */
export const FAR_AUTOCHECKPOINT_PAGES = 8000;

export interface CheckpointerOptions {
  everyMs: number;
  /** Told when checkpoints start failing (once, until one works again) or the thread dies (the owner's far bound still holds). */
  onError?: (message: string) => void;
}

type Reply = { type: 'error'; message: string } | { type: 'checkpointed'; id: number; result: CheckpointResult | undefined };

export class WalCheckpointer {
  private readonly worker: Worker;
  private readonly asked = new Map<number, (r: CheckpointResult | undefined) => void>();
  private nextId = 1;
  private closing: Promise<void> | undefined;
  private exited = false;

  /** Starts checkpointing `db`'s file, and sets `db`'s own automatic checkpoint to the far bound. */
  constructor(db: Database, opts: CheckpointerOptions) {
    db.pragma(`wal_autocheckpoint = ${FAR_AUTOCHECKPOINT_PAGES}`);
    const data: CheckpointerData = { path: db.name, everyMs: opts.everyMs };
    this.worker = new Worker(distModule('ingest/store/sqlite/checkpoint-worker.js'), { workerData: data });
    // a checkpointer is no reason to keep a process alive
    this.worker.unref();
    this.worker.on('message', (m: Reply) => {
      if (m.type === 'error') opts.onError?.(m.message);
      else {
        this.asked.get(m.id)?.(m.result);
        this.asked.delete(m.id);
      }
    });
    this.worker.on('error', (err) => opts.onError?.(`checkpointer thread failed: ${err.message}`));
    this.worker.on('exit', () => {
      this.exited = true;
      for (const answer of this.asked.values()) answer(undefined);
      this.asked.clear();
    });
  }

  /** A checkpoint now (tests); undefined if it failed or the thread is gone. */
  checkpoint(): Promise<CheckpointResult | undefined> {
    if (this.closing || this.exited) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.asked.set(id, resolve);
      this.worker.postMessage({ type: 'checkpoint', id });
    });
  }

  /** The thread closes its connection and ends; resolves once it has. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (this.exited) return resolve();
      this.worker.once('exit', () => resolve());
      this.worker.postMessage({ type: 'close' });
    });
    return this.closing;
  }
}
