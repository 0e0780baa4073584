// The telemetry measurement's schema and the input checks shared by the InfluxDB store and the
// in-memory one, so both accept and refuse exactly the same things (see ingest/README-influx.md).
import { Point } from '@influxdata/influxdb-client';
import { VinSchema, type Reading } from '../../proto/domain.js';
import { SIGNALS, SIGNAL_PATHS, VSS, type ValueSignalPath } from '../../proto/signals.js';

export const MEASUREMENT = 'telemetry';
/** Active DTCs are stored as one comma-joined string field under the VSS path. */
export const DTC_FIELD: typeof VSS.dtcList = VSS.dtcList;
/** Signals a query may name: every value signal plus the DTC list. */
export const QUERYABLE_SIGNALS: readonly string[] = [...SIGNAL_PATHS, DTC_FIELD];
/** Downsampled history is capped so a tiny `every` over years cannot build a huge answer. */
export const MAX_HISTORY_BUCKETS = 100_000;
const RESERVED_TAG_KEYS = new Set(['vin', 'time', 'measurement']);

export type FieldValue = number | boolean | string;

/** Bad input to the store (invalid VIN, unknown signal, malformed range): the caller's mistake. */
export class TelemetryInputError extends Error {
  override readonly name = 'TelemetryInputError';
}

export function assertVin(vin: unknown): asserts vin is string {
  if (!VinSchema.safeParse(vin).success) {
    throw new TelemetryInputError(`invalid VIN ${JSON.stringify(String(vin)).slice(0, 80)}: must be 17 characters A-Z/0-9 without I, O, Q`);
  }
}

export function assertSignal(signal: unknown): asserts signal is string {
  if (typeof signal !== 'string' || !QUERYABLE_SIGNALS.includes(signal)) {
    throw new TelemetryInputError(`unknown signal ${JSON.stringify(String(signal)).slice(0, 120)}: expected one of ${QUERYABLE_SIGNALS.join(', ')}`);
  }
}

/** Numbers are downsampled with mean, everything else (booleans, enums, DTC list) with last. */
export function isNumericSignal(signal: string): boolean {
  return signal !== DTC_FIELD && SIGNALS[signal as ValueSignalPath]?.kind === 'number';
}

function assertTime(name: string, v: unknown): asserts v is number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new TelemetryInputError(`${name} must be a non-negative integer of epoch milliseconds, got ${String(v)}`);
  }
}

/** Ranges are [from, to) in epoch ms; `everyMs` a positive integer with a bounded bucket count. */
export function assertRange(q: { from: unknown; to: unknown; everyMs?: unknown }): void {
  assertTime('from', q.from);
  assertTime('to', q.to);
  if (q.everyMs === undefined) return;
  if (typeof q.everyMs !== 'number' || !Number.isSafeInteger(q.everyMs) || q.everyMs < 1) {
    throw new TelemetryInputError(`every must be a positive integer of milliseconds, got ${String(q.everyMs)}`);
  }
  if (q.to > q.from && bucketCount(q.from, q.to, q.everyMs) > MAX_HISTORY_BUCKETS) {
    throw new TelemetryInputError(`range / every gives more than ${MAX_HISTORY_BUCKETS} buckets; use a larger every`);
  }
}

/** Buckets InfluxQL's GROUP BY time() produces for [from, to): aligned to the epoch. */
export function bucketStarts(from: number, to: number, every: number): number[] {
  const out: number[] = [];
  if (to <= from) return out;
  for (let t = Math.floor(from / every) * every; t <= Math.floor((to - 1) / every) * every; t += every) out.push(t);
  return out;
}

function bucketCount(from: number, to: number, every: number): number {
  return Math.floor((to - 1) / every) - Math.floor(from / every) + 1;
}

/**
 * Line protocol cannot carry every string as a tag value: the client escapes a newline or tab as
 * two literal characters, and a backslash before the separator breaks the line (influxd 1.6.7:
 * "invalid tag format", a 400 that no retry fixes). Such characters never belong in a model name
 * or dealer id, so control characters become spaces and backslashes slashes; quotes, commas,
 * equals signs and spaces are kept exactly.
 */
