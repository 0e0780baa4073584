// The stores ingest works with: a backend (store/) with the prompt lifecycle (prompts/service.ts) on top.
import { PromptService } from './prompts/service.js';
import { createMemoryBackend, openSqliteBackend } from './store/index.js';
import type { StoreBackend, Stores } from './store/ports.js';

export function withPromptService(backend: StoreBackend): Stores {
  const { promptRepo, ...rest } = backend;
  return { ...rest, prompts: new PromptService(promptRepo) };
}

/** The one-machine default: SQLite files in the data dir. */
export function openSqliteStores(dataDir: string): Stores {
  return withPromptService(openSqliteBackend(dataDir));
}

/** In memory, for unit tests (the same shared suites as SQLite). */
export function createMemoryStores(): Stores {
  return withPromptService(createMemoryBackend());
}
