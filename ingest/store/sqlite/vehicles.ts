// SQLite VehicleStore: profiles, online status, lifecycle segments, service records, charging sessions.
import type { ChargingSession, ServiceRecord } from '../../../rules/types.js';
import type { VehicleSequence, VehicleStore } from '../ports.js';
import type { SyncOf } from '../sync-backend.js';
import { clampLimit, decodeKeyCursor, encodeKeyCursor } from '../paging.js';
import type { ChargingRow, SegmentsRow, SequenceRow, ServiceRow, StatusRow, VehicleRow } from '../sql-rows.js';
import { toCharging, toOnline, toRecord, toSegments, toSequence, toServiceRecord } from '../sql-rows.js';
import type { Db } from './db.js';

export function sqliteVehicleStore(db: Db): SyncOf<VehicleStore> {
  const st = {
    get: db.prepare<[string], VehicleRow>('SELECT * FROM vehicles WHERE vin = ?'),
    list: db.prepare<[{ dealer: string | null; scope: string | null; after: string; lim: number }], VehicleRow>(
      `SELECT * FROM vehicles WHERE vin > @after AND (@dealer IS NULL OR dealer_id = @dealer)
       AND (@scope IS NULL OR dealer_id IN (SELECT value FROM json_each(@scope))) ORDER BY vin LIMIT @lim`,
    ),
    upsert: db.prepare(
      `INSERT INTO vehicles (vin, dealer_id, profile, created_ms, updated_ms) VALUES (@vin, @dealer, @profile, @now, @now)
       ON CONFLICT (vin) DO UPDATE SET dealer_id = excluded.dealer_id, profile = excluded.profile, updated_ms = excluded.updated_ms`,
    ),
    status: db.prepare<[string], StatusRow<number>>('SELECT * FROM vehicle_status WHERE vin = ?'),
    setStatus: db.prepare(
      `INSERT INTO vehicle_status (vin, online, since_ms, agent_version, config_version) VALUES (@vin, @online, @since, @av, @cv)
       ON CONFLICT (vin) DO UPDATE SET online = excluded.online, since_ms = excluded.since_ms, agent_version = excluded.agent_version, config_version = excluded.config_version`,
    ),
    resetOnline: db.prepare<[number]>('UPDATE vehicle_status SET online = 0, since_ms = ? WHERE online = 1'),
    segments: db.prepare<[string], SegmentsRow>('SELECT segments FROM vehicle_segments WHERE vin = ?'),
    setSegments: db.prepare(
      `INSERT INTO vehicle_segments (vin, segments, at_ms) VALUES (?, ?, ?)
       ON CONFLICT (vin) DO UPDATE SET segments = excluded.segments, at_ms = excluded.at_ms`,
    ),
    addService: db.prepare('INSERT INTO service_records (vin, date, odometer, items, created_ms) VALUES (?, ?, ?, ?, ?)'),
    services: db.prepare<[string], ServiceRow>('SELECT id, date, odometer, items FROM service_records WHERE vin = ? ORDER BY date, id'),
    // The same session derived twice (replay, restart) is one session.
    addCharging: db.prepare(
      `INSERT OR REPLACE INTO charging_sessions (vin, start_ms, end_ms, start_soc, end_soc, energy_kwh, type)
       VALUES (@vin, @start, @end, @startSoc, @endSoc, @energyKwh, @type)`,
    ),
    charging: db.prepare<[string, number, number], ChargingRow>(
      'SELECT * FROM charging_sessions WHERE vin = ? AND start_ms >= ? AND start_ms < ? ORDER BY start_ms',
    ),
    setSequence: db.prepare(
      `INSERT INTO vehicle_sequences (vin, boot_id, last_seq, gaps, at_ms) VALUES (@vin, @bootId, @lastSeq, @gaps, @at)
       ON CONFLICT (vin) DO UPDATE SET boot_id = excluded.boot_id, last_seq = excluded.last_seq, gaps = excluded.gaps, at_ms = excluded.at_ms`,
    ),
    sequence: db.prepare<[string], SequenceRow>('SELECT boot_id, last_seq, gaps FROM vehicle_sequences WHERE vin = ?'),
  };
  const setSequences = db.transaction((list: ReadonlyArray<VehicleSequence & { vin: string }>, at: number) => {
    for (const s of list) st.setSequence.run({ vin: s.vin, bootId: s.bootId, lastSeq: s.lastSeq, gaps: s.gaps, at });
  });

  return {
    upsert(vin, profile, now) {
      st.upsert.run({ vin, dealer: profile.dealerId, profile: JSON.stringify(profile), now });
      return toRecord(st.get.get(vin)!);
    },
    get: (vin) => {
      const r = st.get.get(vin);
      return r ? toRecord(r) : undefined;
    },
    list({ dealerId, dealerIds, limit, cursor }) {
      const lim = clampLimit(limit);
      const after = cursor === undefined ? '' : decodeKeyCursor(cursor);
      const scope = dealerIds === undefined ? null : JSON.stringify(dealerIds);
      const rows = st.list.all({ dealer: dealerId ?? null, scope, after, lim: lim + 1 });
      const items = rows.slice(0, lim).map(toRecord);
      return { items, nextCursor: rows.length > lim ? encodeKeyCursor(items[items.length - 1].vin) : null };
    },
    setOnline(vin, online, info) {
      const prev = st.status.get(vin);
      // `since` is when the vehicle last changed between online and offline.
      const since = prev && Boolean(prev.online) === online ? prev.since_ms : info.at;
      st.setStatus.run({
        vin,
        online: online ? 1 : 0,
        since,
        av: info.agentVersion ?? prev?.agent_version ?? null,
        cv: info.configVersion ?? prev?.config_version ?? null,
      });
    },
    resetOnline(now) {
      return st.resetOnline.run(now).changes;
    },
    online: (vin) => toOnline(st.status.get(vin)),
    setSegments: (vin, segments, at) => void st.setSegments.run(vin, JSON.stringify(segments), at),
    segments: (vin) => toSegments(st.segments.get(vin)),
    addServiceRecord: (vin, rec: ServiceRecord, now) =>
      Number(st.addService.run(vin, rec.date, rec.odometer, JSON.stringify(rec.items), now).lastInsertRowid),
    serviceRecords: (vin) => st.services.all(vin).map(toServiceRecord),
    addChargingSession: (s: ChargingSession) => void st.addCharging.run({ ...s }),
    chargingSessions: (vin, from, to) => st.charging.all(vin, from, to).map(toCharging),
    setSequences: (list, at) => void setSequences(list, at),
    sequence: (vin) => toSequence(st.sequence.get(vin)),
  };
}
