// Kuksa databroker source: gRPC kuksa.val.v2 VAL/Subscribe on the VSS paths odopulse knows.
// The databroker first sends the current values, then changes. A databroker whose VSS tree
// lacks some paths answers NOT_FOUND for the whole subscription: we then subscribe path by
// path and log the missing ones. Broken streams are re-opened with a growing delay.
// The messages are (de)serialised by the static module generated from proto/kuksa/val/v2/
// (proto/gen/kuksa.js) with the conversion @grpc/proto-loader would apply, so the agent neither
// loads proto-loader and the full protobufjs nor parses .proto files at start.
import * as grpc from '@grpc/grpc-js';
import type { IConversionOptions } from 'protobufjs';
import type * as ProtoLoader from '@grpc/proto-loader';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { kuksa as kuksaPb } from '../../proto/gen/kuksa.js';
import { isDtc } from '../../proto/checks.js';
import type { Sample, SignalValue, Signals } from '../../proto/domain.js';
import { PACKAGE_ROOT } from '../../proto/paths.js';
import { SIGNALS, SIGNAL_PATHS, VSS, type ValueSignalPath } from '../../proto/signals.js';
import type { SignalSource } from './source.js';

export const KUKSA_PROTO_DIR = join(PACKAGE_ROOT, 'proto');
export const KUKSA_PROTO_FILE = 'kuksa/val/v2/val.proto';

/** Default subscription: every value signal plus the DTC list. */
export const KUKSA_DEFAULT_PATHS: readonly string[] = [...SIGNAL_PATHS, VSS.dtcList];

export interface KuksaSourceOptions {
  /** host:port of the databroker (default port 55555). */
  address: string;
  paths?: readonly string[];
  /** PEM CA of the databroker's TLS certificate; without it the channel is plaintext. */
  ca?: Buffer;
  /** Databroker JWT (sent as `authorization: Bearer ...`). */
  token?: string;
  retryMinMs?: number;
  retryMaxMs?: number;
  log?: (msg: string) => void;
}

/** How messages become objects, as @grpc/proto-loader is asked to (loadKuksaPackage) and the static client does. */
export const KUKSA_CONVERSION = { keepCase: false, longs: String, enums: String, defaults: false, oneofs: true } as const;

/** The package from the .proto files via @grpc/proto-loader (loaded only here: tests and tools serve it, e.g. a fake databroker). */
export function loadKuksaPackage(): grpc.GrpcObject {
  const protoLoader = createRequire(import.meta.url)('@grpc/proto-loader') as typeof ProtoLoader;
  const def = protoLoader.loadSync(KUKSA_PROTO_FILE, { includeDirs: [KUKSA_PROTO_DIR], ...KUKSA_CONVERSION });
  return grpc.loadPackageDefinition(def);
}

interface StaticMessage<M> {
  encode(m: M): { finish(): Uint8Array };
  decode(b: Uint8Array): M;
  fromObject(o: Record<string, unknown>): M;
  toObject(m: M, o: IConversionOptions): Record<string, unknown>;
}
// proto-loader's serialize / deserialize: encode(fromObject(obj)) and toObject(decode(bytes), options)
const serialize =
  <M>(T: StaticMessage<M>) =>
  (obj: object) =>
    Buffer.from(T.encode(T.fromObject(obj as Record<string, unknown>)).finish());
const deserialize =
  <M>(T: StaticMessage<M>) =>
  (bytes: Buffer) =>
    T.toObject(T.decode(bytes), KUKSA_CONVERSION);
const v2 = kuksaPb.val.v2;

/** The VAL client for the one call the source makes (Subscribe), from the generated static module. */
export const KuksaValClient = grpc.makeGenericClientConstructor(
  {
    Subscribe: {
      path: '/kuksa.val.v2.VAL/Subscribe',
      requestStream: false,
      responseStream: true,
      requestSerialize: serialize(v2.SubscribeRequest as StaticMessage<unknown>),
      requestDeserialize: deserialize(v2.SubscribeRequest as StaticMessage<unknown>),
      responseSerialize: serialize(v2.SubscribeResponse as StaticMessage<unknown>),
      responseDeserialize: deserialize(v2.SubscribeResponse as StaticMessage<unknown>),
    },
  },
  'kuksa.val.v2.VAL',
);

interface KuksaDatapoint {
  timestamp?: { seconds?: string | number; nanos?: number };
  value?: Record<string, unknown> & { typedValue?: string };
}

/** A Kuksa Value as a JS value (numbers, booleans, strings, string arrays), or undefined for None. */
export function kuksaValue(v: KuksaDatapoint['value']): SignalValue | string[] | undefined {
  if (!v?.typedValue) return undefined;
  const raw = v[v.typedValue];
  if (v.typedValue.endsWith('Array')) return ((raw as { values?: unknown[] })?.values ?? []).map(String);
  if (typeof raw === 'string' && /int/.test(v.typedValue)) return Number(raw);
  return raw as SignalValue;
}

function tsOf(dp: KuksaDatapoint, fallback: number): number {
  const s = Number(dp.timestamp?.seconds ?? NaN);
  if (!Number.isFinite(s) || s <= 0) return fallback;
  return s * 1000 + Math.floor((dp.timestamp?.nanos ?? 0) / 1e6);
}

