// Lane packing: a lane's work (readings, states, profiles) as one transferred buffer plus a small
// JSON string, so no per-reading objects are cloned across the thread boundary (rules/worker.ts).
import { SIGNALS, SIGNAL_PATHS } from '../proto/signals.js';
import type { Reading, RuleStateJson, ServiceRecord, Vehicle, VehicleRuleState } from './types.js';

/** One vehicle's work in a run(), as the engine takes it. */
export interface LaneItem {
  vin: string;
  state?: VehicleRuleState;
  profile?: Vehicle;
  readings: Reading[];
  serviceRecords?: ServiceRecord[];
  tick?: boolean;
  /** The journal entry the run applies up to: runItem writes it into the new state (the engine drops it). */
  journalId?: number;
}

/** One vehicle's work as main sends it: the state (when sent at all) as the JSON text the store keeps. */
export interface PackItem extends Omit<LaneItem, 'state'> {
  state?: RuleStateJson;
}

/**
 * A lane's readings as float64s: per reading ts, shape number, DTC-list index or -1, then the
 * values of the shape's signals. A shape is one sequence of table signals (a vehicle sends the
 * same ones reading after reading), listed once per lane in `meta.shapes`, so neither side looks
 * at signal names per value. Numbers travel as themselves (NaN and ±Infinity exactly), enums as
 * their index, booleans as 0/1; anything the table does not describe goes to `extras` by name.
 * Everything else (VINs, states, profiles, DTC lists) is one JSON string.
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
    /** The state's JSON text (parsed in the worker), or pinned, or none. */
    state: Sent<string>,
    profile: Sent<Vehicle>,
    tick: 0 | 1,
    records: ServiceRecord[] | 0,
    readings: number,
    expect: number,
    journalId: number | null,
  ][];
  dtcs: string[][];
  /** Per shape number, its signals as indices into SIGNAL_PATHS. */
  shapes: number[][];
  /** [reading number in the lane, signal name, value] for signals outside the table. */
  extras: [number, string, unknown][];
}

const PATHS = SIGNAL_PATHS.length;
const PATH_INDEX = new Map<string, number>(SIGNAL_PATHS.map((p, i) => [p, i]));
const KIND = SIGNAL_PATHS.map((p) => SIGNALS[p].kind);
const ENUM_VALUES = SIGNAL_PATHS.map((p) => (SIGNALS[p].values ?? []) as readonly string[]);
/** Floats per reading: ts, shape, DTC index, then at most every table signal once. */
const HEAD = 3;
const PER_READING_MAX = HEAD + PATHS;

/**
 * Shapes are found by walking a trie, one step per signal, each node remembering the child taken
 * last: readings repeat their vehicle's keys in the same order, so a step is mostly one string
 * identity check, with no name lookup or signature built per value. A node gets a shape number
 * the first time a lane ends a reading on it.
 */
interface ShapeNode {
  /** The signal this step adds (a SIGNAL_PATHS index; -1 at the root) and its kind. */
  key: string;
  idx: number;
  kind: string;
  values: readonly string[];
  kids: ShapeNode[];
  last: ShapeNode | undefined;
  path: number[];
  lane: number;
  shape: number;
}
function newNode(parent: ShapeNode | undefined, idx: number): ShapeNode {
  const known = idx >= 0;
  return {
    key: known ? SIGNAL_PATHS[idx] : '',
    idx,
    kind: known ? KIND[idx] : '',
    values: known ? ENUM_VALUES[idx] : [],
    kids: [],
    last: undefined,
    path: parent ? [...parent.path, idx] : [],
    lane: 0,
    shape: 0,
  };
}
let root = newNode(undefined, -1);
let nodes = 0;
/** Bound on the trie (signals in every order would be PATHS! shapes): past it, start afresh. */
const NODES_MAX = 4096;
let laneNo = 0;

/** The step from `node` for signal name k, or undefined when k is not in the table. */
function stepFor(node: ShapeNode, k: string): ShapeNode | undefined {
  for (const kid of node.kids) if (kid.key === k) return (node.last = kid);
  const idx = PATH_INDEX.get(k);
  if (idx === undefined) return undefined;
  const kid = newNode(node, idx);
  node.kids.push(kid);
  nodes++;
  return (node.last = kid);
}

/** The value as a float64, or undefined when it does not fit the table (it travels by name). */
function encodeValue(node: ShapeNode, v: unknown): number | undefined {
  const kind = node.kind;
  if (kind === 'number') return typeof v === 'number' ? v : undefined;
  if (kind === 'boolean') return v === true ? 1 : v === false ? 0 : undefined;
  const i = typeof v === 'string' ? node.values.indexOf(v) : -1;
  return i >= 0 ? i : undefined;
}

