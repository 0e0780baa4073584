// The PostgreSQL stores against the shared port suites (one server for the file, a fresh schema per
// factory call), plus what only a shared database shows: migrations once across instances starting
// together, a newer schema refused, outbox claims between instances, change seqs in commit order,
// and a situation opened once by concurrent transactions.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgresBackend, PG_SCHEMA_VERSION, StoreConflictError } from '../../ingest/store/index.js';
import type { Stores } from '../../ingest/store/ports.js';
import { openPostgresStores } from '../../ingest/stores.js';
import { authStoreSuite } from '../ports/auth-store.suite.js';
import { campaignStoreSuite } from '../ports/campaign-store.suite.js';
import { T0, VIN_A, VIN_B, open, render } from '../ports/fixtures.js';
import { outboxSuite } from '../ports/outbox.suite.js';
import { promptStoreSuite } from '../ports/prompt-store.suite.js';
import { storesSuite } from '../ports/stores.suite.js';
import { vehicleStoreSuite } from '../ports/vehicle-store.suite.js';
import { startPostgres, type PostgresHandle } from '../support/postgres.js';
import { waitFor } from '../support/wait.js';
import { toStateJson } from '../../rules/state-json.js';

let server: PostgresHandle;
let url: string;
/** The shared suites' schema, migrated once; emptied by each factory call (cheaper than migrating a new one each time). */
const SUITE = 'suite';
let admin: pg.Client;
let wipe: string;
beforeAll(async () => {
  server = await startPostgres();
  url = await server.createDatabase('odopulse');
  await (await openPostgresBackend(url, { instanceId: 'i1', schema: SUITE })).close();
  admin = new pg.Client({ connectionString: url, options: `-c search_path=${SUITE}` });
  await admin.connect();
  const tables = await admin.query<{ t: string }>(
    "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE' AND table_name <> 'schema_version'",
    [SUITE],
  );
  wipe = tables.rows.map((r) => `DELETE FROM ${r.t};`).join(' ');
});
afterAll(async () => {
  await admin?.end();
  await server?.stop();
});

let n = 0;
/** A new schema for a test of its own (migrated when first opened). */
const schema = () => `t${++n}`;
const fresh = async () => {
  await admin.query(wipe); // the previous test's stores are closed by now (the suites' afterEach)
  return openPostgresStores(url, { instanceId: 'i1', schema: SUITE, poolSize: 4 });
};

promptStoreSuite('postgres', fresh);
vehicleStoreSuite('postgres', fresh);
outboxSuite('postgres', fresh);
storesSuite('postgres', fresh);
authStoreSuite('postgres', fresh);
campaignStoreSuite('postgres', fresh);

/** A raw connection to one schema, to look at (or tamper with) what the backend wrote. */
async function raw<T>(s: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, options: `-c search_path=${s}` });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Stores of several instances on one schema, closed at the end whatever happens. */
async function cluster<T>(
  s: string,
  instances: Array<{ instanceId: string; claimTtlMs?: number }>,
  fn: (stores: Stores[]) => Promise<T>,
): Promise<T> {
  const all = await Promise.all(instances.map((o) => openPostgresStores(url, { ...o, schema: s, poolSize: 4 })));
  try {
    return await fn(all);
  } finally {
    await Promise.all(all.map((x) => x.close()));
  }
}

