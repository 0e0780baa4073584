// The PostgreSQL connection of the store backend: a pool, transactions carried by an
// AsyncLocalStorage context, the prompt write lock, and the migrations.
//
// Transactions. `transaction(fn)` checks out one client, BEGINs a REPEATABLE READ transaction and runs
// fn in a context carrying that client; every store call made inside fn (and everything it awaits)
// uses that client, every other call uses the pool (each statement its own transaction). A nested
// call joins the outer one. COMMIT when fn resolves, ROLLBACK when it throws. REPEATABLE READ is
// what the SQLite backend gives (test/ports/stores.suite.ts): a transaction sees one snapshot,
// taken at its first statement, so a write committed by another caller meanwhile is not seen
// inside it. A context outlives its transaction when fn leaves work behind (a timer set inside
// it): such a call sees the transaction ended and goes to the pool.
//
// The prompt write lock. Every transaction that reads prompts to change them (PromptRepo calls
// inside a transaction: get, findOpen, expiring, insert, update, appendChange) first takes
// `LOCK TABLE prompt_write_lock IN EXCLUSIVE MODE`, held until it ends. So transactions that
// change prompts run one at a time across every instance on the database, as they do on SQLite's
// one connection, and:
//  - change seqs come out in commit order. A seq is taken from the sequence while the lock is
//    held, and the lock is released only after the commit is visible; so a transaction taking the
//    next seq starts after every smaller seq is committed (or rolled back). Without it, A could take
//    seq 5, B seq 6, B commit, a reader paging changesSince(4) see 6 and resume after it, and A then
//    commit 5 behind it: the reader would never see 5.
//  - a situation prompts once under concurrency: when the lock is the transaction's first
//    statement (PromptService's own transactions; a caller's transaction whose first store call is a
//    prompt one), it is taken BEFORE the snapshot: LOCK TABLE, unlike a SELECT (such as
//    pg_advisory_xact_lock), takes no snapshot, and REPEATABLE READ freezes its view at the first
//    statement that does. So the second of two transactions opening the same situation waits
//    for the first, then sees its open prompt in findOpen and creates nothing (applyRuleEvents
//    returns []). When a transaction did something else first, its snapshot may predate a prompt
//    change that committed while it waited for the lock: then writing the same rows (or the same open
//    situation: the partial unique index prompts_open_dedup) fails with a serialisation failure or
//    a unique violation, the whole transaction is rolled back and rejects with a
//    StoreConflictError; PromptRepo.tx (whose fns only touch the store) runs again in that case, and
//    sees the winner the second time; a caller's own transaction is the caller's to run again.
import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';

/** Another transaction changed the same rows meanwhile: nothing of this one was kept; run it again. */
export class StoreConflictError extends Error {
  readonly retryable = true;
  /** PostgreSQL's SQLSTATE: 40001 (serialisation failure), 40P01 (deadlock), 23505 (the open-dedup index). */
  readonly code: string;
  constructor(cause: unknown) {
    const code = String((cause as { code?: unknown }).code);
    super(
      `store conflict (${code}): a concurrent transaction changed the same rows; nothing of this transaction was kept, run it again (${(cause as Error).message})`,
      { cause },
    );
    this.name = 'StoreConflictError';
    this.code = code;
  }
}

function isConflict(err: unknown): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | null;
  if (!e || typeof e.code !== 'string') return false;
  return e.code === '40001' || e.code === '40P01' || (e.code === '23505' && e.constraint === 'prompts_open_dedup');
}

interface TxContext {
  client: pg.PoolClient;
  promptLocked: boolean;
  done: boolean;
}

/** int8 (bigint: times in epoch ms, ids, counts) as a JS number, like SQLite's integers. */
const INT8_OID = 20;
const parseInt8 = (v: string) => Number(v);
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