export function packLane(items: readonly PackItem[], pins?: readonly (LanePin | undefined)[]): PackedLane {
  let count = 0;
  for (const it of items) count += it.readings.length;
  // sized for the worst case, so the loop never checks: a few MB at most, zero-filled, moved
  const f = new Float64Array(Math.max(1, count * PER_READING_MAX));
  const meta: LaneMeta = { items: new Array(items.length), dtcs: [], shapes: [], extras: [] };
  const lane = ++laneNo;
  if (nodes > NODES_MAX) {
    root = newNode(undefined, -1);
    nodes = 0;
  }
  let o = 0;
  let ri = 0;
  for (let i = 0; i < items.length; i++) {
    const it = items[i];
    const rs = it.readings;
    for (let j = 0; j < rs.length; j++) {
      const r = rs[j];
      const sig = r.signals as Record<string, unknown>;
      f[o] = r.ts;
      f[o + 2] = r.dtcs ? meta.dtcs.push(r.dtcs) - 1 : -1;
      let node = root;
      let v0 = o + HEAD;
      for (const k in sig) {
        const v = sig[k];
        let next = node.last;
        if (next === undefined || next.key !== k) next = stepFor(node, k);
        const x = next === undefined ? undefined : encodeValue(next, v);
        if (x === undefined) {
          meta.extras.push([ri, k, v]);
          continue;
        }
        f[v0++] = x;
        node = next!;
      }
      if (node.lane !== lane) {
        node.lane = lane;
        node.shape = meta.shapes.push(node.path) - 1;
      }
      f[o + 1] = node.shape;
      o = v0;
      ri++;
    }
    const pin = pins?.[i];
    meta.items[i] = [
      it.vin,
      pin?.state ? 1 : (it.state?.json ?? 0),
      pin?.profile ? 1 : (it.profile ?? 0),
      it.tick ? 1 : 0,
      it.serviceRecords ?? 0,
      rs.length,
      pin ? pin.expect : 0,
      it.journalId ?? null,
    ];
  }
  return { buf: f.buffer, length: o, meta: JSON.stringify(meta) };
}

/**
 * A shape's signals object is built by a small generated function reading the floats directly:
 * one object literal with a stable shape instead of a chain of keyed stores, which dominated
 * unpacking. Keys come only from the static signal table, the code only from indices.
 */
type BuildSignals = (f: Float64Array, o: number, e: readonly (readonly string[])[]) => Record<string, unknown>;
const builders = new Map<string, BuildSignals>();
const BUILDERS_MAX = 1024;

function valueCode(idx: number, at: string): string {
  const kind = KIND[idx];
  if (kind === 'number') return at;
  if (kind === 'boolean') return `${at} === 1`;
  return `e[${idx}][${at}]`;
}

function builderFor(path: readonly number[]): BuildSignals {
  const key = path.join(',');
  let b = builders.get(key);
  if (b) return b;
  for (const idx of path) if (!(Number.isInteger(idx) && idx >= 0 && idx < PATHS)) throw new Error(`rules lane: bad signal index ${idx}`);
  const fields = path.map((idx, s) => `${JSON.stringify(SIGNAL_PATHS[idx])}: ${valueCode(idx, `f[o + ${s}]`)}`);
  b = new Function('f', 'o', 'e', `return { ${fields.join(', ')} };`) as BuildSignals;
  if (builders.size < BUILDERS_MAX) builders.set(key, b);
  return b;
}

/**
 * Reads a packed lane one item at a time, so a vehicle's reading objects are built just before
 * the engine needs them and die young (building the whole lane up front kept them alive through
 * every vehicle's run, and the garbage collector's copying dominated unpacking in the workers).
 */
export class LaneReader {
  private readonly meta: LaneMeta;
  private readonly f: Float64Array;
  private readonly build: BuildSignals[];
  private readonly widths: number[];
  private readonly extras = new Map<number, [string, unknown][]>();
  private o = 0;
  private ri = 0;
  private next = 0;

  constructor(lane: PackedLane) {
    this.meta = JSON.parse(lane.meta) as LaneMeta;
    this.f = new Float64Array(lane.buf, 0, lane.length);
    this.build = this.meta.shapes.map(builderFor);
    this.widths = this.meta.shapes.map((p) => p.length);
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
    const [vin, state, profile, tick, records, count, expect, journalId] = entry;
    const { f, extras, build, widths } = this;
    let o = this.o;
    let ri = this.ri;
    const readings: Reading[] = new Array(count);
    for (let j = 0; j < count; j++) {
      const shape = f[o + 1];
      const d = f[o + 2];
      const signals = build[shape](f, o + HEAD, ENUM_VALUES);
      if (extras.size) {
        const extra = extras.get(ri);
        if (extra) for (const [k, v] of extra) signals[k] = v;
      }
      const r: Reading = { vin, ts: f[o], signals: signals as Reading['signals'] };
      if (d >= 0) r.dtcs = this.meta.dtcs[d];
      readings[j] = r;
      o += HEAD + widths[shape];
      ri++;
    }
    this.o = o;
    this.ri = ri;
    const item: ReadItem = { vin, readings };
    if (state === 1 || profile === 1) item.pin = { expect, state: state === 1, profile: profile === 1 };
    if (typeof state === 'string') item.state = JSON.parse(state) as VehicleRuleState;
    if (journalId !== null) item.journalId = journalId;
    if (profile && profile !== 1) item.profile = profile;
    if (tick) item.tick = true;
    if (records) item.serviceRecords = records;
    return item;
  }
}

export function unpackLane(lane: PackedLane): ReadItem[] {
  const reader = new LaneReader(lane);
  const items: ReadItem[] = new Array(reader.count);
  for (let i = 0; i < items.length; i++) items[i] = reader.read()!;
  return items;
}
