// What a failed write to ingest's own storage (the SQLite files in ODOPULSE_DATA_DIR) means, for the
// callers that must then refuse what they were asked to keep (docs/architecture.md#disk-full).

/** Why a write failed: the disk (or its quota) is full, an I/O error, or anything else. */
export type StorageFailure = 'full' | 'io' | 'other';

/** The SQLite result code of an error thrown by better-sqlite3 (`SqliteError.code`), if any. */
function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/**
 * SQLITE_FULL is a full disk (ENOSPC, EDQUOT); the SQLITE_IOERR_* family (a write, an fsync, growing
 * the WAL index: SQLITE_IOERR_SHMSIZE), a file that cannot be opened or has become read-only are I/O.
 */
export function storageFailureOf(err: unknown): StorageFailure {
  const code = sqliteCode(err);
  if (code === 'SQLITE_FULL') return 'full';
  if (code && /^SQLITE_(IOERR|CANTOPEN|READONLY)/.test(code)) return 'io';
  const errno = (err as { code?: unknown } | null)?.code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') return 'full';
  if (errno === 'EIO' || errno === 'EROFS') return 'io';
  return 'other';
}

/**
 * A write to local storage failed and nothing of it was kept (the transaction was rolled back): the
 * caller must not acknowledge what it was writing. `store` names the file's part: `journal`,
 * `dead_letters`, ...
 */
export class StorageWriteError extends Error {
  readonly reason: StorageFailure;
  /** SQLite's result code (SQLITE_FULL, SQLITE_IOERR_WRITE, ...) or the errno, when known. */
  readonly code: string | undefined;

  constructor(
    readonly store: string,
    cause: unknown,
  ) {
    const reason = storageFailureOf(cause);
    const msg = cause instanceof Error ? cause.message : String(cause);
    super(`${store} write failed (${reason}): ${msg}`, { cause });
    this.name = 'StorageWriteError';
    this.reason = reason;
    const code = (cause as { code?: unknown } | null)?.code;
    this.code = typeof code === 'string' ? code : undefined;
  }
}

/** `err` as a StorageWriteError of `store` (unchanged if it already is one). */
export function asStorageWriteError(store: string, err: unknown): StorageWriteError {
  return err instanceof StorageWriteError ? err : new StorageWriteError(store, err);
}
