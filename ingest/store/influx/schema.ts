// The telemetry measurement's schema and the input checks shared by the InfluxDB store and the
// in-memory one, so both accept and refuse exactly the same things (see ingest/README-influx.md).
import { escape } from '@influxdata/influxdb-client';
import { VinSchema, type Reading } from '../../../proto/domain.js';
import { SIGNALS, SIGNAL_PATHS, VSS, type ValueSignalPath } from '../../../proto/signals.js';

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
    throw new TelemetryInputError(
      `unknown signal ${JSON.stringify(String(signal)).slice(0, 120)}: expected one of ${QUERYABLE_SIGNALS.join(', ')}`,
    );
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
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is replaced
  const CONTROL = /[\u0000-\u001f\u007f]/g;
  return v.replace(CONTROL, ' ').replace(/\\/g, '/').trim().slice(0, 256);
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
 * Line protocol for the readings (ms precision), exactly as the client's Point writes it (sorted
 * tags and fields, the client's escaping) but without a Point per reading: field keys are escaped
 * and ranked once, the tag set once per vehicle. Checks every reading first (a bad one refuses the
 * whole call, nothing half-written), then the tags, in the same order as readingFields/checkedTags.
 */
export function toLines(readings: Reading[], tags: (vin: string) => Record<string, string>): string[] {
  const bodies: Array<string | undefined> = new Array(readings.length);
  const okVins = new Set<string>();
  const shapes: Shape[] = [];
  const values: unknown[] = [];
  for (let i = 0; i < readings.length; i++) bodies[i] = lineBody(readings[i], okVins, shapes, values);
  const prefixes = new Map<string, string>();
  const lines: string[] = [];
  for (let i = 0; i < readings.length; i++) {
    const body = bodies[i];
    if (body === undefined) continue;
    const vin = readings[i].vin;
    let prefix = prefixes.get(vin);
    if (prefix === undefined) {
      const t = checkedTags(vin, tags(vin));
      prefix = MEASUREMENT_ESCAPED;
      for (const k of Object.keys(t).sort()) if (t[k]) prefix += `,${escape.tag(k)}=${escape.tag(t[k])}`;
      prefixes.set(vin, prefix);
    }
    lines.push(`${prefix} ${body}`);
  }
  return lines;
}

const MEASUREMENT_ESCAPED = escape.measurement(MEASUREMENT);
/** Field keys in the order the client sorts them, each with its escaped `key=` and its check. */
const FIELD_ORDER = [...SIGNAL_PATHS, DTC_FIELD].sort();
const FIELD_RANK = new Map<string, number>(FIELD_ORDER.map((k, i) => [k, i]));
const FIELD_PREFIX = FIELD_ORDER.map((k) => `${escape.tag(k)}=`);
const FIELD_CHECK = new Map<string, (v: unknown) => boolean>(
  SIGNAL_PATHS.map((p) => {
    const spec = SIGNALS[p];
    if (spec.kind === 'number') return [p, (v: unknown) => typeof v === 'number' && Number.isFinite(v)];
    if (spec.kind === 'boolean') return [p, (v: unknown) => typeof v === 'boolean'];
    const values = spec.values ?? [];
    return [p, (v: unknown) => typeof v === 'string' && values.includes(v)];
  }),
);
const DTC_RE = /^[PCBU][0-3][0-9A-F]{3}$/;

/**
 * A sequence of signal names as a vehicle sends them, reading after reading, with what serialising
 * it needs worked out once: each value's check, and the fields' order and `,key=` prefixes as the
 * client sorts them. Most readings of a chunk match a recent shape, so they are checked and written
 * without a map lookup, an array or a sort per value.
 */
interface Shape {
  keys: string[];
  /** Per key: 0 number, 1 boolean, else the enum's allowed values. */
  kinds: (0 | 1 | readonly string[])[];
  /** Key positions in field order. */
  order: number[];
  /** Per position in field order: `key=`, with a leading comma after the first. */
  prefixes: string[];
  /** Per position in field order, the last value written and its `key=value` (consecutive readings repeat most values). */
  lastValues: unknown[];
  lastFields: string[];
}
/** Shapes tried per reading, newest first (a fleet's models send a few shapes; a chunk mixes them). */
const SHAPES_MAX = 8;

function shapeOf(keys: string[]): Shape | undefined {
  const kinds: Shape['kinds'] = [];
  for (const k of keys) {
    if (!FIELD_CHECK.has(k)) return undefined;
    const spec = SIGNALS[k as ValueSignalPath];
    kinds.push(spec.kind === 'number' ? 0 : spec.kind === 'boolean' ? 1 : (spec.values ?? []));
  }
  const order = keys.map((_, i) => i).sort((a, b) => FIELD_RANK.get(keys[a])! - FIELD_RANK.get(keys[b])!);
  const prefixes = order.map((i, j) => `${j === 0 ? '' : ','}${FIELD_PREFIX[FIELD_RANK.get(keys[i])!]}`);
  return { keys, kinds, order, prefixes, lastValues: order.map(() => undefined), lastFields: order.map(() => '') };
}

