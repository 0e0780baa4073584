// Fuzzed TelemetryBatch payloads (test/faults/fuzz.test.ts) and what ingest must do with each one,
// decided by the product's own code in the order the embedded broker applies it: the packet size
// guard (inbound/guards.ts), the ACL (parseTopic, VEHICLE_PUBLISHES as in inbound/embedded.ts), then
// what inbound/handlers.ts does: decodeTelemetryBatch (proto/codec.ts), VIN = topic VIN, and
// screenSamples for sample times. A mutation that still decodes to a valid batch is expected to be
// journalled, so the dead-letter count can be exact.
import { isDeepStrictEqual } from 'node:util';
import { screenSamples, type TimeRejection } from '../../../ingest/inbound/handlers.js';
import { parseTopic, VEHICLE_PUBLISHES } from '../../../ingest/inbound/topics.js';
import {
  CodecError,
  decodeTelemetryBatch,
  decodeTelemetryBatchViaSchema,
  encodeTelemetryBatch,
  SIZE_LIMITS,
} from '../../../proto/codec.js';
import type { Sample, TelemetryBatch } from '../../../proto/domain.js';
import { CHARGE_PORT_TYPES, LOW_VOLTAGE_STATES, VSS } from '../../../proto/signals.js';
import { wireTelemetryBatch } from '../../../proto/wire.js';
import { pb, rawOf, rawSample, seeded, uvarint, value, type Rand, type Value } from './protobuf.js';

// ---- the corpus ----------------------------------------------------------------------------

const SIGNALS: Array<[string, (r: Rand) => Value]> = [
  [VSS.speed, (r) => r.int(4000) / 10],
  [VSS.odometer, (r) => r.int(5_000_000)],
  [VSS.lowVoltageSystemState, (r) => r.pick(LOW_VOLTAGE_STATES)],
  [VSS.isCharging, (r) => r.chance(0.5)],
  [VSS.voltage12v, (r) => 11 + r.int(30) / 10],
  [VSS.chargePortType, (r) => r.pick(CHARGE_PORT_TYPES)],
  [VSS.soh, (r) => r.int(101)],
  [VSS.fuelLevel, (r) => r.int(101)],
];
const DTCS = ['P0A80', 'P0300', 'U0100', 'B1234', 'C0035'];
const DAY = 86_400_000;

export interface Ctx {
  r: Rand;
  vin: string;
  /** Another vehicle's VIN (valid, not the publisher's). */
  other: string;
  /** Unique per payload: the base batch's boot id and seq come from it. */
  idx: number;
  now: number;
  maxPacket: number;
}

export interface Fuzzed {
  label: string;
  topic: string;
  payload: Buffer;
  retain?: boolean;
}