function latch(): { promise: Promise<void>; release: () => void } {
  let release!: () => void;
  const promise = new Promise<void>((r) => (release = r));
  return { promise, release };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('PostgreSQL stores: schema', () => {
  it('migrates once when several instances open the same database at the same time', async () => {
    const s = schema();
    const opened = await Promise.all(
      Array.from({ length: 4 }, (_, i) => openPostgresBackend(url, { instanceId: `i${i}`, schema: s, poolSize: 2 })),
    );
    await Promise.all(opened.map((b) => b.close()));
    const versions = await raw(s, async (c) => (await c.query('SELECT version FROM schema_version ORDER BY version')).rows);
    expect(versions).toEqual(Array.from({ length: PG_SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
    // Opening an up-to-date schema runs nothing again (a second CREATE TABLE would fail).
    await (await openPostgresBackend(url, { instanceId: 'again', schema: s })).close();
    expect((await raw(s, (c) => c.query('SELECT count(*)::int AS n FROM schema_version'))).rows[0].n).toBe(PG_SCHEMA_VERSION);
  });

  it("without a schema option, uses the connection's default schema (public of a fresh database)", async () => {
    const dbUrl = await server.createDatabase('plain');
    const s = await openPostgresStores(dbUrl, { instanceId: 'i' });
    try {
      await s.deadLetters.add({ topic: 't', clientId: null, reason: 'r', payload: new Uint8Array([1]), at: T0 });
    } finally {
      await s.close();
    }
    const c = new pg.Client({ connectionString: dbUrl });
    await c.connect();
    try {
      expect((await c.query('SELECT count(*)::int AS n FROM public.dead_letters')).rows[0].n).toBe(1);
      expect((await c.query('SELECT max(version) AS v FROM public.schema_version')).rows[0].v).toBe(PG_SCHEMA_VERSION);
    } finally {
      await c.end();
    }
  });

  it('refuses a database from a newer schema with a clear message', async () => {
    const s = schema();
    await (await openPostgresBackend(url, { instanceId: 'i', schema: s })).close();
    await raw(s, (c) => c.query('INSERT INTO schema_version (version) VALUES ($1)', [PG_SCHEMA_VERSION + 1]));
    await expect(openPostgresBackend(url, { instanceId: 'i', schema: s })).rejects.toThrow(/newer than this build knows/);
  });

  it('keeps everything across close and reopen, times as numbers, payload bytes exact', async () => {
    const s = schema();
    await cluster(s, [{ instanceId: 'a' }], async ([a]) => {
      await a.prompts.applyRuleEvents(VIN_A, [open()], render, 'D1', T0);
      await a.deadLetters.add({ topic: 't', clientId: null, reason: 'r', payload: new Uint8Array([0, 1, 255]), at: T0 });
      await a.outbox.enqueue([{ id: 'e1', url: 'http://x/', body: '{"\\u0000":"\\ud800"}' }], T0);
    });
    await cluster(s, [{ instanceId: 'b' }], async ([b]) => {
      expect(await b.prompts.applyRuleEvents(VIN_A, [open()], render, 'D1', T0 + 1)).toEqual([]);
      expect((await b.deadLetters.list(1))[0].payloadBase64).toBe(Buffer.from([0, 1, 255]).toString('base64'));
      expect(await b.outbox.due(T0, 10)).toEqual([expect.objectContaining({ id: 'e1', createdAt: T0, body: '{"\\u0000":"\\ud800"}' })]);
    });
  });

  it('the open-dedup index rejects a second open prompt for the same situation even outside the store logic', async () => {
    const s = schema();
    await cluster(s, [{ instanceId: 'a' }], async ([a]) => {
      await a.prompts.applyRuleEvents(VIN_A, [open()], render, 'D1', T0);
    });
    await raw(s, async (c) => {
      const copy = `INSERT INTO prompts SELECT $1, vin, kind, dedup_key, status, hmi_state, audience, dealer_id, urgent, value, created_ms, updated_ms, expires_ms, data FROM prompts`;
      await expect(c.query(copy, ['p_other'])).rejects.toThrow(/prompts_open_dedup/);
      await c.query("UPDATE prompts SET status = 'resolved'");
      await c.query(copy, ['p_other']);
    });
  });
});

describe('PostgreSQL stores: outbox claims between instances', () => {
  const U = 'http://127.0.0.1:1/hook';
  const events = (k: number) => Array.from({ length: k }, (_, i) => ({ id: `e${String(i).padStart(3, '0')}`, url: U, body: '{}' }));

  it('concurrent due() calls of two instances never return the same row while claims are live', async () => {
    await cluster(schema(), [{ instanceId: 'a' }, { instanceId: 'b' }], async ([a, b]) => {
      await a.outbox.enqueue(events(60), T0);
      const got = { a: new Set<string>(), b: new Set<string>() };
      for (let round = 0; round < 6; round++) {
        const calls = [a, b, a, b, a, b].map((s, i) => s.outbox.due(T0, 4).then((rows) => ({ who: i % 2 ? 'b' : 'a', rows })));
        for (const { who, rows } of await Promise.all(calls)) for (const r of rows) got[who as 'a' | 'b'].add(r.id);
        // each delivers some of what it holds, so the next round reaches further rows
        for (const id of [...got.a].slice(0, 2)) await a.outbox.markDelivered(id, U, T0 + 1);
        for (const id of [...got.b].slice(0, 2)) await b.outbox.markDelivered(id, U, T0 + 1);
      }
      expect(got.a.size).toBeGreaterThan(0);
      expect(got.b.size).toBeGreaterThan(0);
      expect([...got.a].filter((id) => got.b.has(id))).toEqual([]);
      // An instance gets its own claimed rows again (as a single instance does), never the other's.
      const heldByA = new Set((await a.outbox.due(T0, 100)).map((e) => e.id));
      const heldByB = new Set((await b.outbox.due(T0, 100)).map((e) => e.id));
      expect([...heldByA].filter((id) => heldByB.has(id))).toEqual([]);
      expect(heldByA.size + heldByB.size).toBe(await a.outbox.pending());
      // Nothing left for b to try: it does not wake for a's rows.
      await b.outbox.markFailed([...heldByB][0], U, 'HTTP 500', T0 + 5000);
      for (const id of [...heldByB].slice(1)) await b.outbox.markDelivered(id, U, T0 + 2);
      expect(await b.outbox.nextDueAt()).toBe(T0 + 5000);
      expect(await a.outbox.nextDueAt()).toBe(0);
    });
  });

  it('a claim that ran out is taken over; a finished row leaves the claim behind', async () => {
    await cluster(schema(), [{ instanceId: 'a', claimTtlMs: 300 }, { instanceId: 'b' }], async ([a, b]) => {
      await a.outbox.enqueue(events(3), T0);
      expect((await a.outbox.due(T0, 2)).map((e) => e.id)).toEqual(['e000', 'e001']);
      expect((await b.outbox.due(T0, 10)).map((e) => e.id)).toEqual(['e002']);
      // a dies mid-delivery: once its claims run out, b takes its rows.
      const taken = await waitFor(async () => (await b.outbox.due(T0, 10)).length === 3, { what: "b taking over a's rows" });
      expect(taken).toBe(true);
      expect(await a.outbox.due(T0, 10)).toEqual([]); // b's claims are live now
      // markFailed clears the claim: the row is anyone's at its next attempt.
      await b.outbox.markFailed('e000', U, 'HTTP 503', T0 + 10);
      expect((await a.outbox.due(T0 + 10, 10)).map((e) => e.id)).toEqual(['e000']);
    });
  });
});

describe('PostgreSQL stores: prompt changes across instances', () => {
  it('change seqs come out in commit order: a reader paging changesSince never misses one', async () => {
    await cluster(schema(), [{ instanceId: 'a' }, { instanceId: 'b' }, { instanceId: 'c' }], async (all) => {
      const reader = all[0];
      const seen: number[] = [];
      let stop = false;
      const reading = (async () => {
        let after = 0;
        while (!stop) {
          const page = await reader.prompts.changesSince(after, undefined, 1000);
          for (const c of page) seen.push(c.seq);
          if (page.length) after = page[page.length - 1].seq;
          await sleep(1);
        }
      })();
      const writers = all.map((s, w) =>
        (async () => {
          for (let i = 0; i < 12; i++) {
            await s.transaction(async () => {
              await s.prompts.applyRuleEvents(w % 2 ? VIN_A : VIN_B, [open({ dedupKey: `w${w}-${i}` })], render, 'D1', T0 + i);
              await sleep(Math.floor(Math.random() * 8)); // commit a while after taking the seq
              await s.outbox.enqueue([{ id: `w${w}-${i}`, url: 'http://x/', body: '{}' }], T0);
            });
          }
        })(),
      );
      await Promise.all(writers);
      await sleep(20);
      stop = true;
      await reading;
      const final = (await reader.prompts.changesSince(0, undefined, 1000)).map((c) => c.seq);
      expect(final).toHaveLength(36);
      // whatever the reader saw was final and in order, and after its last page it had everything
      const rest = (await reader.prompts.changesSince(seen.at(-1) ?? 0, undefined, 1000)).map((c) => c.seq);
      expect([...seen, ...rest]).toEqual(final);
    });
  });

  it('a transaction appending a change holds back the others until it commits', async () => {
    await cluster(schema(), [{ instanceId: 'a' }, { instanceId: 'b' }], async ([a, b]) => {
      const goOn = latch();
      const appended = latch();
      const first = a.transaction(async () => {
        const [c] = await a.prompts.applyRuleEvents(VIN_A, [open({ dedupKey: 'first' })], render, 'D1', T0);
        appended.release();
        await goOn.promise;
        return c.seq;
      });
      await appended.promise;
      let secondDone = false;
      const second = b.prompts.applyRuleEvents(VIN_B, [open({ dedupKey: 'second' })], render, 'D1', T0).then((cs) => {
        secondDone = true;
        return cs[0].seq;
      });
      try {
        await sleep(200);
        expect(secondDone).toBe(false); // waiting for the first one's commit
        expect(await b.prompts.changesSince(0, undefined, 10)).toEqual([]);
      } finally {
        goOn.release(); // a failed expectation must not leave the transaction (and close()) hanging
      }
      const [s1, s2] = await Promise.all([first, second]);
      expect(s2).toBeGreaterThan(s1);
      expect((await b.prompts.changesSince(0, undefined, 10)).map((c) => c.seq)).toEqual([s1, s2]);
    });
  });

  it('two instances opening the same situation at once: one creates it, the other gets []', async () => {
    await cluster(schema(), [{ instanceId: 'a' }, { instanceId: 'b' }], async ([a, b]) => {
      for (let round = 0; round < 15; round++) {
        const ev = [open({ dedupKey: `k${round}` })];
        const [ra, rb] = await Promise.all([
          a.prompts.applyRuleEvents(VIN_A, ev, render, 'D1', T0 + round),
          b.prompts.applyRuleEvents(VIN_A, ev, render, 'D2', T0 + round),
        ]);
        expect([ra.length, rb.length].sort()).toEqual([0, 1]);
      }
      // also inside callers' transactions whose first store call opens it
      const [ta, tb] = await Promise.all(
        [a, b].map((s) =>
          s.transaction(async () => {
            const cs = await s.prompts.applyRuleEvents(VIN_B, [open()], render, 'D1', T0);
            await s.ruleStates.save([toStateJson({ vin: VIN_B, lastTs: T0, latest: {}, latestTs: T0, activeDtcs: [], families: {} })]);
            return cs.length;
          }),
        ),
      );
      expect([ta, tb].sort()).toEqual([0, 1]);
      const open16 = (await a.prompts.list({ limit: 100, status: 'open' })).items;
      expect(open16).toHaveLength(16);
      expect(new Set(open16.map((p) => `${p.vin} ${p.dedupKey}`)).size).toBe(16);
    });
  });

  it('a transaction whose snapshot predates the winner: it rejects with a StoreConflictError, and run again it gets []', async () => {
    await cluster(schema(), [{ instanceId: 'a' }, { instanceId: 'b' }], async ([a, b]) => {
      const state = { vin: VIN_A, lastTs: T0, latest: {}, latestTs: T0, activeDtcs: [], families: {} };
      const snapshotTaken = latch();
      const goOn = latch();
      // the rules runner's shape: other writes first, the prompts afterwards
      const runnerStep = () =>
        a.transaction(async () => {
          await a.ruleStates.save([toStateJson(state)]);
          snapshotTaken.release();
          await goOn.promise;
          return a.prompts.applyRuleEvents(VIN_A, [open()], render, 'D1', T0);
        });
      const loser = runnerStep();
      await snapshotTaken.promise;
      try {
        expect(await b.prompts.applyRuleEvents(VIN_A, [open()], render, 'D1', T0)).toHaveLength(1);
      } finally {
        goOn.release();
      }
      await expect(loser).rejects.toThrow(StoreConflictError);
      expect(await runnerStep()).toEqual([]);
      expect((await a.prompts.list({ limit: 10 })).items).toHaveLength(1);
      expect(await a.ruleStates.load(VIN_A)).toEqual(state);
    });
  });
});
