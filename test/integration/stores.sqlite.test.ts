// The SQLite stores against the shared port suites, plus what only a file can show: durability
// across close and reopen, and the schema version.
import { Database } from '../../ingest/store/sqlite/driver.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openSqliteStores } from '../../ingest/stores.js';
import { SCHEMA_VERSION } from '../../ingest/store/sqlite/db.js';
import { authStoreSuite } from '../ports/auth-store.suite.js';
import { campaignStoreSuite } from '../ports/campaign-store.suite.js';
import { outboxSuite } from '../ports/outbox.suite.js';
import { promptStoreSuite } from '../ports/prompt-store.suite.js';
import { storesSuite } from '../ports/stores.suite.js';
import { vehicleStoreSuite } from '../ports/vehicle-store.suite.js';
import { T0, VIN_A, open, render } from '../ports/fixtures.js';
import { toStateJson } from '../../rules/state-json.js';

const root = mkdtempSync(join(tmpdir(), 'odopulse-sqlite-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => openSqliteStores(join(root, `db${++n}`));

promptStoreSuite('sqlite', fresh);
vehicleStoreSuite('sqlite', fresh);
outboxSuite('sqlite', fresh);
storesSuite('sqlite', fresh);
authStoreSuite('sqlite', fresh);
campaignStoreSuite('sqlite', fresh);

describe('SQLite stores on disk', () => {
  it('keeps everything across close and reopen, and the dedup key stays closed', async () => {
    const dir = join(root, 'reopen');
    const a = openSqliteStores(dir);
    const [created] = await a.prompts.applyRuleEvents(VIN_A, [open()], render, 'D1', T0);
    await a.prompts.markHmiSent(created.promptId, T0 + 1);
    await a.prompts.markHmiDelivered(created.promptId, VIN_A, T0 + 1);
    await a.vehicles.upsert(
      VIN_A,
      { model: 'M', powertrain: 'BEV', deliveryDate: '2026-01-01', dealerId: 'D1', locale: 'en', vehicleType: 'passenger' },
      T0,
    );
    await a.ruleStates.save([toStateJson({ vin: VIN_A, lastTs: T0, latest: {}, latestTs: T0, activeDtcs: [], families: {} })]);
    await a.outbox.enqueue([{ id: 'e1', url: 'http://x/', body: '{}' }], T0);
    await a.deadLetters.add({ topic: 't', clientId: null, reason: 'r', payload: new Uint8Array([1, 2]), at: T0 });
    const seqBefore = (await a.prompts.changesSince(0, undefined, 10)).at(-1)!.seq;
    await a.close();

    const b = openSqliteStores(dir);
    try {
      expect(await b.prompts.get(created.promptId)).toMatchObject({ status: 'delivered', hmiState: 'delivered' });
      expect(await b.prompts.applyRuleEvents(VIN_A, [open()], render, 'D1', T0 + 2)).toEqual([]); // survives restarts without repeats
      expect((await b.vehicles.get(VIN_A))?.model).toBe('M');
      expect((await b.ruleStates.load(VIN_A))?.lastTs).toBe(T0);
      expect((await b.outbox.due(T0, 10)).map((e) => e.id)).toEqual(['e1']);
      expect(await b.deadLetters.count()).toBe(1);
      const [next] = await b.prompts.applyRuleEvents(VIN_A, [open({ dedupKey: 'k2' })], render, 'D1', T0 + 3);
      expect(next.seq).toBeGreaterThan(seqBefore);
    } finally {
      await b.close();
    }
  });

  it('uses WAL, full sync and records the schema version', async () => {
    const dir = join(root, 'pragmas');
    await openSqliteStores(dir).close();
    const db = new Database(join(dir, 'odopulse.db'), { readonly: true });
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    } finally {
      db.close();
    }
    // Reopening an up-to-date file runs no migration again (it would fail on CREATE TABLE).
    await openSqliteStores(dir).close();
  });

  it('migration 4 gives a version-3 outbox its states: delivered rows delivered, the rest pending; due and listings use the new indexes', async () => {
    const dir = join(root, 'outbox-v3');
    await openSqliteStores(dir).close();
    // Back to the version-3 outbox (migration 1's table and indexes), with one delivered and one pending row.
    const db = new Database(join(dir, 'odopulse.db'));
    db.exec(`
      DROP TABLE campaign_deliveries; DROP TABLE campaigns;
      DROP INDEX outbox_state_list;
      ALTER TABLE outbox DROP COLUMN state; ALTER TABLE outbox DROP COLUMN first_failed_ms; ALTER TABLE outbox DROP COLUMN dead_ms;
      CREATE INDEX outbox_due ON outbox (next_attempt_ms) WHERE delivered_ms IS NULL;
      CREATE INDEX outbox_order ON outbox (created_ms) WHERE delivered_ms IS NULL;
      INSERT INTO outbox (id, url, body, attempts, next_attempt_ms, created_ms, delivered_ms, last_error)
        VALUES ('sent', 'http://x/', '{}', 0, ${T0}, ${T0}, ${T0 + 5}, NULL), ('failing', 'http://x/', '{}', 7, ${T0 + 60_000}, ${T0}, NULL, 'HTTP 503');
    `);
    db.pragma('user_version = 3');
    db.close();

    const s = openSqliteStores(dir);
    try {
      expect(await s.outbox.get('sent', 'http://x/')).toMatchObject({ state: 'delivered', deliveredAt: T0 + 5 });
      expect(await s.outbox.get('failing', 'http://x/')).toMatchObject({
        state: 'pending',
        attempts: 7,
        lastError: 'HTTP 503',
        firstFailedAt: null,
      });
      expect(await s.outbox.pending()).toBe(1);
      expect((await s.outbox.due(T0 + 60_000, 10)).map((e) => e.id)).toEqual(['failing']);
    } finally {
      await s.close();
    }
    const check = new Database(join(dir, 'odopulse.db'), { readonly: true });
    try {
      expect(check.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      const plan = (sql: string, ...args: unknown[]) =>
        (check.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as Array<{ detail: string }>).map((r) => r.detail).join('; ');
      const due = plan(
        "SELECT * FROM outbox WHERE state = 'pending' AND (attempts = 0 OR next_attempt_ms <= ?) ORDER BY created_ms, rowid LIMIT ?",
        T0,
        10,
      );
      expect(due).toContain('USING INDEX outbox_state_list (state=?)'); // only ties of created_ms are sorted
      const list = plan(
        'SELECT * FROM outbox WHERE state = ? AND (created_ms, id, url) > (?, ?, ?) ORDER BY created_ms, id, url LIMIT ?',
        'dead',
        0,
        '',
        '',
        10,
      );
      expect(list).toContain('USING INDEX outbox_state_list (state=? AND (created_ms,id,url)>(?,?,?))');
      expect(list).not.toContain('TEMP B-TREE');
    } finally {
      check.close();
    }
  });

  it('refuses a file from a newer schema with a clear message', async () => {
    const dir = join(root, 'newer');
    await openSqliteStores(dir).close();
    const db = new Database(join(dir, 'odopulse.db'));
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    expect(() => openSqliteStores(dir)).toThrow(/newer than this build knows/);
  });

  it('the open-dedup index rejects a second open prompt for the same situation even outside the store logic', async () => {
    const dir = join(root, 'index');
    const s = openSqliteStores(dir);
    await s.prompts.applyRuleEvents(VIN_A, [open()], render, 'D1', T0);
    await s.close();
    const db = new Database(join(dir, 'odopulse.db'));
    try {
      const row = db.prepare('SELECT * FROM prompts').get() as Record<string, unknown>;
      expect(() =>
        db
          .prepare(
            'INSERT INTO prompts SELECT ?, vin, kind, dedup_key, status, hmi_state, audience, dealer_id, urgent, value, created_ms, updated_ms, expires_ms, data FROM prompts',
          )
          .run('p_other'),
      ).toThrow(/UNIQUE/);
      db.prepare("UPDATE prompts SET status = 'resolved'").run();
      db.prepare(
        'INSERT INTO prompts SELECT ?, vin, kind, dedup_key, status, hmi_state, audience, dealer_id, urgent, value, created_ms, updated_ms, expires_ms, data FROM prompts',
      ).run('p_other');
      expect(row.dedup_key).toBe('charging.low_soc');
    } finally {
      db.close();
    }
  });
});