function sample(c: Ctx): Sample {
  const n = 1 + c.r.int(4);
  const signals: Record<string, Value> = {};
  while (Object.keys(signals).length < n) {
    const [p, gen] = c.r.pick(SIGNALS);
    signals[p] = gen(c.r);
  }
  // a day or three back: before the ledger's time axis, inside retention, never in the future
  return { ts: c.now - DAY - c.r.int(2 * DAY), signals, ...(c.r.chance(0.2) ? { dtcs: [c.r.pick(DTCS)] } : {}) };
}
function base(c: Ctx, n = 1 + c.r.int(3)): TelemetryBatch {
  const samples = Array.from({ length: n }, () => sample(c)).sort((a, b) => a.ts - b.ts);
  return { vin: c.vin, bootId: `fz-${c.idx}`, seq: c.idx + 1, dropped: c.r.int(3), samples };
}
const encode = (b: TelemetryBatch): Buffer => Buffer.from(encodeTelemetryBatch(b));
/** The batch's fields as raw bytes, with any of them replaced. */
function raw(b: TelemetryBatch, o: { vin?: Buffer; boot?: Buffer; seq?: Buffer; samples?: Buffer[]; tail?: Buffer[] } = {}): Buffer {
  return Buffer.concat([
    o.vin ?? pb.bytes(1, b.vin),
    o.boot ?? pb.bytes(2, b.bootId),
    o.seq ?? pb.varint(3, b.seq),
    ...(o.samples ?? b.samples.map((s) => rawOf(s))).map((s) => pb.bytes(4, s)),
    pb.varint(5, b.dropped),
    ...(o.tail ?? []),
  ]);
}
/** Pad a payload with an unknown length-delimited field (15) to exactly `size` bytes. */
function padTo(p: Buffer, size: number): Buffer {
  for (let vlen = 1; vlen <= 4; vlen++) {
    const len = size - p.length - 1 - vlen;
    if (len >= 0 && uvarint(BigInt(len)).length === vlen) return Buffer.concat([p, pb.bytes(15, Buffer.alloc(len, 0x61))]);
  }
  throw new Error(`cannot pad ${p.length} bytes to ${size}`);
}
/** MQTT 3.1.1 PUBLISH (QoS 1) size: fixed header, topic, packet id, payload. */
export function packetSize(topic: string, payload: number): number {
  const rest = 2 + Buffer.byteLength(topic) + 2 + payload;
  return 1 + (rest < 128 ? 1 : rest < 16_384 ? 2 : rest < 2_097_152 ? 3 : 4) + rest;
}
/** The payload size that makes a PUBLISH on `topic` exactly `size` bytes. */
function payloadForPacket(topic: string, size: number): number {
  for (let vlen = 1; vlen <= 4; vlen++) {
    const p = size - 1 - vlen - 4 - Buffer.byteLength(topic);
    if (packetSize(topic, p) === size) return p;
  }
  throw new Error(`no payload makes a ${size}-byte packet`);
}
const tele = (vin: string) => `v1/vehicles/${vin}/telemetry`;

