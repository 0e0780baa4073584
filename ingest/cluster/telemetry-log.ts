// The cluster-mode telemetry log: every accepted batch is appended to the JetStream stream
// ODOPULSE_TELEMETRY (replicated, typically R3) before the vehicle gets its PUBACK, and read back per
// partition, in stream order, by the instance that owns the partition (ingest/cluster/README.md).
//
// Subjects: odopulse.telemetry.<partition>.<vin>, partition = partitionOf(vin, partitions)
// (partition.ts). Dedup: the message id is `${vin}:${bootId}:${seq}` (boot id URI-encoded), the same
// key as the one-machine journal's (docs/contract.md#telemetry-batch); the server drops a repeat
// within the stream's duplicate window (2 min) and answers it with `duplicate: true`. Older repeats
// are the reader's to drop (the partition owner keeps each vehicle's sequence state).
//
// Written for nats-server 2.9 (Debian's 2.9.10) and the v3 JavaScript client: nothing here needs
// 2.10+ (no stream metadata, no multiple consumer filters, no batch direct get, no sync_interval).
//
// The partition readers are partition-reader.ts's; the names both share, telemetry-stream.ts's (this
// file re-exports them and the readers' types for the importers).
import {
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from '@nats-io/jetstream';
import { connect, errors, headers, nanos, type NatsConnection } from '@nats-io/transport-node';
import { VIN_PATTERN } from '../../proto/checks.js';
import { INGEST_SETTINGS } from '../config.js';
import { retryTransient, transient } from './jetstream-transient.js';
import { DEFAULT_PARTITIONS, partitionOf, validatePartitions } from './partition.js';
import { JetStreamPartitionReader, type PartitionReader, type ReadOptions } from './partition-reader.js';
import { H_BOOT, H_RECEIVED, H_SEQ, partitionSubjects, TELEMETRY_STREAM, TELEMETRY_SUBJECT_PREFIX } from './telemetry-stream.js';

export type { BatchOptions, PartitionReader, ReadOptions, TelemetryLogEntry } from './partition-reader.js';
export { partitionSubjects, TELEMETRY_STREAM, TELEMETRY_SUBJECT_PREFIX } from './telemetry-stream.js';

/** How long the server remembers message ids (a repeat inside it is answered `duplicate`). */
export const DUPLICATE_WINDOW_MS = 2 * 60_000;
/** Default max age of the stream's messages: as long as the one-machine journal keeps processed batches (main.ts prunes at 3 days). */
export const DEFAULT_MAX_AGE_MS = 3 * 86_400_000;
/** Room for the subject, the message id and the odopulse headers on top of an MQTT packet's worth of payload. */
const HEADER_ROOM_BYTES = 4096;

export type AppendResult = 'new' | 'duplicate';

/** What an accepted batch carries, as the journal's BatchToAppend (ingest/journal/journal.ts). */
export interface TelemetryLogBatch {
  vin: string;
  /** '' for batches without one. */
  bootId: string;
  seq: number;
  /** null (or empty): nothing of the batch is kept (every sample dead-lettered): logged for dedup and gaps. */
  payload: Uint8Array | null;
  /** Arrival at the edge, ms since the epoch. */
  receivedAt: number;
}

export interface TelemetryLogOptions {
  /** NATS URLs (ODOPULSE_NATS_URL, comma-separated or a list). */
  servers: string | string[];
  /** The connection's name: the instance id (shows in the server's /connz). */
  name: string;
  /** ODOPULSE_PARTITIONS (default 64): used by append and recorded in the stream's description. */
  partitions?: number;
  /** Give up on the first connect after this long (default 10 s); later disconnects reconnect forever. */
  connectTimeoutMs?: number;
  /**
   * An append not acknowledged after this long rejects (default 12 s; it retries inside). Above the
   * RAFT election timeout: after a crash of the stream leader the others wait 4–9 s
   * (server/raft.go minElectionTimeoutDefault, maxElectionTimeoutDefault; not configurable).
   */
  appendTimeoutMs?: number;
  /** One publish attempt's wait for its PubAck (default 2 s). */
  attemptTimeoutMs?: number;
  /** Client pings: a silent server is noticed after about pingIntervalMs × 2 (default 5 s). */
  pingIntervalMs?: number;
  /** Told about reconnects and reader restarts (diagnostics; never per batch). */
  log?: (msg: string) => void;
}

export interface EnsureStreamOptions {
  /** Replicas: 3 in a cluster, 1 on a single server. */
  replicas: number;
  /** Messages older than this are dropped (default DEFAULT_MAX_AGE_MS). */
  maxAgeMs?: number;
  /** Must equal the connection's partition count when given (a second place to state it). */
  partitions?: number;
  /** The largest MQTT packet the edge accepts (ODOPULSE_MQTT_MAX_PACKET_BYTES, default its default). */
  maxPacketBytes?: number;
  /** How long transient failures (no answer in time, no quorum yet) are tried again (default 30 s). */
  retryForMs?: number;
}

/** The log is unreachable or did not acknowledge in time: the batch is not stored, so it is not acknowledged either. */
export class TelemetryLogUnavailableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TelemetryLogUnavailableError';
  }
}

