// The TelemetryStore contract, run against every implementation (memory and real influxd), so the
// in-memory store used by unit tests behaves like the one in production.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';
import type { TelemetryStore } from '../../ingest/store/ports.js';

const A = 'LSVAU2180N2183294';
const B = 'WVWZZZ1JZXW000001';
/** 2026-03-01T00:00:00Z, a multiple of every bucket size used below. */
const T0 = Date.UTC(2026, 2, 1);
const tagsOf = (vin: string): Record<string, string> => ({
  model: vin === A ? 'Aion S' : 'ID.3',
  powertrain: 'BEV',
  dealer: vin === A ? 'D-001' : 'D-002',
});

function speeds(vin: string, n: number, start = T0, stepMs = 1000): Reading[] {
  return Array.from({ length: n }, (_, i) => ({ vin, ts: start + i * stepMs, signals: { [VSS.speed]: i * 2 } }));
}

export function telemetryStoreSuite(name: string, make: () => Promise<{ store: TelemetryStore; cleanup(): Promise<void> }>): void {
  describe(`TelemetryStore contract: ${name}`, () => {
    let store: TelemetryStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await make());
    });
    afterEach(async () => {
      await cleanup();
    });

    const all = { from: T0 - 3_600_000, to: T0 + 3_600_000 };

    it('counts what was written and flushed, per vehicle and in total, over [from, to)', async () => {
      await store.write([...speeds(A, 10), ...speeds(B, 5)], tagsOf);
      await store.flush();
      expect(await store.count({ vin: A, signal: VSS.speed, ...all })).toBe(10);
      expect(await store.count({ vin: B, signal: VSS.speed, ...all })).toBe(5);
      expect(await store.count({ signal: VSS.speed, ...all })).toBe(15);
      // to is exclusive: T0 .. T0+4s holds five readings of A and five of B
      expect(await store.count({ vin: A, signal: VSS.speed, from: T0, to: T0 + 5000 })).toBe(5);
      expect(await store.count({ vin: A, signal: VSS.soc, ...all })).toBe(0);
      expect(await store.count({ vin: A, signal: VSS.speed, from: T0, to: T0 })).toBe(0);
      expect(await store.ping()).toBe(true);
    });

    it('latest gives the newest time and the last value of every field', async () => {
      await store.write(
        [
          { vin: A, ts: T0, signals: { [VSS.speed]: 10, [VSS.soc]: 80.5, [VSS.lowVoltageSystemState]: 'ON' } },
          { vin: A, ts: T0 + 1000, signals: { [VSS.speed]: 20 } },
          { vin: A, ts: T0 + 2000, signals: { [VSS.isCharging]: true } },
          { vin: B, ts: T0 + 9000, signals: { [VSS.speed]: 99 } },
        ],
        tagsOf,
      );
      await store.flush();
      const l = await store.latest(A);
      expect(l).toEqual({
        ts: T0 + 2000,
        signals: { [VSS.speed]: 20, [VSS.soc]: 80.5, [VSS.lowVoltageSystemState]: 'ON', [VSS.isCharging]: true },
      });
      expect(await store.latest('SALGA2EV9HA000001')).toBeUndefined();
    });

    it('history returns raw rows in time order, only where the signal was reported', async () => {
      await store.write(
        [
          { vin: A, ts: T0 + 2000, signals: { [VSS.speed]: 30 } },
          { vin: A, ts: T0, signals: { [VSS.speed]: 10 } },
          { vin: A, ts: T0 + 1000, signals: { [VSS.soc]: 50 } },
          { vin: A, ts: T0 + 3000, signals: { [VSS.speed]: 40 } },
        ],
        tagsOf,
      );
      await store.flush();
      expect(await store.history({ vin: A, signal: VSS.speed, from: T0, to: T0 + 3000 })).toEqual([
        { ts: T0, value: 10 },
        { ts: T0 + 2000, value: 30 },
      ]);
    });

    it('downsamples numbers with mean and the rest with last, in epoch-aligned buckets, null when empty', async () => {
      const readings: Reading[] = [
        { vin: A, ts: T0 + 1000, signals: { [VSS.soc]: 10, [VSS.lowVoltageSystemState]: 'OFF', [VSS.isCharging]: true } },
        { vin: A, ts: T0 + 6000, signals: { [VSS.soc]: 20, [VSS.lowVoltageSystemState]: 'ON', [VSS.isCharging]: false } },
        { vin: A, ts: T0 + 9999, signals: { [VSS.soc]: 33 } },
        // bucket T0+10s .. T0+20s is empty
        { vin: A, ts: T0 + 25_000, signals: { [VSS.soc]: 70, [VSS.lowVoltageSystemState]: 'ACC' } },
        { vin: A, ts: T0 + 30_000, signals: { [VSS.soc]: 99 } },
      ];
      await store.write(readings, tagsOf);
      await store.flush();
      // from in the middle of a bucket: the bucket still starts on the epoch grid; to is exclusive
      const soc = await store.history({ vin: A, signal: VSS.soc, from: T0 + 5000, to: T0 + 30_000, everyMs: 10_000 });
      expect(soc.map((r) => r.ts)).toEqual([T0, T0 + 10_000, T0 + 20_000]);
      expect(soc[0].value as number).toBeCloseTo((20 + 33) / 2, 9);
      expect(soc[1].value).toBeNull();
      expect(soc[2].value as number).toBeCloseTo(70, 9);
      const lvs = await store.history({ vin: A, signal: VSS.lowVoltageSystemState, from: T0, to: T0 + 30_000, everyMs: 10_000 });
      expect(lvs).toEqual([
        { ts: T0, value: 'ON' },
        { ts: T0 + 10_000, value: null },
        { ts: T0 + 20_000, value: 'ACC' },
      ]);
      const charging = await store.history({ vin: A, signal: VSS.isCharging, from: T0, to: T0 + 10_000, everyMs: 5000 });
      expect(charging).toEqual([
        { ts: T0, value: true },
        { ts: T0 + 5000, value: false },
      ]);
    });

    it('writing the same point again is idempotent and a later value for the same time wins', async () => {
      const batch = speeds(A, 5);
      await store.write(batch, tagsOf);
      await store.flush();
      await store.write(batch, tagsOf);
      await store.write([{ vin: A, ts: T0 + 1000, signals: { [VSS.speed]: 77, [VSS.soc]: 60 } }], tagsOf);
      await store.flush();
      expect(await store.count({ vin: A, signal: VSS.speed, ...all })).toBe(5);
      expect(await store.count({ vin: A, signal: VSS.soc, ...all })).toBe(1);
      const h = await store.history({ vin: A, signal: VSS.speed, ...all });
      expect(h.map((r) => r.value)).toEqual([0, 77, 4, 6, 8]);
    });

    it('keeps booleans as booleans, enums as strings and numbers as numbers', async () => {
      await store.write(
        [{ vin: A, ts: T0, signals: { [VSS.isCharging]: false, [VSS.chargePortType]: 'DC', [VSS.odometer]: 4210 } }],
        tagsOf,
      );
      await store.flush();
      const l = await store.latest(A);
      expect(l?.signals[VSS.isCharging]).toBe(false);
      expect(l?.signals[VSS.chargePortType]).toBe('DC');
      expect(l?.signals[VSS.odometer]).toBe(4210);
      expect(typeof l?.signals[VSS.odometer]).toBe('number');
      const raw = await store.history({ vin: A, signal: VSS.isCharging, ...all });
      expect(raw).toEqual([{ ts: T0, value: false }]);
    });

    it('stores the active DTCs as one comma-joined string, "" when the list is empty', async () => {
      await store.write(
        [
          { vin: A, ts: T0, signals: { [VSS.speed]: 1 }, dtcs: ['P0A80', 'P0300'] },
          { vin: A, ts: T0 + 1000, signals: { [VSS.speed]: 2 } },
          { vin: A, ts: T0 + 2000, signals: {}, dtcs: [] },
          { vin: B, ts: T0, signals: {}, dtcs: ['U0100'] },
        ],
        tagsOf,
      );
      await store.flush();
      expect(await store.history({ vin: A, signal: VSS.dtcList, ...all })).toEqual([
        { ts: T0, value: 'P0A80,P0300' },
        { ts: T0 + 2000, value: '' },
      ]);
      expect((await store.latest(A))?.signals[VSS.dtcList]).toBe('');
      expect((await store.latest(B))?.signals).toEqual({ [VSS.dtcList]: 'U0100' });
      expect(await store.count({ signal: VSS.dtcList, ...all })).toBe(3);
    });

    it('refuses hostile VINs and signal names in queries and leaves the data alone', async () => {
      await store.write(speeds(A, 3), tagsOf);
      await store.flush();
      const hostileVins = [`${A}' OR '1'='1`, `x'; DROP DATABASE "odopulse"; --`, 'LSVAU2180N218329\n', '"LSVAU2180N2183294"', ''];
      for (const vin of hostileVins) {
        await expect(store.latest(vin)).rejects.toThrow(/invalid VIN/);
        await expect(store.history({ vin, signal: VSS.speed, ...all })).rejects.toThrow(/invalid VIN/);
        await expect(store.count({ vin, signal: VSS.speed, ...all })).rejects.toThrow(/invalid VIN/);
      }
      const hostileSignals = [`${VSS.speed}") FROM telemetry; DROP MEASUREMENT "telemetry`, `${VSS.speed}\\`, '*', 'time', 'vin'];
      for (const signal of hostileSignals) {
        await expect(store.history({ vin: A, signal, ...all })).rejects.toThrow(/unknown signal/);
        await expect(store.count({ signal, ...all })).rejects.toThrow(/unknown signal/);
      }
      await expect(store.history({ vin: A, signal: VSS.speed, ...all, everyMs: 0 })).rejects.toThrow(/every/);
      await expect(store.history({ vin: A, signal: VSS.speed, from: 0, to: T0, everyMs: 1 })).rejects.toThrow(/buckets/);
      await expect(store.count({ vin: A, signal: VSS.speed, from: -1, to: T0 })).rejects.toThrow(/from/);
      expect(await store.count({ vin: A, signal: VSS.speed, ...all })).toBe(3);
    });

    it('refuses a write with a bad reading as a whole, and stores points with hostile tag values', async () => {
      const bad: Reading[] = [
        { vin: A, ts: T0 + 10_000, signals: { [VSS.speed]: 5 } },
        { vin: 'NOT A VIN', ts: T0 + 11_000, signals: { [VSS.speed]: 6 } },
      ];
      await expect(store.write(bad, tagsOf)).rejects.toThrow(/invalid VIN/);
      await expect(store.write([{ vin: A, ts: T0, signals: { [VSS.speed]: Number.NaN } }], tagsOf)).rejects.toThrow(/bad number/);
      await expect(store.write([{ vin: A, ts: T0, signals: { [VSS.lowVoltageSystemState]: 'DRIVE' as never } }], tagsOf)).rejects.toThrow(
        /bad enum/,
      );
      await expect(store.write([{ vin: A, ts: T0, signals: { 'Vehicle.Bogus': 1 } as never }], tagsOf)).rejects.toThrow(/unknown signal/);
      await expect(store.write([{ vin: A, ts: T0, signals: { [VSS.speed]: 1 } }], () => ({ 'bad key': 'x' }))).rejects.toThrow(/tag key/);
      const hostileTags = (): Record<string, string> => ({ dealer: `D'1" ,=\\ x\ny\\`, model: '', powertrain: '\\' });
      await store.write([{ vin: A, ts: T0 + 20_000, signals: { [VSS.speed]: 7 } }], hostileTags);
      await store.flush();
      expect(await store.history({ vin: A, signal: VSS.speed, ...all })).toEqual([{ ts: T0 + 20_000, value: 7 }]);
    });

    it('a large write is stored whole, and a bad reading at its very end refuses all of it', async () => {
      // larger than the InfluxDB store's serialising slices (WRITE_SLICE): the check still covers the whole call
      const many = [...speeds(A, 3_000), ...speeds(B, 2_500)];
      await expect(
        store.write([...many, { vin: B, ts: T0 - 1000, signals: { [VSS.speed]: Number.POSITIVE_INFINITY } }], tagsOf),
      ).rejects.toThrow(/bad number/);
      await store.flush();
      expect(await store.count({ signal: VSS.speed, ...all })).toBe(0);
      await store.write(many, tagsOf);
      await store.flush();
      expect(await store.count({ vin: A, signal: VSS.speed, ...all })).toBe(3_000);
      expect(await store.count({ vin: B, signal: VSS.speed, ...all })).toBe(2_500);
    });

    it('flush with nothing written resolves, and close flushes what is left', async () => {
      await store.flush();
      await store.write(speeds(A, 2), tagsOf);
      await store.close();
      await expect(store.write(speeds(A, 1), tagsOf)).rejects.toThrow(/closed/);
    });
  });
}
