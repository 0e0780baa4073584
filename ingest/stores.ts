// The stores ingest works with: a backend (store/) with the prompt lifecycle (prompts/service.ts) on top.
import { PromptService } from './prompts/service.js';
import {
  createMemoryBackend,
  openPostgresBackend,
  openSqliteBackend,
  type PostgresBackendOptions,
  type SqliteBackendOptions,
} from './store/index.js';
import type { StoreBackend, Stores } from './store/ports.js';

export function withPromptService(backend: StoreBackend): Stores {
  const { promptRepo, ...rest } = backend;
  return { ...rest, prompts: new PromptService(promptRepo) };
}

/** The one-machine default: SQLite files in the data dir. */
export function openSqliteStores(dataDir: string, opts?: SqliteBackendOptions): Stores {
  return withPromptService(openSqliteBackend(dataDir, opts));
}

/** In memory, for unit tests (the same shared suites as SQLite). */
export function createMemoryStores(): Stores {
  return withPromptService(createMemoryBackend());
}

/** A cluster: every instance on one PostgreSQL database (ingest/store/postgres/). */
export async function openPostgresStores(url: string, opts: PostgresBackendOptions): Promise<Stores> {
  return withPromptService(await openPostgresBackend(url, opts));
}
