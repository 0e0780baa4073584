// Presence writes in groups (ingest/inbound/presence.ts): a mass reconnect is a few transactions,
// not one fsynced transaction per vehicle; a write the store refuses fails alone.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PresenceWriter } from '../../ingest/inbound/presence.js';
import { createMemoryStores, openSqliteStores } from '../../ingest/stores.js';
import type { Stores } from '../../ingest/store/ports.js';

const dirs: string[] = [];
const open: Stores[] = [];
afterEach(async () => {
  for (const s of open.splice(0)) await s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function sqlite(): Stores {
  const dir = mkdtempSync(join(tmpdir(), 'odopulse-presence-'));
  dirs.push(dir);
  const s = openSqliteStores(dir);
  open.push(s);
  return s;
}

const vin = (i: number) => `LPRES${String(i).padStart(12, '0')}`;

describe.each([
  ['SQLite', sqlite],
  ['memory', createMemoryStores],
])('presence writer (%s)', (_name, make) => {
  it('writes a burst of births in one transaction, every one applied', async () => {
    const stores = make();
    const w = new PresenceWriter(stores);
    const at = Date.now();
    // 2,500 at once: groups of at most 1,000
    await Promise.all(Array.from({ length: 2500 }, (_, i) => w.write(vin(i), true, { agentVersion: '1.2.3', configVersion: 4, at })));
    expect(w.commits).toBe(3);
    for (const i of [0, 999, 1000, 2499])
      expect(await stores.vehicles.online(vin(i))).toMatchObject({
        online: true,
        since: new Date(at).toISOString(),
        agentVersion: '1.2.3',
      });
    // a will later: offline, its own group
    await w.write(vin(7), false, { at: at + 1000 });
    expect(w.commits).toBe(4);
    expect(await stores.vehicles.online(vin(7))).toMatchObject({
      online: false,
      since: new Date(at + 1000).toISOString(),
      agentVersion: '1.2.3',
    });
  });

  it('a write the store refuses fails alone; the rest of its group is stored', async () => {
    const stores = make();
    const real = stores.vehicles.setOnline.bind(stores.vehicles);
    stores.vehicles.setOnline = async (v, online, info) => {
      if (v === vin(3)) throw new Error('refused by the test');
      return real(v, online, info);
    };
    const w = new PresenceWriter(stores);
    const at = Date.now();
    const outcomes = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => w.write(vin(i), true, { at })));
    expect(outcomes.map((o) => o.status)).toEqual(outcomes.map((_, i) => (i === 3 ? 'rejected' : 'fulfilled')));
    expect((outcomes[3] as PromiseRejectedResult).reason).toMatchObject({ message: 'refused by the test' });
    for (let i = 0; i < 10; i++) expect((await stores.vehicles.online(vin(i)))?.online ?? false).toBe(i !== 3);
  });
});