export const subjectOf = (partition: number, vin: string): string => `${TELEMETRY_SUBJECT_PREFIX}.${partition}.${vin}`;
/** The dedup key as a message id. The VIN (17 characters) and seq (digits) have no ':'; the boot id is encoded. */
export const msgIdOf = (vin: string, bootId: string, seq: number): string => `${vin}:${encodeURIComponent(bootId)}:${seq}`;
const streamDescription = (partitions: number) => `odopulse telemetry; partitions=${partitions}`;

const EMPTY = new Uint8Array(0);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
const errMsg = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Reads of the stream's state ride out a leader election (4–9 s on 2.9) before they give up. */
const STATE_RETRY_MS = 15_000;

export class JetStreamTelemetryLog {
  readonly partitions: number;
  private readonly appendTimeoutMs: number;
  private readonly attemptTimeoutMs: number;
  private readonly readers = new Set<JetStreamPartitionReader>();
  private closed = false;
  private up = true;

  private constructor(
    readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    opts: TelemetryLogOptions,
    private readonly log: (msg: string) => void,
  ) {
    this.partitions = validatePartitions(opts.partitions ?? DEFAULT_PARTITIONS);
    this.appendTimeoutMs = opts.appendTimeoutMs ?? 12_000;
    this.attemptTimeoutMs = opts.attemptTimeoutMs ?? 2000;
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnect') {
          this.up = s.type === 'reconnect';
          log(`telemetry log: NATS ${s.type} ${s.server}`);
        }
      }
    })().catch(() => {});
  }

  /**
   * Connect (any of `servers`; the client learns the others from the cluster), retrying until
   * connectTimeoutMs, then throw an error naming ODOPULSE_NATS_URL. Once connected, a lost
   * connection is re-established forever (with backoff and jitter) while appends fail fast.
   */
  static async connect(opts: TelemetryLogOptions): Promise<JetStreamTelemetryLog> {
    const servers = (Array.isArray(opts.servers) ? opts.servers : opts.servers.split(',')).map((s) => s.trim()).filter(Boolean);
    if (servers.length === 0) throw new Error('ODOPULSE_NATS_URL is empty: give the NATS servers, comma-separated (nats://host:4222,...)');
    validatePartitions(opts.partitions ?? DEFAULT_PARTITIONS);
    const log = opts.log ?? (() => {});
    const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    const deadline = Date.now() + connectTimeoutMs;
    let last: unknown;
    for (let attempt = 0; ; attempt++) {
      try {
        const nc = await connect({
          servers,
          name: opts.name,
          timeout: Math.max(500, Math.min(5000, deadline - Date.now())),
          maxReconnectAttempts: -1,
          reconnectTimeWait: 500,
          reconnectJitter: 250,
          pingInterval: opts.pingIntervalMs ?? 5000,
          maxPingOut: 2,
        });
        return new JetStreamTelemetryLog(nc, jetstream(nc), await jetstreamManager(nc, { checkAPI: false }), opts, log);
      } catch (err) {
        last = err;
        if (err instanceof errors.AuthorizationError) break; // no point retrying credentials
      }
      if (Date.now() + 250 >= deadline) break;
      await sleep(Math.min(250 * 2 ** attempt, 2000, deadline - Date.now()));
    }
    throw new TelemetryLogUnavailableError(
      `could not connect to NATS at ${servers.join(',')} (ODOPULSE_NATS_URL) within ${connectTimeoutMs} ms: ${errMsg(last)}`,
      { cause: last },
    );
  }

  /**
   * Create the stream, or bring an existing one to these settings where JetStream allows it (max
   * age, replicas, message size, duplicate window). Storage and retention cannot change: a stream
   * made otherwise is refused, as is one recorded with another partition count.
   */
  async ensureStream(opts: EnsureStreamOptions): Promise<StreamInfo> {
    // A cluster that has just elected its meta leader may not answer the first stream request in
    // time (seen in CI: streams.add timed out on a fresh 3-node cluster). Asked again, info() finds
    // a stream whose create did happen, and the update below is a no-op.
    return retryTransient(() => this.ensureStreamOnce(opts), opts.retryForMs ?? 30_000);
  }

  private async ensureStreamOnce(opts: EnsureStreamOptions): Promise<StreamInfo> {
    if (opts.partitions !== undefined && opts.partitions !== this.partitions) {
      throw new Error(`ensureStream: partitions ${opts.partitions} differ from the connection's ${this.partitions}`);
    }
    const maxAgeMs = opts.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
    if (maxAgeMs < DUPLICATE_WINDOW_MS)
      throw new Error(`the stream's max age (${maxAgeMs} ms) must be at least its duplicate window (${DUPLICATE_WINDOW_MS} ms)`);
    const maxMsgSize = (opts.maxPacketBytes ?? INGEST_SETTINGS.ODOPULSE_MQTT_MAX_PACKET_BYTES[1]) + HEADER_ROOM_BYTES;
    const serverMax = this.nc.info?.max_payload ?? Infinity;
    if (maxMsgSize > serverMax) {
      throw new Error(
        `NATS max_payload (${serverMax} bytes) is below the largest batch (${maxMsgSize} bytes: ODOPULSE_MQTT_MAX_PACKET_BYTES + ${HEADER_ROOM_BYTES}): raise max_payload on the servers`,
      );
    }
    const want: Partial<StreamConfig> & { name: string } = {
      name: TELEMETRY_STREAM,
      description: streamDescription(this.partitions),
      subjects: [`${TELEMETRY_SUBJECT_PREFIX}.*.*`],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      discard: DiscardPolicy.Old,
      num_replicas: opts.replicas,
      max_age: nanos(maxAgeMs),
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
      max_msg_size: maxMsgSize,
      max_msgs: -1,
      max_bytes: -1,
      max_msgs_per_subject: -1,
      // reads go to the stream leader ($JS.API.STREAM.MSG.GET), never to a lagging replica
      allow_direct: false,
    };
    let info: StreamInfo | undefined;
    try {
      info = await this.jsm.streams.info(TELEMETRY_STREAM);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === 10059)) throw err; // 10059: stream not found
    }
    if (!info) {
      try {
        return await this.jsm.streams.add(want);
      } catch (err) {
        // 10058: another instance created it meanwhile (with other settings): update it below
        if (!(err instanceof JetStreamApiError && err.code === 10058)) throw err;
        info = await this.jsm.streams.info(TELEMETRY_STREAM);
      }
    }
    const have = info.config;
    if (have.storage !== StorageType.File || have.retention !== RetentionPolicy.Limits) {
      throw new Error(
        `stream ${TELEMETRY_STREAM} exists with storage ${have.storage} and retention ${have.retention}: it must be file / limits (neither can be changed: move it away)`,
      );
    }
    const recorded = /partitions=(\d+)/.exec(have.description ?? '')?.[1];
    if (recorded !== undefined && Number(recorded) !== this.partitions) {
      throw new Error(
        `stream ${TELEMETRY_STREAM} holds telemetry for ODOPULSE_PARTITIONS=${recorded}, this instance has ${this.partitions}: changing the partition count moves vehicles (ingest/cluster/README.md)`,
      );
    }
    const keys = [
      'description',
      'subjects',
      'num_replicas',
      'max_age',
      'duplicate_window',
      'max_msg_size',
      'discard',
      'max_msgs',
      'max_bytes',
    ] as const;
    const differs = keys.filter((k) => JSON.stringify(have[k]) !== JSON.stringify(want[k]));
    if (differs.length === 0) return info;
    this.log(`telemetry log: updating stream ${TELEMETRY_STREAM} (${differs.join(', ')})`);
    return this.jsm.streams.update(TELEMETRY_STREAM, { ...have, ...want });
  }

  /**
   * Append a batch. Resolves once the stream acknowledged it: for a replicated stream the leader
   * answers only after the entry is committed in the stream's RAFT group, i.e. written by a quorum
   * of the replicas. In nats-server 2.9.10: processClusteredInboundMsg (server/jetstream_cluster.go)
   * only proposes the message and answers nothing on success; raft.trackResponse (server/raft.go)
   * calls applyCommit once a quorum of peers acknowledged the entry, which hands it to the stream's
   * apply queue; monitorStream -> applyStreamEntries (server/jetstream_cluster.go) then calls
   * processJetStreamMsg (server/stream.go), which stores the message (or finds its message id a
   * duplicate) and, on the leader only (`canRespond := doAck && len(reply) > 0 && isLeader`), sends
   * the PubAck. "Written" is not "fsynced": 2.9 file stores sync in the background (every 60 s), so
   * an ack survives the loss of any minority of processes, not a power cut of a majority.
   *
   * 'duplicate': the stream already had this (vin, bootId, seq) within the duplicate window (maybe
   * from an earlier attempt of this same append whose ack was lost). Rejects with a
   * TelemetryLogUnavailableError after appendTimeoutMs (no leader, no quorum, no connection): the
   * caller withholds the PUBACK and the vehicle sends the batch again.
   */
  async append(b: TelemetryLogBatch): Promise<AppendResult> {
    if (this.closed) throw new TelemetryLogUnavailableError('telemetry log closed');
    if (!VIN_PATTERN.test(b.vin)) throw new Error(`not a VIN: ${JSON.stringify(b.vin)}`);
    if (!Number.isSafeInteger(b.seq) || b.seq < 0) throw new Error(`seq must be a non-negative integer, got ${b.seq}`);
    const h = headers();
    h.set(H_BOOT, encodeURIComponent(b.bootId));
    h.set(H_SEQ, String(b.seq));
    h.set(H_RECEIVED, String(b.receivedAt));
    const subject = subjectOf(partitionOf(b.vin, this.partitions), b.vin);
    const msgID = msgIdOf(b.vin, b.bootId, b.seq);
    const deadline = Date.now() + this.appendTimeoutMs;
    let last: unknown;
    for (let attempt = 0; ; attempt++) {
      const left = deadline - Date.now();
      try {
        const ack = await this.js.publish(subject, b.payload ?? EMPTY, {
          msgID,
          headers: h,
          expect: { streamName: TELEMETRY_STREAM },
          timeout: Math.max(1, Math.min(this.attemptTimeoutMs, left)),
        });
        return ack.duplicate ? 'duplicate' : 'new';
      } catch (err) {
        last = err;
        if (!transient(err) || this.closed) break;
      }
      const pause = Math.min(100 * 2 ** attempt, 1000) * (0.5 + Math.random() / 2);
      if (Date.now() + pause >= deadline) break;
      await sleep(pause);
    }
    if (transient(last) || last instanceof errors.ClosedConnectionError || this.closed) {
      throw new TelemetryLogUnavailableError(
        `telemetry log: ${b.vin} seq ${b.seq} not acknowledged by stream ${TELEMETRY_STREAM} within ${this.appendTimeoutMs} ms: ${errMsg(last)}`,
        { cause: last },
      );
    }
    throw last;
  }

  /**
   * Read `partition` from stream sequence `fromSeq` on (inclusive), in stream order. Backed by an
   * ordered consumer (ephemeral, R1, in memory, no acks, filtered to the partition's subjects,
   * DeliverPolicy StartSequence) that this reader recreates from its own position when it stops
   * hearing from it: an R1 consumer lives on one server, and when that server dies the client's
   * own recovery keeps asking the dead consumer for its info and never gives up (seen with 2.9.10:
   * heartbeats missed forever). It also asks the stream leader for the partition's last sequence
   * when no entry has come for stallMs: a consumer that goes on sending heartbeats while the leader
   * has entries past the reader's position twice in a row is recreated too (seen in CI after a
   * stream leader kill: heartbeats for 20 s, 11 entries never delivered). An idle reader asks
   * once per stallMs. No durable state is kept on the server: the position the owner
   * resumes from is its own (stored with its results), so a new owner simply starts a new reader.
   */
  readPartition(partition: number, fromSeq: number, opts: ReadOptions = {}): PartitionReader {
    if (!Number.isInteger(partition) || partition < 0 || partition >= this.partitions) {
      throw new RangeError(`partition must be an integer from 0 to ${this.partitions - 1}, got ${partition}`);
    }
    if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) throw new RangeError(`fromSeq must be an integer >= 1, got ${fromSeq}`);
    if (this.closed) throw new TelemetryLogUnavailableError('telemetry log closed');
    const r = new JetStreamPartitionReader(
      this.js,
      partition,
      fromSeq,
      opts,
      this.log,
      () => this.readers.delete(r),
      () => this.lastSeq(partition),
    );
    this.readers.add(r);
    return r;
  }

  /** readPartition with the default options (the shape ingest/cluster/cluster-journal.ts reads through). */
  reader(partition: number, fromSeq: number): PartitionReader {
    return this.readPartition(partition, fromSeq);
  }

  /** Whether the connection to NATS is up right now (appends can only succeed while it is). */
  connected(): boolean {
    return this.up && !this.nc.isClosed();
  }

  /** Stream sequence of the partition's last entry; 0 when it has none (a request to the stream leader). */
  async lastSeq(partition: number): Promise<number> {
    // during a stream leader election JetStream answers 503 "temporarily unavailable" for a few seconds
    const m = await retryTransient(
      () => this.jsm.streams.getMessage(TELEMETRY_STREAM, { last_by_subj: partitionSubjects(partition) }),
      STATE_RETRY_MS,
    );
    return m?.seq ?? 0;
  }

  /** The stream's first and last sequence and message count (what max age has dropped is before firstSeq). */
  async streamState(): Promise<{ firstSeq: number; lastSeq: number; messages: number }> {
    const { state } = await retryTransient(() => this.jsm.streams.info(TELEMETRY_STREAM), STATE_RETRY_MS);
    return { firstSeq: state.first_seq, lastSeq: state.last_seq, messages: state.messages };
  }

  /** Stop the readers and close the connection (appends under way reject). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.readers].map((r) => r.stop()));
    await this.nc.close();
  }
}
