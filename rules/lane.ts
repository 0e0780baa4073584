// Lane packing: a lane's work (readings, states, profiles) as one transferred buffer plus a small
// JSON string, so no per-reading objects are cloned across the thread boundary (rules/worker.ts).
import { SIGNALS, SIGNAL_PATHS } from '../proto/signals.js';
import type { Reading, ServiceRecord, Vehicle, VehicleRuleState } from './types.js';

/** One vehicle's work in a run(). */
export interface LaneItem {
  vin: string;
  state?: VehicleRuleState;
  profile?: Vehicle;
  readings: Reading[];
  serviceRecords?: ServiceRecord[];
  tick?: boolean;
}

/**
 * A lane's readings as float64s: per reading ts, signal count, (path index, encoded value)
 * pairs, DTC-list index or -1. Enums travel as their index, booleans as 0/1; anything the table
 * does not describe goes to `extras` by name. Everything else (VINs, states, profiles, DTC
 * lists) is one JSON string. No per-reading objects are cloned across the thread boundary.
 */
export interface PackedLane {
  buf: ArrayBuffer;
  /** Number of float64s used in buf. */
  length: number;
  meta: string;
}

/**
 * An item whose state or profile the lane's worker already holds (rules/pool.ts): those are not
 * sent, and the worker takes them from its entry for the VIN if that entry is `expect`.
 */
export interface LanePin {
  /** The token of the worker's entry for this VIN that main counts on. */
  expect: number;
  state: boolean;
  profile: boolean;
}

/** An item as read in the worker: what was pinned is absent and flagged in `pin`. */
export interface ReadItem extends LaneItem {
  pin?: LanePin;
}

/** 1 = pinned (held by the worker, not sent), 0 = none. */
type Sent<T> = T | 0 | 1;

interface LaneMeta {
  items: [
    vin: string,
    state: Sent<VehicleRuleState>,
    profile: Sent<Vehicle>,
    tick: 0 | 1,
    records: ServiceRecord[] | 0,
    readings: number,
    expect: number,
  ][];
  dtcs: string[][];
  /** [reading number in the lane, signal name, value] for signals outside the table. */
  extras: [number, string, unknown][];
}

const PATH_INDEX = new Map<string, number>(SIGNAL_PATHS.map((p, i) => [p, i]));
const KIND = SIGNAL_PATHS.map((p) => SIGNALS[p].kind);
const ENUM_VALUES = SIGNAL_PATHS.map((p) => (SIGNALS[p].values ?? []) as readonly string[]);

/** The value as a float64, or NaN when it does not fit the table (then it travels by name). */
function encodeValue(idx: number, v: unknown): number {
  const kind = KIND[idx];
  if (kind === 'number') return typeof v === 'number' ? v : Number.NaN;
  if (kind === 'boolean') return v === true ? 1 : v === false ? 0 : Number.NaN;
  const i = typeof v === 'string' ? ENUM_VALUES[idx].indexOf(v) : -1;
  return i >= 0 ? i : Number.NaN;
}

function decodeValue(idx: number, x: number): unknown {
  const kind = KIND[idx];
  if (kind === 'number') return x;
  if (kind === 'boolean') return x === 1;
  return ENUM_VALUES[idx][x];
}

const PER_READING_MAX = 3 + 2 * SIGNAL_PATHS.length;
const keyAt: string[] = new Array<string>(SIGNAL_PATHS.length).fill('');
const idxAt: number[] = new Array<number>(SIGNAL_PATHS.length).fill(0);

export function packLane(items: LaneItem[], pins?: readonly (LanePin | undefined)[]): PackedLane {
  // One pass: a reading takes at most PER_READING_MAX floats (each table signal once), so the
  // buffer is sized from a typical reading and grown in the rare case it runs short.
  let count = 0;
  for (const it of items) count += it.readings.length;
  let f = new Float64Array(Math.max(PER_READING_MAX, count * 19));
  const meta: LaneMeta = { items: new Array(items.length), dtcs: [], extras: [] };
  let o = 0;
  let ri = 0;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    const rs = it.readings;
    for (let j = 0; j < rs.length; j++) {
      const r = rs[j];
      if (o + PER_READING_MAX > f.length) {
        const grown = new Float64Array(f.length * 2);
        grown.set(f);
        f = grown;
      }
      const sig = r.signals as Record<string, unknown>;
      f[o++] = r.ts;
      const countAt = o++;
      let n = 0;
      for (const k in sig) {
        // Readings repeat the same keys in the same order: a position cache skips the hash lookup.
        let idx: number | undefined;
        if (keyAt[n] === k) idx = idxAt[n];
        else {
          idx = PATH_INDEX.get(k);
          if (idx !== undefined && n < keyAt.length) {
            keyAt[n] = k;
            idxAt[n] = idx;
          }
        }
        const v = sig[k];
        const x = idx === undefined ? Number.NaN : encodeValue(idx, v);
        if (x === x) {
          f[o++] = idx!;
          f[o++] = x;
          n++;
        } else {
          meta.extras.push([ri, k, v]);
        }
      }
      f[countAt] = n;
      f[o++] = r.dtcs ? meta.dtcs.push(r.dtcs) - 1 : -1;
      ri++;
    }
    const pin = pins?.[i];
    meta.items[i] = [
      it.vin,
      pin?.state ? 1 : (it.state ?? 0),
      pin?.profile ? 1 : (it.profile ?? 0),
      it.tick ? 1 : 0,
      it.serviceRecords ?? 0,
      rs.length,
      pin ? pin.expect : 0,
    ];
  }
  return { buf: f.buffer, length: o, meta: JSON.stringify(meta) };
}

