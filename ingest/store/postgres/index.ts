// The PostgreSQL store backend: ingest's shared state for a cluster of instances (the same ports and
// shared suites as SQLite and memory). Transactions, the prompt write lock and the migrations are in
// db.ts, outbox claims in misc.ts.
import type { StoreBackend } from '../ports.js';
import { pgAuditLog, pgKeyStore } from './auth.js';
import { pgCampaignStore } from './campaigns.js';
import { PgDb } from './db.js';
import { pgDeadLetterStore, pgOutbox, pgRuleStateStore } from './misc.js';
import { pgPromptRepo } from './prompts.js';
import { MIGRATIONS } from './schema.js';
import { pgVehicleStore } from './vehicles.js';

export { StoreConflictError } from './db.js';
export { PG_SCHEMA_VERSION } from './schema.js';

export interface PostgresBackendOptions {
  /** This instance's name in the cluster: who holds an outbox claim. Unique per running instance. */
  instanceId: string;
  /** Connections in the pool (default 10). */
  poolSize?: number;
  /** Keep the tables in this schema (created if missing) instead of the connection's default. */
  schema?: string;
  /** How long an outbox row due() returned stays this instance's (default 60 s). */
  claimTtlMs?: number;
}

/** The backend plus a statement on the current transaction (cluster mode fences its commits with it). */
export interface PostgresBackend extends StoreBackend {
  sql: Pick<PgDb, 'query'>;
}

export { CHANGES_CHANNEL } from './prompts.js';

export async function openPostgresBackend(url: string, opts: PostgresBackendOptions): Promise<PostgresBackend> {
  if (typeof opts.instanceId !== 'string' || opts.instanceId === '')
    throw new Error('openPostgresBackend: instanceId must be a non-empty string');
  const db = new PgDb(url, { poolSize: opts.poolSize, schema: opts.schema });
  try {
    await db.migrate(MIGRATIONS, opts.schema);
  } catch (err) {
    await db.close();
    throw err;
  }
  const promptRepo = pgPromptRepo(db);
  return {
    // PromptService's fns only touch the store: one that lost a conflict runs again (db.ts).
    promptRepo: { ...promptRepo, tx: (fn) => db.transaction(fn, true) },
    vehicles: pgVehicleStore(db),
    ruleStates: pgRuleStateStore(db),
    deadLetters: pgDeadLetterStore(db),
    outbox: pgOutbox(db, { instanceId: opts.instanceId, ttlMs: opts.claimTtlMs ?? 60_000 }),
    keys: pgKeyStore(db),
    audit: pgAuditLog(db),
    campaigns: pgCampaignStore(db),
    transaction: (fn) => db.transaction(fn),
    prune: (olderThan) =>
      db.transaction(async () => {
        await db.lockPrompts(); // first: prune sees every prompt change committed before it, and none lands meanwhile
        const n = async (sql: string) => (await db.query(sql, [olderThan])).rowCount ?? 0;
        return {
          promptChanges: await n(
            "DELETE FROM prompt_changes WHERE prompt_id IN (SELECT id FROM prompts WHERE status IN ('resolved', 'expired') AND updated_ms < $1)",
          ),
          prompts: await n("DELETE FROM prompts WHERE status IN ('resolved', 'expired') AND updated_ms < $1"),
          // only delivered events: pending and dead ones are kept whatever their age
          outbox: await n("DELETE FROM outbox WHERE state = 'delivered' AND delivered_ms IS NOT NULL AND delivered_ms < $1"),
          deadLetters: await n('DELETE FROM dead_letters WHERE at_ms < $1'),
          audit: await n('DELETE FROM audit WHERE at_ms < $1'),
        };
      }),
    close: () => db.close(),
    sql: { query: (text, values) => db.query(text, values) },
  };
}
