// In-memory VehicleStore for unit tests (same behaviour as the SQLite one; shared suite).
import type { VehicleRecord, VehicleSequence, VehicleStore } from '../ports.js';
import type { SyncOf } from '../sync-backend.js';
import { clampLimit, decodeKeyCursor, encodeKeyCursor, iso } from '../paging.js';
import { copy, type MemDb } from './state.js';

export function memoryVehicleStore(db: MemDb): SyncOf<VehicleStore> {
  const d = () => db.data;
  const record = (vin: string): VehicleRecord | undefined => {
    const v = d().vehicles.get(vin);
    return v && { ...copy(v.profile), vin, createdAt: iso(v.createdMs), updatedAt: iso(v.updatedMs) };
  };
  // The sequence view is not part of MemData (a transaction does not roll it back): it is a view of the journal's.
  const sequences = new Map<string, VehicleSequence>();
  return {
    upsert(vin, profile, now) {
      const prev = d().vehicles.get(vin);
      d().vehicles.set(vin, { profile: copy(profile), createdMs: prev?.createdMs ?? now, updatedMs: now });
      return record(vin)!;
    },
    get: record,
    list({ dealerId, dealerIds, limit, cursor }) {
      const lim = clampLimit(limit);
      const after = cursor === undefined ? '' : decodeKeyCursor(cursor);
      const vins = [...d().vehicles.entries()]
        .filter(
          ([vin, v]) =>
            vin > after &&
            (dealerId === undefined || v.profile.dealerId === dealerId) &&
            (dealerIds === undefined || dealerIds.includes(v.profile.dealerId)),
        )
        .map(([vin]) => vin)
        .sort();
      const items = vins.slice(0, lim).map((v) => record(v)!);
      return { items, nextCursor: vins.length > lim ? encodeKeyCursor(items[items.length - 1].vin) : null };
    },
    setOnline(vin, online, info) {
      const prev = d().status.get(vin);
      d().status.set(vin, {
        online,
        sinceMs: prev && prev.online === online ? prev.sinceMs : info.at,
        agentVersion: info.agentVersion ?? prev?.agentVersion ?? null,
        configVersion: info.configVersion ?? prev?.configVersion ?? null,
      });
    },
    resetOnline(now) {
      let n = 0;
      for (const [vin, s] of d().status) {
        if (!s.online) continue;
        d().status.set(vin, { ...s, online: false, sinceMs: now });
        n++;
      }
      return n;
    },
    online(vin) {
      const s = d().status.get(vin);
      if (!s) return { online: false, since: null, agentVersion: null, configVersion: null };
      return {
        online: s.online,
        since: s.sinceMs === null ? null : iso(s.sinceMs),
        agentVersion: s.agentVersion,
        configVersion: s.configVersion,
      };
    },
    setSegments: (vin, segments, at) => void d().segments.set(vin, { segments: copy(segments), atMs: at }),
    segments: (vin) => {
      const s = d().segments.get(vin);
      return s ? copy(s.segments) : null;
    },
    addServiceRecord(vin, rec) {
      const id = ++d().serviceSeq;
      d().services.push({ id, vin, date: rec.date, odometer: rec.odometer, items: [...rec.items] });
      return id;
    },
    serviceRecords: (vin) =>
      d()
        .services.filter((s) => s.vin === vin)
        .sort((a, b) => (a.date < b.date ? -1 : a.date > b.date ? 1 : a.id - b.id))
        .map(({ id, date, odometer, items }) => ({ id, date, odometer, items: [...items] })),
    addChargingSession: (s) => void d().charging.set(`${s.vin}|${s.start}`, copy(s)),
    chargingSessions: (vin, from, to) =>
      [...d().charging.values()]
        .filter((s) => s.vin === vin && s.start >= from && s.start < to)
        .sort((a, b) => a.start - b.start)
        .map(copy),
    setSequences(list) {
      for (const s of list) sequences.set(s.vin, { bootId: s.bootId, lastSeq: s.lastSeq, gaps: s.gaps });
    },
    sequence: (vin) => {
      const s = sequences.get(vin);
      return s ? { ...s } : null;
    },
  };
}
