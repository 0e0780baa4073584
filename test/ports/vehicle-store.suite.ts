// VehicleStore behaviour, run against every implementation.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { VehicleProfile } from '../../proto/domain.js';
import type { Stores } from '../../ingest/store/ports.js';
import type { VehicleStore } from '../../ingest/store/ports.js';
import { InvalidCursorError } from '../../ingest/store/paging.js';
import { HOUR, T0, VIN_A, VIN_B } from './fixtures.js';

const profile = (over: Partial<VehicleProfile> = {}): VehicleProfile => ({
  model: 'Aion S',
  powertrain: 'BEV',
  deliveryDate: '2026-01-15',
  dealerId: 'D1',
  locale: 'zh-CN',
  vehicleType: 'passenger',
  ...over,
});

export function vehicleStoreSuite(name: string, make: () => Stores | Promise<Stores>): void {
  describe(`VehicleStore (${name})`, () => {
    let stores: Stores;
    let vs: VehicleStore;
    beforeEach(async () => {
      stores = await make();
      vs = stores.vehicles;
    });
    afterEach(async () => {
      await stores.close();
    });

    it('upserts a profile and keeps createdAt on update', async () => {
      const r = await vs.upsert(VIN_A, profile(), T0);
      expect(r).toMatchObject({
        vin: VIN_A,
        model: 'Aion S',
        dealerId: 'D1',
        createdAt: new Date(T0).toISOString(),
        updatedAt: new Date(T0).toISOString(),
      });
      const u = await vs.upsert(VIN_A, profile({ dealerId: 'D2', quietHours: { start: '22:00', end: '07:00' } }), T0 + HOUR);
      expect(u).toMatchObject({
        dealerId: 'D2',
        createdAt: new Date(T0).toISOString(),
        updatedAt: new Date(T0 + HOUR).toISOString(),
        quietHours: { start: '22:00', end: '07:00' },
      });
      expect(await vs.get(VIN_A)).toEqual(u);
      expect(await vs.get(VIN_B)).toBeUndefined();
    });

    it('lists by VIN with a cursor and a dealer filter', async () => {
      const vins = ['LSVAU2180N2183291', 'LSVAU2180N2183292', 'LSVAU2180N2183293', 'LSVAU2180N2183294', 'LSVAU2180N2183295'];
      for (const [i, v] of [...vins].reverse().entries()) await vs.upsert(v, profile({ dealerId: i % 2 ? 'D1' : 'D2' }), T0);
      const p1 = await vs.list({ limit: 2 });
      expect(p1.items.map((v) => v.vin)).toEqual(vins.slice(0, 2));
      const p2 = await vs.list({ limit: 2, cursor: p1.nextCursor! });
      const p3 = await vs.list({ limit: 2, cursor: p2.nextCursor! });
      expect([...p2.items, ...p3.items].map((v) => v.vin)).toEqual(vins.slice(2));
      expect(p3.nextCursor).toBeNull();
      expect((await vs.list({ limit: 10, dealerId: 'D1' })).items.map((v) => v.vin)).toEqual([vins[1], vins[3]]);
      await expect(vs.list({ limit: 2, cursor: '%%%' })).rejects.toThrow(InvalidCursorError);
    });

    it('tracks online status; since moves only when the state changes', async () => {
      expect(await vs.online(VIN_A)).toEqual({ online: false, since: null, agentVersion: null, configVersion: null });
      await vs.setOnline(VIN_A, true, { agentVersion: '1.2.0', configVersion: 3, at: T0 });
      await vs.setOnline(VIN_A, true, { at: T0 + 1000 });
      expect(await vs.online(VIN_A)).toEqual({ online: true, since: new Date(T0).toISOString(), agentVersion: '1.2.0', configVersion: 3 });
      await vs.setOnline(VIN_A, false, { at: T0 + HOUR });
      expect(await vs.online(VIN_A)).toMatchObject({ online: false, since: new Date(T0 + HOUR).toISOString(), agentVersion: '1.2.0' });
    });

    it('resetOnline takes every vehicle offline (since now for those online), keeping versions', async () => {
      await vs.setOnline(VIN_A, true, { agentVersion: '1.2.0', configVersion: 3, at: T0 });
      await vs.setOnline(VIN_B, false, { agentVersion: '1.1.0', at: T0 + 1000 });
      expect(await vs.resetOnline(T0 + HOUR)).toBe(1);
      expect(await vs.online(VIN_A)).toEqual({
        online: false,
        since: new Date(T0 + HOUR).toISOString(),
        agentVersion: '1.2.0',
        configVersion: 3,
      });
      expect(await vs.online(VIN_B)).toMatchObject({ online: false, since: new Date(T0 + 1000).toISOString(), agentVersion: '1.1.0' });
      expect(await vs.resetOnline(T0 + 2 * HOUR)).toBe(0);
      await vs.setOnline(VIN_A, true, { at: T0 + 3 * HOUR });
      expect(await vs.online(VIN_A)).toMatchObject({ online: true, since: new Date(T0 + 3 * HOUR).toISOString() });
    });

    it('keeps the latest segments per vehicle', async () => {
      expect(await vs.segments(VIN_A)).toBeNull();
      await vs.setSegments(VIN_A, { stage: 'new_owner', activity: 'active', maturity: 'novice' }, T0);
      await vs.setSegments(VIN_A, { stage: 'break_in', activity: 'active', maturity: 'novice' }, T0 + HOUR);
      expect(await vs.segments(VIN_A)).toEqual({ stage: 'break_in', activity: 'active', maturity: 'novice' });
      expect(await vs.segments(VIN_B)).toBeNull();
    });

    it('stores service records per vehicle in date order with ids', async () => {
      const id1 = await vs.addServiceRecord(VIN_A, { date: '2026-06-01', odometer: 5100, items: ['oil', 'filter'] }, T0);
      const id2 = await vs.addServiceRecord(VIN_A, { date: '2026-02-01', odometer: 900, items: [] }, T0);
      await vs.addServiceRecord(VIN_B, { date: '2026-03-01', odometer: 10, items: ['x'] }, T0);
      expect(id1).not.toBe(id2);
      expect(await vs.serviceRecords(VIN_A)).toEqual([
        { id: id2, date: '2026-02-01', odometer: 900, items: [] },
        { id: id1, date: '2026-06-01', odometer: 5100, items: ['oil', 'filter'] },
      ]);
      expect(await vs.serviceRecords('LSVAU2180N2183299')).toEqual([]);
    });

    it('stores charging sessions once per (vin, start) and queries by start time', async () => {
      const s = { vin: VIN_A, start: T0, end: T0 + HOUR, startSoc: 20, endSoc: 80, energyKwh: 36, type: 'AC' as const };
      await vs.addChargingSession(s);
      await vs.addChargingSession(s); // derived twice (replay): still one
      await vs.addChargingSession({ ...s, start: T0 + 5 * HOUR, end: T0 + 6 * HOUR, type: 'DC' });
      await vs.addChargingSession({ ...s, vin: VIN_B });
      expect(await vs.chargingSessions(VIN_A, T0, T0 + 10 * HOUR)).toEqual([
        s,
        { ...s, start: T0 + 5 * HOUR, end: T0 + 6 * HOUR, type: 'DC' },
      ]);
      expect(await vs.chargingSessions(VIN_A, T0 + 1, T0 + 5 * HOUR)).toEqual([]);
    });
  });
}