/**
 * Signal objects are rebuilt by a small generated function per key sequence (a vehicle sends
 * the same signals reading after reading): one object literal with a stable shape instead of a
 * chain of keyed stores, which dominated unpacking. Keys come only from the static signal table.
 */
type BuildSignals = (v: unknown[]) => Record<string, unknown>;
const builders = new Map<number, BuildSignals>();
const BUILDERS_MAX = 1024;
const scratchIdx: number[] = new Array<number>(SIGNAL_PATHS.length).fill(0);
const scratchVal: unknown[] = new Array<unknown>(SIGNAL_PATHS.length).fill(undefined);
const RADIX = SIGNAL_PATHS.length + 1;

function builderFor(signature: number, n: number): BuildSignals | undefined {
  let b = builders.get(signature);
  if (b || builders.size >= BUILDERS_MAX) return b;
  const fields: string[] = [];
  for (let i = 0; i < n; i++) fields.push(`${JSON.stringify(SIGNAL_PATHS[scratchIdx[i]])}: v[${i}]`);
  b = new Function('v', `return { ${fields.join(', ')} };`) as BuildSignals;
  builders.set(signature, b);
  return b;
}

/** Decode n (path index, value) pairs at o into a signals object. */
function decodeSignals(f: Float64Array, o: number, n: number): Record<string, unknown> {
  if (n <= SIGNAL_PATHS.length) {
    let signature = 0;
    let ok = true;
    for (let s = 0; s < n; s++) {
      const idx = f[o + 2 * s];
      if (!(idx >= 0 && idx < SIGNAL_PATHS.length && Number.isInteger(idx))) {
        ok = false;
        break;
      }
      scratchIdx[s] = idx;
      scratchVal[s] = decodeValue(idx, f[o + 2 * s + 1]);
      signature = signature * RADIX + idx + 1;
    }
    const build = ok ? builderFor(signature, n) : undefined;
    if (build) return build(scratchVal);
  }
  const signals: Record<string, unknown> = {};
  for (let s = 0; s < n; s++) {
    const idx = f[o + 2 * s];
    signals[SIGNAL_PATHS[idx]] = decodeValue(idx, f[o + 2 * s + 1]);
  }
  return signals;
}

/**
 * Reads a packed lane one item at a time, so a vehicle's reading objects are built just before
 * the engine needs them and die young (building the whole lane up front kept them alive through
 * every vehicle's run, and the garbage collector's copying dominated unpacking in the workers).
 */
export class LaneReader {
  private readonly meta: LaneMeta;
  private readonly f: Float64Array;
  private readonly extras = new Map<number, [string, unknown][]>();
  private o = 0;
  private ri = 0;
  private next = 0;

  constructor(lane: PackedLane) {
    this.meta = JSON.parse(lane.meta) as LaneMeta;
    this.f = new Float64Array(lane.buf, 0, lane.length);
    for (const [ri, k, v] of this.meta.extras) {
      const list = this.extras.get(ri);
      if (list) list.push([k, v]);
      else this.extras.set(ri, [[k, v]]);
    }
  }

  /** Items (by position) whose pinned parts `holds(vin, expect)` says the worker does not have. */
  missing(holds: (vin: string, expect: number) => boolean): number[] {
    const out: number[] = [];
    this.meta.items.forEach(([vin, state, profile, , , , expect], i) => {
      if ((state === 1 || profile === 1) && !holds(vin, expect)) out.push(i);
    });
    return out;
  }

  get count(): number {
    return this.meta.items.length;
  }

  /** The next item, in lane order; undefined after the last. */
  read(): ReadItem | undefined {
    const entry = this.meta.items[this.next];
    if (!entry) return undefined;
    this.next++;
    const [vin, state, profile, tick, records, count, expect] = entry;
    const f = this.f;
    const extras = this.extras;
    let o = this.o;
    let ri = this.ri;
    const readings: Reading[] = new Array(count);
    for (let j = 0; j < count; j++) {
      const ts = f[o++];
      const n = f[o++];
      const signals = decodeSignals(f, o, n);
      o += 2 * n;
      if (extras.size) {
        const extra = extras.get(ri);
        if (extra) for (const [k, v] of extra) signals[k] = v;
      }
      const d = f[o++];
      const r: Reading = { vin, ts, signals: signals as Reading['signals'] };
      if (d >= 0) r.dtcs = this.meta.dtcs[d];
      readings[j] = r;
      ri++;
    }
    this.o = o;
    this.ri = ri;
    const item: ReadItem = { vin, readings };
    if (state === 1 || profile === 1) item.pin = { expect, state: state === 1, profile: profile === 1 };
    if (state && state !== 1) item.state = state;
    if (profile && profile !== 1) item.profile = profile;
    if (tick) item.tick = true;
    if (records) item.serviceRecords = records;
    return item;
  }
}

export function unpackLane(lane: PackedLane): LaneItem[] {
  const reader = new LaneReader(lane);
  const items: LaneItem[] = new Array(reader.count);
  for (let i = 0; i < items.length; i++) items[i] = reader.read()!;
  return items;
}
