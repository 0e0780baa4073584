// The vehicle's telemetry sequence view (boot id, last seq, gaps): kept by both store backends,
// shown in GET /api/v1/vehicles/{vin}; and HMI timing that never throws on a stored bad time zone.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { HmiDelivery, localTime } from '../../ingest/prompts/hmi.js';
import { createMemoryStores, openSqliteStores } from '../../ingest/stores.js';
import type { Stores } from '../../ingest/store/ports.js';
import { VSS } from '../../proto/signals.js';
import { makeHarness, T0, VIN_A, VIN_B } from './http/harness.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

describe.each([
  ['memory', () => createMemoryStores()],
  [
    'sqlite',
    () => {
      const d = mkdtempSync(join(tmpdir(), 'vehicle-sequence-'));
      dirs.push(d);
      return openSqliteStores(d);
    },
  ],
] as const)('VehicleStore sequence (%s)', (_name, open) => {
  it('is null before the first batch, then the last written state of each vehicle', async () => {
    const stores: Stores = open();
    expect(await stores.vehicles.sequence(VIN_A)).toBeNull();
    await stores.vehicles.setSequences(
      [
        { vin: VIN_A, bootId: 'a', lastSeq: 500, gaps: 0 },
        { vin: VIN_B, bootId: 'x', lastSeq: 3, gaps: 1 },
      ],
      T0,
    );
    await stores.vehicles.setSequences([{ vin: VIN_A, bootId: 'b', lastSeq: 1, gaps: 2 }], T0 + 1);
    expect(await stores.vehicles.sequence(VIN_A)).toEqual({ bootId: 'b', lastSeq: 1, gaps: 2 });
    expect(await stores.vehicles.sequence(VIN_B)).toEqual({ bootId: 'x', lastSeq: 3, gaps: 1 });
    await stores.close();
  });
});

describe('GET /api/v1/vehicles/:vin sequence', () => {
  it('is null before the first batch and shows boot id, last seq and gaps after', async () => {
    const h = await makeHarness();
    try {
      await h.register(VIN_A);
      expect((await h.app.inject(`/api/v1/vehicles/${VIN_A}`)).json().sequence).toBeNull();
      await h.stores.vehicles.setSequences([{ vin: VIN_A, bootId: 'boot-b', lastSeq: 7, gaps: 2 }], T0);
      const res = await h.app.inject(`/api/v1/vehicles/${VIN_A}`);
      expect(res.statusCode).toBe(200);
      expect(res.json().sequence).toEqual({ bootId: 'boot-b', lastSeq: 7, gaps: 2 });
    } finally {
      await h.close();
    }
  });
});

describe('HMI timing with a stored time zone that is not valid', () => {
  it('localTime never throws: an unknown zone is taken as UTC', () => {
    const t = Date.parse('2026-03-01T15:30:00Z');
    expect(localTime(t, 'Mars/Olympus_Mons')).toEqual(localTime(t, 'UTC'));
  });

  it("delivery falls back to the locale's zone and counts it", async () => {
    const stores = createMemoryStores();
    // as stored before the API checked zones
    const bad = {
      model: 'M',
      powertrain: 'BEV',
      deliveryDate: '2026-01-01',
      dealerId: 'd1',
      locale: 'zh-CN',
      vehicleType: 'passenger',
    } as const;
    await stores.vehicles.upsert(VIN_A, { ...bad, timeZone: 'Not/AZone' }, T0);
    await stores.vehicles.setOnline(VIN_A, true, { at: T0 });
    const noonShanghai = Date.parse('2026-03-02T04:00:00Z');
    await stores.prompts.applyRuleEvents(
      VIN_A,
      [
        {
          type: 'open',
          prompt: {
            kind: 'maintenance.upcoming',
            dedupKey: 'k',
            severity: 'info',
            audience: ['hmi'],
            urgent: false,
            ts: noonShanghai,
            evidence: {},
            params: {},
            value: 1,
          },
        },
      ],
      () => ({ title: 't', body: 'b', locale: 'zh-CN' }),
      'd1',
      noonShanghai,
    );
    const sent: string[] = [];
    const invalid: string[] = [];
    const hmi = new HmiDelivery({
      stores,
      link: {
        kind: 'embedded',
        confirmsDelivery: true,
        publish: async (topic) => void sent.push(topic),
        ready: () => true,
        connectedClients: () => 1,
        close: async () => {},
      },
      prefix: 'v1',
      clock: { now: () => noonShanghai },
      dailyCap: 3,
      latest: () => ({ [VSS.lowVoltageSystemState]: 'OFF', [VSS.speed]: 0 }),
      onChanges: () => {},
      onInvalidTimeZone: (vin, tz) => void invalid.push(`${vin} ${tz}`),
    });
    await hmi.deliver([VIN_A]);
    expect(sent).toEqual([`v1/vehicles/${VIN_A}/prompts`]);
    expect(hmi.invalidTimeZones).toBeGreaterThan(0);
    expect(invalid[0]).toBe(`${VIN_A} Not/AZone`);
  });
});
