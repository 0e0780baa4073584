// The store backends: SQLite (one machine) and memory (unit tests). Both run the shared suites in
// test/ports/. ingest/stores.ts puts the prompt lifecycle (prompts/service.ts) on top.
import type { StoreBackend } from './ports.js';
import { asyncBackend } from './sync-backend.js';
import { WalCheckpointer } from './sqlite/checkpointer.js';
import { openDb } from './sqlite/db.js';
import { sqliteDeadLetterStore, sqliteOutbox, sqliteRuleStateStore } from './sqlite/misc.js';
import { sqlitePromptRepo } from './sqlite/prompts.js';
import { sqliteVehicleStore } from './sqlite/vehicles.js';
import { sqliteAuditLog, sqliteKeyStore } from './sqlite/auth.js';
import { sqliteCampaignStore } from './sqlite/campaigns.js';
import { memoryCampaignStore } from './memory/campaigns.js';
import { memoryAuditLog, memoryKeyStore } from './memory/auth.js';
import { MemDb } from './memory/state.js';
import { memoryPromptRepo } from './memory/prompts.js';
import { memoryVehicleStore } from './memory/vehicles.js';
import { memoryDeadLetterStore, memoryOutbox, memoryRuleStateStore } from './memory/misc.js';

export {
  CHANGES_CHANNEL,
  openPostgresBackend,
  PG_SCHEMA_VERSION,
  StoreConflictError,
  type PostgresBackend,
  type PostgresBackendOptions,
} from './postgres/index.js';

export interface SqliteBackendOptions {
  /** WAL checkpoints on a thread of their own, this often (ms; sqlite/checkpointer.ts); unset: in the committing call. */
  walCheckpointMs?: number;
  onCheckpointError?: (message: string) => void;
}

export function openSqliteBackend(dataDir: string, opts: SqliteBackendOptions = {}): StoreBackend {
  const db = openDb(dataDir);
  const checkpointer =
    opts.walCheckpointMs === undefined
      ? undefined
      : new WalCheckpointer(db, { everyMs: opts.walCheckpointMs, onError: opts.onCheckpointError });
  const transaction = <T>(fn: () => T): T => db.transaction(fn)();
  // Explicit steps for the async gate; better-sqlite3's own transactions inside become savepoints.
  const begin = db.prepare('BEGIN IMMEDIATE');
  const commit = db.prepare('COMMIT');
  const rollback = db.prepare('ROLLBACK');
  const pruneStmts = {
    changes: db.prepare(
      "DELETE FROM prompt_changes WHERE prompt_id IN (SELECT id FROM prompts WHERE status IN ('resolved', 'expired') AND updated_ms < ?)",
    ),
    prompts: db.prepare("DELETE FROM prompts WHERE status IN ('resolved', 'expired') AND updated_ms < ?"),
    // only delivered events: pending and dead ones are kept whatever their age
    outbox: db.prepare("DELETE FROM outbox WHERE state = 'delivered' AND delivered_ms IS NOT NULL AND delivered_ms < ?"),
    deadLetters: db.prepare('DELETE FROM dead_letters WHERE at_ms < ?'),
    audit: db.prepare('DELETE FROM audit WHERE at_ms < ?'),
  };
  return asyncBackend({
    promptRepo: sqlitePromptRepo(db),
    vehicles: sqliteVehicleStore(db),
    ruleStates: sqliteRuleStateStore(db),
    deadLetters: sqliteDeadLetterStore(db),
    outbox: sqliteOutbox(db),
    keys: sqliteKeyStore(db),
    audit: sqliteAuditLog(db),
    campaigns: sqliteCampaignStore(db),
    begin: () => begin.run(),
    commit: () => commit.run(),
    rollback: () => {
      if (db.inTransaction) rollback.run();
    },
    prune: (olderThan) =>
      transaction(() => ({
        promptChanges: pruneStmts.changes.run(olderThan).changes,
        prompts: pruneStmts.prompts.run(olderThan).changes,
        outbox: pruneStmts.outbox.run(olderThan).changes,
        deadLetters: pruneStmts.deadLetters.run(olderThan).changes,
        audit: pruneStmts.audit.run(olderThan).changes,
      })),
    close: () => {
      // whichever connection closes last checkpoints what is left and removes the WAL
      void checkpointer?.close();
      if (db.open) db.close();
    },
  });
}

export function createMemoryBackend(): StoreBackend {
  const mem = new MemDb();
  let closed = false;
  return asyncBackend({
    promptRepo: memoryPromptRepo(mem),
    vehicles: memoryVehicleStore(mem),
    ruleStates: memoryRuleStateStore(mem),
    deadLetters: memoryDeadLetterStore(mem),
    outbox: memoryOutbox(mem),
    keys: memoryKeyStore(mem),
    audit: memoryAuditLog(mem),
    campaigns: memoryCampaignStore(mem),
    begin: () => {
      if (closed) throw new Error('stores are closed');
      mem.begin();
    },
    commit: () => mem.commit(),
    rollback: () => mem.rollback(),
    prune(olderThan) {
      const d = mem.data;
      const gone = new Set<string>();
      for (const p of d.prompts.values()) {
        if ((p.status === 'resolved' || p.status === 'expired') && Date.parse(p.updatedAt) < olderThan) gone.add(p.id);
      }
      for (const id of gone) d.prompts.delete(id);
      const changesBefore = d.changes.length;
      d.changes = d.changes.filter((c) => !gone.has(c.promptId));
      let outbox = 0;
      for (const [k, e] of d.outbox) {
        if (e.state === 'delivered' && e.deliveredAt !== null && e.deliveredAt < olderThan) {
          d.outbox.delete(k);
          outbox++;
        }
      }
      const dlBefore = d.deadLetters.length;
      d.deadLetters = d.deadLetters.filter((x) => x.atMs >= olderThan);
      const auditBefore = d.audit.length;
      d.audit = d.audit.filter((x) => x.atMs >= olderThan);
      return {
        prompts: gone.size,
        promptChanges: changesBefore - d.changes.length,
        outbox,
        deadLetters: dlBefore - d.deadLetters.length,
        audit: auditBefore - d.audit.length,
      };
    },
    close: () => {
      closed = true;
    },
  });
}