type Mutator = (c: Ctx) => Omit<Fuzzed, 'topic'> & { topic?: string };
const M: Array<[number, Mutator]> = [
  [5, (c) => ({ label: 'unchanged', payload: encode(base(c)) })],
  [
    22,
    (c) => {
      const p = encode(base(c));
      const flips = 1 + c.r.int(4);
      for (let i = 0; i < flips; i++) p[c.r.int(p.length)] ^= 1 << c.r.int(8);
      return { label: `bit flips ×${flips}`, payload: p };
    },
  ],
  [
    12,
    (c) => {
      const p = encode(base(c));
      return { label: 'truncated', payload: p.subarray(0, c.r.int(p.length)) };
    },
  ],
  [
    8,
    (c) => {
      const p = encode(base(c));
      const at = c.r.int(p.length);
      const junk = Buffer.from(Array.from({ length: 1 + c.r.int(8) }, () => c.r.int(256)));
      const how = c.r.pick(['inserted', 'deleted', 'overwritten'] as const);
      const tail = p.subarray(how === 'inserted' ? at : Math.min(p.length, at + junk.length));
      return { label: `bytes ${how}`, payload: Buffer.concat([p.subarray(0, at), ...(how === 'deleted' ? [] : [junk]), tail]) };
    },
  ],
  [4, (c) => ({ label: 'random bytes', payload: Buffer.from(Array.from({ length: 1 + c.r.int(200) }, () => c.r.int(256))) })],
  [
    8,
    (c) => {
      const no = c.r.pick([6, 7, 15, 99, 1000, 536_870_911]);
      const f = c.r.pick([
        pb.varint(no, c.r.int(1e9)),
        pb.double(no, c.r.next()),
        pb.fixed32(no, c.r.int(1e9)),
        pb.bytes(no, 'x'.repeat(c.r.int(50))),
      ]);
      const b = base(c);
      if (c.r.chance(0.5)) return { label: 'unknown field (batch)', payload: raw(b, { tail: [f] }) };
      return { label: 'unknown field (sample)', payload: raw(b, { samples: b.samples.map((s) => rawOf(s, [f])) }) };
    },
  ],
  [
    3,
    (c) => {
      const bad = c.r.pick([Buffer.from([0x7e, 1]), Buffer.from([0x7f, 1]), Buffer.from([0x7a, 0xff, 0x7f]), Buffer.alloc(11, 0xff)]);
      return { label: 'bad wire type / length / varint', payload: Buffer.concat([encode(base(c)), bad]) };
    },
  ],
  [
    4,
    (c) => {
      const depth = c.r.pick([10, 100, 101, 1000, 100_000]);
      const b = base(c);
      if (c.r.chance(0.5)) return { label: `nested groups ×${depth}`, payload: raw(b, { tail: [pb.groups(15, depth)] }) };
      const d = Math.min(depth, 20_000);
      return { label: `nested unknown messages ×${d}`, payload: raw(b, { samples: [rawOf(b.samples[0], [pb.nested(15, d)])] }) };
    },
  ],
  [
    6,
    (c) => {
      const x = c.r.pick([NaN, Infinity, -Infinity, -1, 401, 1e308, -0, 5e-324, Number.MIN_VALUE, 399.99999999999994]);
      const path = c.r.pick([VSS.speed, VSS.odometer, VSS.voltage12v, VSS.soh]);
      const b = base(c);
      return { label: `number ${x}`, payload: raw(b, { samples: [rawSample(b.samples[0].ts, [[path, pb.double(1, x)]])] }) };
    },
  ],
  [
    5,
    (c) => {
      const s = c.r.pick([-1n, 0n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]);
      const b = base(c);
      if (c.r.chance(0.2)) return { label: 'seq as fixed32', payload: raw(b, { seq: pb.fixed32(3, Number(s & 0xffffn)) }) };
      return { label: `seq ${s}`, payload: raw(b, { seq: pb.varint(3, s) }) };
    },
  ],
  [
    5,
    (c) => {
      const b = base(c);
      const id = `fz-${c.idx}-`;
      const boot = c.r.pick([
        pb.varint(2, c.idx),
        pb.fixed32(2, c.idx),
        pb.bytes(2, ''),
        pb.bytes(2, id.padEnd(64, 'b')),
        pb.bytes(2, id.padEnd(65, 'b')),
        pb.bytes(2, `${id}ブート`),
        pb.bytes(2, Buffer.concat([Buffer.from(id), Buffer.from([0xff, 0xfe, 0xc3])])),
        pb.bytes(2, pb.bytes(1, id)),
        Buffer.concat([pb.bytes(2, 'boot-a'), pb.bytes(2, id)]),
      ]);
      return { label: 'boot id of another type / length', payload: raw(b, { boot }) };
    },
  ],
  [
    8,
    (c) => {
      const b = base(c);
      const bad = c.r.pick([c.now + 50 * 365 * DAY, Date.UTC(2005, 5, 1), Date.UTC(1999, 11, 31), Date.UTC(2201, 0, 1), -1, 0, 2 ** 62]);
      const s = { ...b.samples[0], ts: bad };
      const mixed = c.r.chance(0.6);
      return {
        label: `sample time ${bad > 0 && bad < 8e12 ? new Date(bad).toISOString().slice(0, 4) : bad}${mixed ? ' beside good ones' : ''}`,
        payload: raw(b, { samples: [...(mixed ? b.samples : []), s].map((x) => rawOf(x)) }),
      };
    },
  ],
  [
    4,
    (c) => {
      const b = base(c);
      const vin = c.r.pick([pb.bytes(1, c.other), pb.bytes(1, c.vin.toLowerCase()), pb.bytes(1, `I${c.vin.slice(1)}`), Buffer.alloc(0)]);
      if (c.r.chance(0.3))
        return { label: 'vin twice (other, own)', payload: raw(b, { vin: Buffer.concat([pb.bytes(1, c.other), pb.bytes(1, c.vin)]) }) };
      return { label: 'vin not the topic’s', payload: raw(b, { vin }) };
    },
  ],
  [
    2,
    (c) => {
      const b = base(c);
      const s = b.samples[0];
      const dup = c.r.pick([
        Buffer.concat([rawOf(s), pb.varint(1, s.ts + 1)]),
        rawSample(s.ts, [
          [VSS.speed, value(1)],
          [VSS.speed, value(2)],
        ]),
      ]);
      return { label: 'repeated singular fields', payload: raw(b, { samples: [dup], tail: [pb.varint(3, b.seq)] }) };
    },
  ],
  [2, (c) => ({ label: 'dropped out of uint32', payload: raw(base(c), { tail: [pb.varint(5, c.r.pick([2n ** 32n + 5n, -1n]))] }) })],
  [
    1.5,
    (c) => {
      const b = base(c, 1);
      const s: Sample = { ts: b.samples[0].ts, signals: { [VSS.speed]: 1 } };
      const many = (n: number) => Array.from({ length: n }, (_, i) => ({ ...s, ts: s.ts + i }));
      const limit = SIZE_LIMITS.telemetry;
      const atPacket = payloadForPacket(tele(c.vin), c.maxPacket);
      const pick = c.r.int(9);
      if (pick === 0) return { label: '1,000 samples', payload: encode({ ...b, samples: many(1000) }) };
      if (pick === 1) return { label: '1,001 samples', payload: encode({ ...b, samples: many(1001) }) };
      if (pick === 2) return { label: '65 DTCs', payload: raw(b, { samples: [rawSample(s.ts, [], Array(65).fill('P0300'))] }) };
      if (pick === 3) return { label: 'padded to the size limit', payload: padTo(encode(b), limit) };
      if (pick === 4) return { label: 'size limit + 1', payload: padTo(encode(b), limit + 1) };
      if (pick === 5) return { label: 'packet exactly at the broker limit', payload: padTo(encode(b), atPacket) };
      if (pick === 6) return { label: 'packet 1 byte over the broker limit', payload: padTo(encode(b), atPacket + 1) };
      if (pick === 7) return { label: '1 MiB', payload: padTo(encode(b), 1024 * 1024) };
      return { label: '200 KB signal name', payload: raw(b, { samples: [rawSample(s.ts, [['V'.repeat(200_000), value(1)]])] }) };
    },
  ],
  [0.5, () => ({ label: 'empty payload', payload: Buffer.alloc(0) })],
  [
    1,
    (c) => {
      const p = encode(base(c));
      const t = c.r.pick([
        tele(c.other),
        `v1/vehicles/${c.vin}/config`,
        `v1/vehicles/${c.vin}/prompts`,
        'v1/vehicles/NOTAVIN/telemetry',
        `v2/vehicles/${c.vin}/telemetry`,
        tele(c.vin),
      ]);
      return { label: 'not allowed to publish there', topic: t, payload: p, retain: t === tele(c.vin) };
    },
  ],
];
const TOTAL = M.reduce((n, [w]) => n + w, 0);

