// Whether the journal can be written, as its writes find out: the state /healthz and the metrics
// report, and the one place its changes are logged, once each way, never per batch
// (docs/architecture.md#disk-full).
import { asStorageWriteError, type StorageFailure, type StorageWriteError } from '../store/storage-errors.js';

export interface JournalStorageState {
  /** The last write (a commit, a done flag, a prune) succeeded; true until one fails. */
  writable: boolean;
  /** Since when (ms since epoch) it is in this state. */
  since: number;
  /** While not writable: why the last write failed, and SQLite's message. */
  reason?: StorageFailure;
  error?: string;
  /** Appends whose commit failed since the start (not journalled, so not acknowledged); a batch tried twice counts twice. */
  failedAppends: number;
}

export interface StorageLog {
  error(o: object, msg: string): void;
  warn(o: object, msg: string): void;
}

export class StorageStateTracker {
  private s: JournalStorageState = { writable: true, since: Date.now(), failedAppends: 0 };
  /** failedAppends when the journal last became unwritable. */
  private failedBefore = 0;

  constructor(private readonly log?: StorageLog) {}

  get state(): Readonly<JournalStorageState> {
    return { ...this.s };
  }

  get writable(): boolean {
    return this.s.writable;
  }

  /** A write (`what`: append, influx_done, rules_done, prune) failed; `appends`: the batches its commit carried. The error to reject them with. */
  failed(err: unknown, what: string, appends: number): StorageWriteError {
    const e = asStorageWriteError('journal', err);
    const was = this.s;
    this.s = {
      writable: false,
      since: was.writable ? Date.now() : was.since,
      reason: e.reason,
      error: e.cause instanceof Error ? e.cause.message : e.message,
      failedAppends: was.failedAppends + appends,
    };
    if (was.writable) {
      this.failedBefore = was.failedAppends;
      this.log?.error(
        { reason: e.reason, code: e.code, err: this.s.error, write: what },
        'journal not writable: telemetry is refused (no PUBACK) until a write succeeds',
      );
    }
    return e;
  }

  /** A write (`what`) succeeded. */
  wrote(what: string): void {
    const was = this.s;
    if (was.writable) return;
    this.s = { writable: true, since: Date.now(), failedAppends: was.failedAppends };
    this.log?.warn(
      { unwritableMs: this.s.since - was.since, failedAppends: was.failedAppends - this.failedBefore, write: what },
      'journal writable again: telemetry accepted',
    );
  }
}