/** `fields timestamp` of one reading, or undefined when it carries nothing; throws as readingFields does. */
function lineBody(r: Reading, okVins: Set<string>, shapes: Shape[], values: unknown[]): string | undefined {
  if (!okVins.has(r.vin)) {
    assertVin(r.vin);
    okVins.add(r.vin);
  }
  assertTime(`ts of a reading for ${r.vin}`, r.ts);
  const signals = r.signals as Record<string, unknown>;
  if (r.dtcs === undefined) {
    for (let s = 0; s < shapes.length; s++) {
      const body = shapedBody(shapes[s], signals, values, r.ts);
      if (body === undefined) continue;
      if (s > 0) shapes.unshift(shapes.splice(s, 1)[0]);
      return body;
    }
    const keys = Object.keys(signals);
    const shape = keys.length > 0 && keys.every((k) => signals[k] !== undefined) ? shapeOf(keys) : undefined;
    if (shape) {
      const body = shapedBody(shape, signals, values, r.ts);
      if (shapes.unshift(shape) > SHAPES_MAX) shapes.pop();
      if (body !== undefined) return body;
    }
  }
  return checkedBody(r);
}

/** The body when the reading's signals are exactly `shape`'s, in its order, and all valid; else undefined. */
function shapedBody(shape: Shape, signals: Record<string, unknown>, values: unknown[], ts: number): string | undefined {
  const { keys, kinds } = shape;
  let n = 0;
  for (const k in signals) {
    if (n === keys.length || keys[n] !== k) return undefined;
    const v = signals[k];
    const kind = kinds[n];
    if (kind === 0) {
      if (typeof v !== 'number' || !Number.isFinite(v)) return undefined;
    } else if (kind === 1) {
      if (typeof v !== 'boolean') return undefined;
    } else if (typeof v !== 'string' || !kind.includes(v)) return undefined;
    values[n++] = v;
  }
  if (n !== keys.length) return undefined;
  const { order, prefixes, lastValues, lastFields } = shape;
  let body = '';
  for (let j = 0; j < order.length; j++) {
    const v = values[order[j]];
    if (v !== lastValues[j]) {
      lastValues[j] = v;
      lastFields[j] =
        prefixes[j] + (typeof v === 'number' ? String(v) : typeof v === 'boolean' ? (v ? 'T' : 'F') : escape.quoted(v as string));
    }
    body += lastFields[j];
  }
  return `${body} ${ts}`;
}

/** Any reading: each value looked up and checked on its own (DTCs, a new or odd shape, a fault to word). */
function checkedBody(r: Reading): string | undefined {
  const ranks: number[] = [];
  const values: unknown[] = [];
  const signals = r.signals as Record<string, unknown>;
  for (const k of Object.keys(signals)) {
    const v = signals[k];
    if (v === undefined) continue;
    const check = FIELD_CHECK.get(k);
    // anything wrong: readingFields finds the same first fault and words the error
    if (!check || !check(v)) return bodyOf(readingFields(r), r.ts);
    ranks.push(FIELD_RANK.get(k)!);
    values.push(v);
  }
  if (r.dtcs !== undefined) {
    if (!Array.isArray(r.dtcs) || r.dtcs.some((d) => typeof d !== 'string' || !DTC_RE.test(d))) return bodyOf(readingFields(r), r.ts);
    ranks.push(FIELD_RANK.get(DTC_FIELD)!);
    values.push(r.dtcs.join(','));
  }
  return serialise(ranks, values, r.ts);
}

/** The slow way, from readingFields' result (reached only when it throws). */
function bodyOf(fields: Record<string, FieldValue>, ts: number): string | undefined {
  const keys = Object.keys(fields);
  return serialise(
    keys.map((k) => FIELD_RANK.get(k)!),
    keys.map((k) => fields[k]),
    ts,
  );
}

function serialise(ranks: number[], values: unknown[], ts: number): string | undefined {
  if (ranks.length === 0) return undefined;
  // insertion sort of a handful of ranks, values alongside
  for (let i = 1; i < ranks.length; i++) {
    const rk = ranks[i];
    const v = values[i];
    let j = i - 1;
    for (; j >= 0 && ranks[j] > rk; j--) {
      ranks[j + 1] = ranks[j];
      values[j + 1] = values[j];
    }
    ranks[j + 1] = rk;
    values[j + 1] = v;
  }
  let body = '';
  for (let i = 0; i < ranks.length; i++) {
    const v = values[i];
    body += `${i === 0 ? '' : ','}${FIELD_PREFIX[ranks[i]]}${typeof v === 'number' ? String(v) : typeof v === 'boolean' ? (v ? 'T' : 'F') : escape.quoted(v as string)}`;
  }
  return `${body} ${ts}`;
}

/** InfluxQL identifier: always double-quoted, with backslash and quote escaped. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/[\\"]/g, (c) => `\\${c}`).replace(/\n/g, '\\n')}"`;
}

/** InfluxQL string literal: single-quoted; InfluxQL refuses a raw newline, so it is written as the escape backslash-n. */
export function quoteString(s: string): string {
  return `'${s.replace(/[\\']/g, (c) => `\\${c}`).replace(/\n/g, '\\n')}'`;
}