// ---- what ingest must do with it -------------------------------------------------------------

export type Outcome =
  /** Over ODOPULSE_MQTT_MAX_PACKET_BYTES: the connection is closed, nothing stored, no PUBACK. */
  | { kind: 'oversize-packet' }
  /** The ACL refuses it: the connection is closed, nothing stored, no PUBACK. */
  | { kind: 'denied' }
  | { kind: 'dead'; reason: string }
  /** Journalled; `bad` samples dead-lettered by reason; `good` samples kept. */
  | { kind: 'accepted'; key: string; good: number; bad: Array<[TimeRejection, Sample[]]>; batch: TelemetryBatch };

export interface Limits {
  maxPacket: number;
  skewS: number;
  retentionDays: number;
}

/** Where the fast wire path accepted a payload that the protobufjs + zod path decides otherwise. */
export const disagreements: string[] = [];

export function classify(f: Fuzzed, publisher: string, now: number, l: Limits): Outcome | 'ambiguous' {
  if (packetSize(f.topic, f.payload.length) > l.maxPacket) return { kind: 'oversize-packet' };
  const t = parseTopic('v1', f.topic);
  if (!t || t.vin !== publisher || !VEHICLE_PUBLISHES.includes(t.channel) || (f.retain && t.channel !== 'status'))
    return { kind: 'denied' };
  if (t.channel !== 'telemetry') throw new Error(`fuzz corpus publishes only telemetry, not ${f.topic}`);
  const fast = f.payload.length > 0 && f.payload.length <= SIZE_LIMITS.telemetry ? wireTelemetryBatch(f.payload) : null;
  if (fast) {
    let slow: unknown;
    try {
      slow = decodeTelemetryBatchViaSchema(f.payload);
    } catch (err) {
      slow = (err as Error).message;
    }
    if (!isDeepStrictEqual(fast, slow)) disagreements.push(`${f.label}: ${f.payload.toString('hex').slice(0, 200)}`);
  }
  let batch: TelemetryBatch;
  try {
    batch = decodeTelemetryBatch(f.payload);
  } catch (err) {
    return { kind: 'dead', reason: err instanceof CodecError ? err.failure : 'malformed' };
  }
  if (batch.vin !== t.vin) return { kind: 'dead', reason: 'invalid' };
  const horizon = now + l.skewS * 1000;
  const oldest = now - l.retentionDays * DAY;
  // the arrival time is a minute or so later than `now`: keep clear of both bounds
  if (batch.samples.some((s) => Math.abs(s.ts - horizon) < 20 * 60_000 || Math.abs(s.ts - oldest) < DAY)) return 'ambiguous';
  const { good, bad } = screenSamples(batch.samples, horizon, oldest);
  return { kind: 'accepted', key: `${batch.vin}/${batch.bootId}/${batch.seq}`, good: good.length, bad: [...bad], batch };
}