export function sanitizeTagValue(v: string): string {
  // eslint-disable-next-line no-control-regex
  return v.replace(/[\u0000-\u001f\u007f]/g, ' ').replace(/\\/g, '/').trim().slice(0, 256);
}

/** Tags the caller supplies (model, powertrain, dealer): checked keys, empty values left out. */
export function checkedTags(vin: string, tags: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tags)) {
    if (!/^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(k) || RESERVED_TAG_KEYS.has(k)) {
      throw new TelemetryInputError(`invalid tag key ${JSON.stringify(k)} for ${vin}`);
    }
    if (typeof v !== 'string') throw new TelemetryInputError(`tag ${k} of ${vin} must be a string`);
    const clean = sanitizeTagValue(v);
    // InfluxDB has no empty tag values; a missing tag and an empty one are the same series.
    if (clean !== '') out[k] = clean;
  }
  out.vin = vin;
  return out;
}

/** The fields one reading stores, checked against the VSS table. Empty when it carries nothing. */
export function readingFields(r: Reading): Record<string, FieldValue> {
  assertVin(r.vin);
  assertTime(`ts of a reading for ${r.vin}`, r.ts);
  const fields: Record<string, FieldValue> = {};
  for (const [path, value] of Object.entries(r.signals)) {
    if (value === undefined) continue;
    const spec = SIGNALS[path as ValueSignalPath];
    if (!spec) throw new TelemetryInputError(`unknown signal ${JSON.stringify(path)} in a reading for ${r.vin}`);
    const ok =
      spec.kind === 'number'
        ? typeof value === 'number' && Number.isFinite(value)
        : spec.kind === 'boolean'
          ? typeof value === 'boolean'
          : typeof value === 'string' && (spec.values ?? []).includes(value);
    if (!ok) throw new TelemetryInputError(`bad ${spec.kind} value ${JSON.stringify(value)} for ${path} of ${r.vin} at ${r.ts}`);
    fields[path] = value;
  }
  if (r.dtcs !== undefined) {
    if (!Array.isArray(r.dtcs) || r.dtcs.some((d) => typeof d !== 'string' || !/^[PCBU][0-3][0-9A-F]{3}$/.test(d))) {
      throw new TelemetryInputError(`bad DTC list in a reading for ${r.vin} at ${r.ts}`);
    }
    fields[DTC_FIELD] = r.dtcs.join(',');
  }
  return fields;
}

/**
 * Line protocol for the readings (ms precision), built with the client's Point so escaping is
 * the client's. Checks every reading first: a bad one refuses the whole call, nothing half-written.
 */
export function toLines(readings: Reading[], tags: (vin: string) => Record<string, string>): string[] {
  const prepared = readings.map((r) => ({ r, fields: readingFields(r) }));
  const tagCache = new Map<string, Record<string, string>>();
  const lines: string[] = [];
  for (const { r, fields } of prepared) {
    if (Object.keys(fields).length === 0) continue;
    let t = tagCache.get(r.vin);
    if (!t) {
      t = checkedTags(r.vin, tags(r.vin));
      tagCache.set(r.vin, t);
    }
    const p = new Point(MEASUREMENT).timestamp(String(r.ts));
    for (const [k, v] of Object.entries(t)) p.tag(k, v);
    for (const [k, v] of Object.entries(fields)) {
      if (typeof v === 'number') p.floatField(k, v);
      else if (typeof v === 'boolean') p.booleanField(k, v);
      else p.stringField(k, v);
    }
    const line = p.toLineProtocol();
    if (line) lines.push(line);
  }
  return lines;
}

/** InfluxQL identifier: always double-quoted, with backslash and quote escaped. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, '\\n')}"`;
}

/** InfluxQL string literal: single-quoted; InfluxQL refuses a raw newline, so it is written as the escape backslash-n. */
export function quoteString(s: string): string {
  return `'${s.replace(/[\\']/g, (c) => `\\${c}`).replace(/\n/g, '\\n')}'`;
}