export interface PgDbOptions {
  /** Pool size (default 10). */
  poolSize?: number;
  /** Use (and create) this schema instead of the connection's default one (search_path). */
  schema?: string;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export class PgDb {
  readonly pool: pg.Pool;
  private readonly als = new AsyncLocalStorage<TxContext>();
  private readonly names = new Map<string, string>();
  private closed = false;

  constructor(url: string, opts: PgDbOptions = {}) {
    if (opts.schema !== undefined && !SCHEMA_NAME.test(opts.schema))
      throw new Error(`PostgreSQL schema name "${opts.schema}": use lower-case letters, digits and _ (at most 63)`);
    this.pool = new pg.Pool({
      connectionString: url,
      max: opts.poolSize ?? 10,
      types,
      ...(opts.schema ? { options: `-c search_path=${opts.schema}` } : {}),
    });
    // An idle client whose connection broke: the pool drops it; the next query reports the trouble.
    this.pool.on('error', () => {});
  }

  private current(): TxContext | undefined {
    const t = this.als.getStore();
    return t && !t.done ? t : undefined;
  }

  inTransaction(): boolean {
    return this.current() !== undefined;
  }

  /** One statement, on the transaction's client inside one, else on the pool. Prepared (named) per text. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> {
    let name = this.names.get(text);
    if (name === undefined) this.names.set(text, (name = `odp${this.names.size + 1}`));
    const q = { name, text, values };
    const tx = this.current();
    if (tx) return tx.client.query<R>(q);
    if (this.closed) throw new Error('stores are closed');
    return this.pool.query<R>(q);
  }

  async rows<R extends pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
    return (await this.query<R>(text, values)).rows;
  }

  /**
   * Inside a transaction: take the prompt write lock once (see the top of this file), before the
   * snapshot when nothing was sent yet. Outside one: nothing (a single statement).
   */
  async lockPrompts(): Promise<void> {
    const tx = this.current();
    if (!tx || tx.promptLocked) return;
    tx.promptLocked = true;
    await tx.client.query('LOCK TABLE prompt_write_lock IN EXCLUSIVE MODE');
  }

  /**
   * Run fn in one transaction (nested: join the outer one). `retryConflicts`: fn only touches the
   * store, so an outermost run that lost a conflict (StoreConflictError) runs again, up to 5 times.
   */
  async transaction<T>(fn: () => Promise<T>, retryConflicts = false): Promise<T> {
    if (this.current()) return fn();
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.once(fn);
      } catch (err) {
        if (!isConflict(err)) throw err;
        if (!retryConflicts || attempt >= 5) throw new StoreConflictError(err);
      }
    }
  }

  private async once<T>(fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new Error('stores are closed');
    const client = await this.pool.connect();
    const tx: TxContext = { client, promptLocked: false, done: false };
    let broken: Error | undefined;
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      let result: T;
      try {
        result = await this.als.run(tx, fn);
      } catch (err) {
        tx.done = true;
        await client.query('ROLLBACK').catch((e: Error) => (broken = e));
        throw err;
      }
      tx.done = true;
      try {
        await client.query('COMMIT');
      } catch (err) {
        broken = err as Error; // the server ended the transaction, or the connection is gone: do not reuse it
        throw err;
      }
      return result;
    } finally {
      tx.done = true;
      client.release(broken);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  /**
   * Bring the schema up to date, once across instances: every instance starting at the same time
   * takes the same transaction-scoped advisory lock first (before creating the schema), so one runs
   * the missing migrations and the others then find them done. Refuses a database whose schema is
   * newer than this build.
   */
  async migrate(migrations: readonly string[], schema: string | undefined): Promise<void> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN'); // READ COMMITTED: each statement after the lock sees what the lock holder committed
      try {
        const name = schema ?? (await client.query<{ s: string | null }>('SELECT current_schema() AS s')).rows[0].s;
        if (!name) throw new Error('PostgreSQL: no schema to create the tables in (search_path names none that exists); set one');
        await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MIGRATION_LOCK, name]);
        if (schema) await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
        await client.query(
          'CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())',
        );
        const current = (await client.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_version')).rows[0].v ?? 0;
        if (current > migrations.length)
          throw new Error(
            `the PostgreSQL database has schema version ${current}, newer than this build knows (${migrations.length}); upgrade odopulse or use another database`,
          );
        for (let v = current; v < migrations.length; v++) {
          await client.query(migrations[v]);
          await client.query('INSERT INTO schema_version (version) VALUES ($1)', [v + 1]);
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch((e: Error) => (broken = e));
        throw err;
      }
    } finally {
      client.release(broken);
    }
  }
}

/** Advisory lock class of the migrations (the second key is the schema's name hashed). */
const MIGRATION_LOCK = 0x6f647001;
