// PostgreSQL VehicleStore, as sqlite/vehicles.ts: profiles, online status, lifecycle segments,
// service records, charging sessions, telemetry sequences. Read-modify-writes are one statement each.
import type { VehicleStore } from '../ports.js';
import { clampLimit, decodeKeyCursor, encodeKeyCursor } from '../paging.js';
import type { ChargingRow, SegmentsRow, SequenceRow, ServiceRow, StatusRow, VehicleRow } from '../sql-rows.js';
import { toCharging, toOnline, toRecord, toSegments, toSequence, toServiceRecord } from '../sql-rows.js';
import type { PgDb } from './db.js';

export function pgVehicleStore(db: PgDb): VehicleStore {
  return {
    async upsert(vin, profile, now) {
      const [r] = await db.rows<VehicleRow>(
        `INSERT INTO vehicles (vin, dealer_id, profile, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (vin) DO UPDATE SET dealer_id = excluded.dealer_id, profile = excluded.profile, updated_ms = excluded.updated_ms
         RETURNING vin, profile, created_ms, updated_ms`,
        [vin, profile.dealerId, JSON.stringify(profile), now],
      );
      return toRecord(r);
    },
    async get(vin) {
      const [r] = await db.rows<VehicleRow>('SELECT vin, profile, created_ms, updated_ms FROM vehicles WHERE vin = $1', [vin]);
      return r ? toRecord(r) : undefined;
    },
    async list({ dealerId, dealerIds, limit, cursor }) {
      const lim = clampLimit(limit);
      const after = cursor === undefined ? '' : decodeKeyCursor(cursor);
      const rows = await db.rows<VehicleRow>(
        `SELECT vin, profile, created_ms, updated_ms FROM vehicles WHERE vin > $1 AND ($2::text IS NULL OR dealer_id = $2)
         AND ($3::text[] IS NULL OR dealer_id = ANY($3::text[])) ORDER BY vin LIMIT $4`,
        [after, dealerId ?? null, dealerIds ?? null, lim + 1],
      );
      const items = rows.slice(0, lim).map(toRecord);
      return { items, nextCursor: rows.length > lim ? encodeKeyCursor(items[items.length - 1].vin) : null };
    },
    async setOnline(vin, online, info) {
      // `since` is when the vehicle last changed between online and offline; versions not given are kept.
      await db.query(
        `INSERT INTO vehicle_status AS s (vin, online, since_ms, agent_version, config_version) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (vin) DO UPDATE SET
           since_ms = CASE WHEN s.online = excluded.online THEN s.since_ms ELSE excluded.since_ms END,
           online = excluded.online,
           agent_version = coalesce(excluded.agent_version, s.agent_version),
           config_version = coalesce(excluded.config_version, s.config_version)`,
        [vin, online, info.at, info.agentVersion ?? null, info.configVersion ?? null],
      );
    },
    async resetOnline(now) {
      return (await db.query('UPDATE vehicle_status SET online = false, since_ms = $1 WHERE online', [now])).rowCount ?? 0;
    },
    async online(vin) {
      const [r] = await db.rows<StatusRow<boolean>>(
        'SELECT online, since_ms, agent_version, config_version FROM vehicle_status WHERE vin = $1',
        [vin],
      );
      return toOnline(r);
    },
    async setSegments(vin, segments, at) {
      await db.query(
        `INSERT INTO vehicle_segments (vin, segments, at_ms) VALUES ($1, $2, $3)
         ON CONFLICT (vin) DO UPDATE SET segments = excluded.segments, at_ms = excluded.at_ms`,
        [vin, JSON.stringify(segments), at],
      );
    },
    async segments(vin) {
      const [r] = await db.rows<SegmentsRow>('SELECT segments FROM vehicle_segments WHERE vin = $1', [vin]);
      return toSegments(r);
    },
    async addServiceRecord(vin, rec, now) {
      const [r] = await db.rows<{ id: number }>(
        'INSERT INTO service_records (vin, date, odometer, items, created_ms) VALUES ($1, $2, $3, $4, $5) RETURNING id',
        [vin, rec.date, rec.odometer, JSON.stringify(rec.items), now],
      );
      return r.id;
    },
    serviceRecords: async (vin) =>
      (await db.rows<ServiceRow>('SELECT id, date, odometer, items FROM service_records WHERE vin = $1 ORDER BY date, id', [vin])).map(
        toServiceRecord,
      ),
    async addChargingSession(s) {
      // The same session derived twice (replay, restart) is one session (SQLite: INSERT OR REPLACE).
      await db.query(
        `INSERT INTO charging_sessions (vin, start_ms, end_ms, start_soc, end_soc, energy_kwh, type) VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (vin, start_ms) DO UPDATE SET end_ms = excluded.end_ms, start_soc = excluded.start_soc, end_soc = excluded.end_soc,
           energy_kwh = excluded.energy_kwh, type = excluded.type`,
        [s.vin, s.start, s.end, s.startSoc, s.endSoc, s.energyKwh, s.type],
      );
    },
    chargingSessions: async (vin, from, to) =>
      (
        await db.rows<ChargingRow>(
          'SELECT * FROM charging_sessions WHERE vin = $1 AND start_ms >= $2 AND start_ms < $3 ORDER BY start_ms',
          [vin, from, to],
        )
      ).map(toCharging),
    async setSequences(list, at) {
      if (list.length === 0) return;
      // the last of a vin given twice wins; in VIN order (rows locked in one order: no deadlock)
      const rows = [...new Map(list.map((s) => [s.vin, s])).values()].sort((a, b) => (a.vin < b.vin ? -1 : a.vin > b.vin ? 1 : 0));
      await db.query(
        `INSERT INTO vehicle_sequences (vin, boot_id, last_seq, gaps, at_ms)
         SELECT vin, boot_id, last_seq, gaps, $5 FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS s(vin, boot_id, last_seq, gaps)
         ON CONFLICT (vin) DO UPDATE SET boot_id = excluded.boot_id, last_seq = excluded.last_seq, gaps = excluded.gaps, at_ms = excluded.at_ms`,
        [rows.map((s) => s.vin), rows.map((s) => s.bootId), rows.map((s) => s.lastSeq), rows.map((s) => s.gaps), at],
      );
    },
    async sequence(vin) {
      const [r] = await db.rows<SequenceRow>('SELECT boot_id, last_seq, gaps FROM vehicle_sequences WHERE vin = $1', [vin]);
      return toSequence(r);
    },
  };
}