/** Convert one SubscribeResponse's entries into a sample; values that fail the VSS table are reported and left out. */
export function entriesToSample(entries: Record<string, KuksaDatapoint>, now: number, onBad: (m: string) => void): Sample | undefined {
  const signals: Signals = {};
  let dtcs: string[] | undefined;
  let ts = 0;
  for (const [path, dp] of Object.entries(entries)) {
    const v = kuksaValue(dp.value);
    if (v === undefined) continue;
    ts = Math.max(ts, tsOf(dp, now));
    if (path === VSS.dtcList) {
      const codes = Array.isArray(v) ? v : [String(v)];
      dtcs = codes.filter((c) => isDtc(c));
      if (dtcs.length !== codes.length)
        onBad(`${path}: ignored codes that are not SAE J2012: ${codes.filter((c) => !dtcs!.includes(c)).join(', ')}`);
      continue;
    }
    const spec = SIGNALS[path as ValueSignalPath];
    if (!spec) continue;
    const ok =
      spec.kind === 'number'
        ? typeof v === 'number' &&
          Number.isFinite(v) &&
          (spec.min === undefined || v >= spec.min) &&
          (spec.max === undefined || v <= spec.max)
        : spec.kind === 'boolean'
          ? typeof v === 'boolean'
          : typeof v === 'string' && (spec.values ?? []).includes(v);
    if (!ok) {
      onBad(`${path}: value ${JSON.stringify(v)} rejected (${spec.kind}${spec.unit ? `, ${spec.unit}` : ''})`);
      continue;
    }
    signals[path as ValueSignalPath] = v as SignalValue;
  }
  if (Object.keys(signals).length === 0 && dtcs === undefined) return undefined;
  return { ts: ts || now, signals, ...(dtcs ? { dtcs } : {}) };
}

type ValClient = grpc.Client & {
  Subscribe(req: unknown, md: grpc.Metadata): grpc.ClientReadableStream<{ entries?: Record<string, KuksaDatapoint> }>;
};

export class KuksaSource implements SignalSource {
  private client: ValClient | undefined;
  private readonly streams = new Set<grpc.ClientReadableStream<unknown>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private resolveDone!: () => void;
  readonly done: Promise<void>;
  received = 0;

  constructor(private readonly o: KuksaSourceOptions) {
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  private get log() {
    return this.o.log ?? (() => {});
  }

  async start(onSample: (s: Sample) => void): Promise<void> {
    const creds = this.o.ca ? grpc.credentials.createSsl(this.o.ca) : grpc.credentials.createInsecure();
    this.client = new KuksaValClient(this.o.address, creds) as unknown as ValClient;
    this.subscribe([...(this.o.paths ?? KUKSA_DEFAULT_PATHS)], onSample, 0, true);
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.o.token) md.set('authorization', `Bearer ${this.o.token}`);
    return md;
  }

  private subscribe(paths: string[], onSample: (s: Sample) => void, attempt: number, joint: boolean): void {
    if (this.stopped || !this.client) return;
    const stream = this.client.Subscribe({ signalPaths: paths, bufferSize: 100 }, this.metadata());
    this.streams.add(stream);
    stream.on('data', (msg) => {
      attempt = 0;
      this.received++;
      const s = entriesToSample(msg.entries ?? {}, Date.now(), (m) => this.log(`kuksa: ${m}`));
      if (s) onSample(s);
    });
    stream.on('error', (err: grpc.ServiceError) => {
      this.streams.delete(stream);
      if (this.stopped || err.code === grpc.status.CANCELLED) return;
      if (err.code === grpc.status.NOT_FOUND) {
        if (joint && paths.length > 1) {
          this.log(`kuksa: databroker does not know every path (${err.details}); subscribing one by one`);
          for (const p of paths) this.subscribe([p], onSample, 0, false);
        } else this.log(`kuksa: ${paths.join(', ')} not provided by the databroker; skipped`);
        return;
      }
      this.retry(paths, onSample, attempt, joint, `${grpc.status[err.code] ?? err.code}: ${err.details}`);
    });
    stream.on('status', (st: grpc.StatusObject) => {
      // A stream the databroker closed cleanly (restart, shutdown) is re-opened too.
      if (st.code === grpc.status.OK && this.streams.delete(stream)) this.retry(paths, onSample, attempt, joint, 'stream ended');
    });
  }

  private retry(paths: string[], onSample: (s: Sample) => void, attempt: number, joint: boolean, why: string): void {
    if (this.stopped) return;
    const delay = Math.min(this.o.retryMaxMs ?? 30_000, (this.o.retryMinMs ?? 500) * 2 ** Math.min(attempt, 16));
    this.log(`kuksa: subscription failed (${why}); retrying in ${delay} ms`);
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.subscribe(paths, onSample, attempt + 1, joint);
    }, delay);
    this.timers.add(t);
  }

  async stop(): Promise<void> {
    if (this.stopped) return this.done;
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.streams) s.cancel();
    this.streams.clear();
    this.client?.close();
    this.resolveDone();
    return this.done;
  }
}