export interface FuzzItem extends Fuzzed {
  outcome: Outcome;
}

/**
 * `count` payloads for the publishers `vins` (round robin), each classified. A payload whose fate
 * would depend on something the test cannot pin down is replaced by another: a sample time within
 * minutes of a bound, a journal key (vin, boot id, seq) already used (a repeat is a duplicate, and a
 * duplicate's refused samples are not dead-lettered twice), the ledger's boot id, or the ledger's
 * signal (the ledger reads state of charge back by time).
 */
export function fuzzCorpus(o: {
  seed: number;
  count: number;
  vins: string[];
  others: string[];
  now: number;
  limits: Limits;
}): FuzzItem[][] {
  const r = seeded(o.seed);
  const used = new Set<string>();
  const out: FuzzItem[][] = o.vins.map(() => []);
  for (let i = 0, idx = 0; i < o.count; idx++) {
    const vin = o.vins[i % o.vins.length];
    const c: Ctx = { r, vin, other: r.pick(o.others), idx, now: o.now, maxPacket: o.limits.maxPacket };
    let x = r.next() * TOTAL;
    const mutate = M.find(([w]) => (x -= w) < 0)?.[1] ?? M[0][1];
    const m = mutate(c);
    const f: Fuzzed = { ...m, topic: m.topic ?? tele(vin) };
    const outcome = classify(f, vin, o.now, o.limits);
    if (outcome === 'ambiguous') continue;
    if (outcome.kind === 'accepted') {
      const b = outcome.batch;
      if (used.has(outcome.key) || b.bootId === 'boot-a' || b.samples.some((s) => VSS.soc in s.signals)) continue;
      used.add(outcome.key);
    }
    out[i % o.vins.length].push({ ...f, outcome });
    i++;
  }
  return out;
}
