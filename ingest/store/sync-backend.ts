// The ports are asynchronous (a PostgreSQL backend answers over the network); the SQLite and
// memory backends are synchronous underneath. This turns one of those into the async ports: each
// call runs at once, except while another caller's transaction is open on the one connection,
// when it waits for that transaction to end (so no statement of another caller lands inside it).
import { AsyncLocalStorage } from 'node:async_hooks';
import type {
  AuditLog,
  CampaignStore,
  DeadLetterStore,
  KeyStore,
  Outbox,
  PromptRepo,
  PruneResult,
  RuleStateStore,
  StoreBackend,
  VehicleStore,
} from './ports.js';

/** The synchronous shape of an async port: each `(…) => Promise<R>` method as `(…) => R`. */
export type SyncOf<T> = {
  [K in keyof T]: T[K] extends (...a: infer A) => Promise<infer R> ? (...a: A) => R : never;
};

/** A synchronous backend on one connection, with the explicit transaction steps the gate drives. */
export interface SyncStoreBackend {
  promptRepo: SyncOf<Omit<PromptRepo, 'tx'>>;
  vehicles: SyncOf<VehicleStore>;
  ruleStates: SyncOf<RuleStateStore>;
  deadLetters: SyncOf<DeadLetterStore>;
  outbox: SyncOf<Outbox>;
  keys: SyncOf<KeyStore>;
  audit: SyncOf<AuditLog>;
  campaigns: SyncOf<CampaignStore>;
  begin(): void;
  commit(): void;
  rollback(): void;
  prune(olderThan: number): PruneResult;
  close(): void;
}

/** One transaction at a time on a single connection; calls inside it pass, others wait for it. */
export class TxGate {
  private readonly als = new AsyncLocalStorage<symbol>();
  private held: symbol | null = null;
  private waiters: Array<() => void> = [];

  private mine(): boolean {
    return this.held !== null && this.als.getStore() === this.held;
  }

  private async free(): Promise<void> {
    while (this.held !== null) await new Promise<void>((r) => this.waiters.push(r));
  }

  call<T>(fn: () => T): Promise<T> {
    if (this.held === null || this.mine()) {
      try {
        return Promise.resolve(fn());
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    return this.free().then(() => this.call(fn));
  }

  async transaction<T>(steps: Pick<SyncStoreBackend, 'begin' | 'commit' | 'rollback'>, fn: () => Promise<T>): Promise<T> {
    if (this.mine()) return fn(); // nested: joins the outer transaction
    // check and take with no await between: two transactions starting in one tick must not both pass
    while (this.held !== null) await new Promise<void>((r) => this.waiters.push(r));
    const token = Symbol('tx');
    this.held = token;
    try {
      steps.begin();
      let result: T;
      try {
        result = await this.als.run(token, fn);
      } catch (err) {
        steps.rollback();
        throw err;
      }
      try {
        steps.commit();
      } catch (err) {
        steps.rollback(); // a failed COMMIT (disk full) may leave the transaction open
        throw err;
      }
      return result;
    } finally {
      this.held = null;
      const w = this.waiters;
      this.waiters = [];
      for (const wake of w) wake();
    }
  }
}

function wrap<T extends object>(gate: TxGate, sync: object): T {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(sync)) {
    const f = (sync as Record<string, unknown>)[key];
    if (typeof f === 'function') out[key] = (...args: unknown[]) => gate.call(() => (f as (...a: unknown[]) => unknown)(...args));
  }
  return out as T;
}

export function asyncBackend(sync: SyncStoreBackend): StoreBackend {
  const gate = new TxGate();
  const transaction = <T>(fn: () => Promise<T>): Promise<T> => gate.transaction(sync, fn);
  return {
    promptRepo: { ...wrap<Omit<PromptRepo, 'tx'>>(gate, sync.promptRepo), tx: transaction },
    vehicles: wrap(gate, sync.vehicles),
    ruleStates: wrap(gate, sync.ruleStates),
    deadLetters: wrap(gate, sync.deadLetters),
    outbox: wrap(gate, sync.outbox),
    keys: wrap(gate, sync.keys),
    audit: wrap(gate, sync.audit),
    campaigns: wrap(gate, sync.campaigns),
    transaction,
    prune: (olderThan) => gate.call(() => sync.prune(olderThan)),
    close: () => gate.call(() => sync.close()),
  };
}
