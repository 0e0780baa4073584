// Cluster mode's parts (docs/architecture.md#cluster-mode), opened for ingest/main.ts: the shared
// state in PostgreSQL, the telemetry stream in JetStream, the partition leases, the journal's face
// over the leased partitions and the shared change-log feed. main.ts wires them like the
// one-machine parts; only what differs is here.
import pg from 'pg';
import type { JournalEntry } from '../journal/journal.js';
import type { PromptChange, Stores } from '../store/ports.js';
import { CHANGES_CHANNEL, openPostgresBackend } from '../store/index.js';
import { withPromptService } from '../stores.js';
import { ChangeFeed } from './change-feed.js';
import { ClusterJournal } from './cluster-journal.js';
import { EdgeView } from './edge.js';
import { LeaseLostError, PartitionLeases } from './leases.js';
import { ServiceRecordRouter } from './service-records.js';
import { JetStreamTelemetryLog } from './telemetry-log.js';
import type { ServiceRecord } from '../../rules/types.js';

export interface ClusterSettings {
  natsServers: string[];
  databaseUrl: string;
  instanceId: string;
  partitions: number;
  replicas: number;
  maxPacketBytes: number;
}

type Log = {
  info(o: object, m?: string): void;
  warn(o: object, m?: string): void;
  error(o: object, m?: string): void;
};

/** What the rest of ingest needs from the cluster once it runs (late-bound: they are built after). */
export interface ClusterConsumers {
  /** A partition came here: forget cached rule states of its vehicles. */
  evict(which: (vin: string) => boolean): void;
  /** New entries are buffered: wake the pipeline's loops. */
  wake(): void;
  /** Changes committed by any instance, in sequence order: fan them out locally. */
  changes(changes: PromptChange[]): void;
  /** A vehicle with held-back prompts sent telemetry here: try its HMI delivery again. */
  telemetry(vin: string): void;
  /** Store and apply a service visit here (this instance owns the vehicle's partition); its id. */
  applyServiceRecord(vin: string, rec: ServiceRecord): Promise<number>;
}

export interface Cluster {
  stores: Stores;
  journal: ClusterJournal;
  edge: EdgeView;
  instanceId: string;
  /** For the rules runner: this instance's vehicles, and the fence of each commit. */
  rules: {
    owns(vin: string): boolean;
    fence(entries: readonly JournalEntry[]): Promise<void>;
    fenceFor(vins: readonly string[]): () => Promise<void>;
  };
  start(consumers: ClusterConsumers): Promise<void>;
  /** A change was committed here: read the shared log now rather than at the notification. */
  kick(): void;
  /** A service visit, applied by the owner of the vehicle's partition (here or forwarded); its id. */
  serviceRecord(vin: string, rec: ServiceRecord): Promise<number>;
  health(): { nats: boolean; partitionsHeld: number; members: number; leaseTickFailures: number };
  stop(): Promise<void>;
}

async function checked<T>(setting: string, what: Promise<T>): Promise<T> {
  try {
    return await what;
  } catch (err) {
    throw new Error(`${setting}: ${(err as Error).message}`, { cause: err });
  }
}

export async function openCluster(s: ClusterSettings, log: Log): Promise<Cluster> {
  const backend = await checked('ODOPULSE_DATABASE_URL', openPostgresBackend(s.databaseUrl, { instanceId: s.instanceId }));
  const stores = withPromptService(backend);
  const telemetryLog = await JetStreamTelemetryLog.connect({
    servers: s.natsServers,
    name: s.instanceId,
    partitions: s.partitions,
    log: (m) => log.info({ part: 'nats' }, m),
  }).catch(async (err: unknown) => {
    await stores.close();
    throw err;
  });
  await checked('ODOPULSE_NATS_URL', telemetryLog.ensureStream({ replicas: s.replicas, maxPacketBytes: s.maxPacketBytes }));
  // its own small pool: a busy store pool never delays a heartbeat
  const leasePool = new pg.Pool({ connectionString: s.databaseUrl, max: 2 });
  leasePool.on('error', () => {});

  let consumers: ClusterConsumers | null = null;
  const journal = new ClusterJournal({
    log: telemetryLog,
    partitions: s.partitions,
    // on the store's pool (not the leases' two connections, kept for heartbeats); a loss it finds releases the partition
    saveInfluxPosition: (partition, epoch, seq) => leases.fence(backend.sql, partition, epoch, { influxSeq: seq }),
    onData: () => consumers?.wake(),
    logger: log,
  });
  const serviceRecords = new ServiceRecordRouter({
    nc: telemetryLog.nc,
    partitionOf: (vin) => journal.partitionOf(vin),
    owns: (vin) => journal.owns(vin),
    apply: (vin, rec) => {
      if (!consumers) throw new Error('cluster not started');
      return consumers.applyServiceRecord(vin, rec);
    },
    log,
  });
  const leases = new PartitionLeases({
    pool: leasePool,
    instanceId: s.instanceId,
    partitions: s.partitions,
    onAcquired: async (p, epoch, from) => {
      consumers?.evict((vin) => journal.partitionOf(vin) === p);
      journal.attach(p, epoch, from);
      serviceRecords.attach(p);
      log.info({ partition: p, epoch, from }, 'partition acquired');
    },
    onReleased: async (p, reason) => {
      // the in-flight step's commit is fenced: once the lease is gone it rolls back, never half-applies
      serviceRecords.detach(p);
      await journal.detach(p);
      log.info({ partition: p, reason }, 'partition released');
    },
    log,
  });
  const edge = new EdgeView((vin) => consumers?.telemetry(vin));

  let feed: ChangeFeed | null = null;
  let listener: pg.Client | null = null;
  const listen = async (onNotify: () => void): Promise<() => Promise<void>> => {
    let stopped = false;
    const retry = () => {
      if (stopped) return;
      setTimeout(() => {
        if (!stopped) connectListener().catch(retry);
      }, 1000).unref();
    };
    const connectListener = async (): Promise<void> => {
      const c = new pg.Client({ connectionString: s.databaseUrl });
      let failed = false;
      const fail = () => {
        if (failed) return;
        failed = true;
        void c.end().catch(() => undefined);
        if (listener === c) listener = null;
        retry();
      };
      c.on('notification', onNotify);
      c.on('error', (err) => {
        log.warn({ err: err.message }, 'change notifications lost; reconnecting (the feed still polls)');
        fail();
      });
      try {
        await c.connect();
        await c.query(`LISTEN ${CHANGES_CHANNEL}`);
      } catch (err) {
        failed = true; // the caller retries (or, at start, reports it)
        await c.end().catch(() => undefined);
        throw err;
      }
      if (stopped) return void (await c.end().catch(() => undefined));
      listener = c;
      onNotify(); // anything committed while not listening
    };
    await connectListener();
    return async () => {
      stopped = true;
      await listener?.end().catch(() => undefined);
    };
  };

  return {
    stores,
    journal,
    edge,
    instanceId: s.instanceId,
    rules: {
      owns: (vin) => journal.owns(vin),
      fence: async (entries) => {
        const items = [...journal.positions(entries)].map(([partition, { seq, epoch }]) => ({ partition, epoch, rulesSeq: seq }));
        const gone = items.filter((i) => i.epoch < 0 || journal.epochOf(i.partition) !== i.epoch).map((i) => i.partition);
        if (gone.length) throw new LeaseLostError(gone, 'released while the step ran');
        await leases.fenceMany(backend.sql, items);
      },
      fenceFor: (vins) => {
        // the epochs now, when the work is chosen: a later holding of a partition is another owner's work
        const held = new Map<number, number>();
        for (const vin of vins) {
          const p = journal.partitionOf(vin);
          held.set(p, journal.epochOf(p) ?? -1);
        }
        return async () => {
          const items = [...held].map(([partition, epoch]) => ({ partition, epoch }));
          const gone = items.filter((i) => i.epoch < 0 || journal.epochOf(i.partition) !== i.epoch).map((i) => i.partition);
          if (gone.length) throw new LeaseLostError(gone, 'released while the work ran');
          await leases.fenceMany(backend.sql, items);
        };
      },
    },
    async start(c) {
      consumers = c;
      feed = new ChangeFeed({
        changesSince: (seq, limit) => stores.prompts.changesSince(seq, undefined, limit),
        lastChangeSeq: () => stores.prompts.lastChangeSeq(),
        listen,
        onChanges: (changes) => c.changes(changes),
        log,
      });
      await feed.start();
      await leases.start();
    },
    kick: () => feed?.kick(),
    serviceRecord: (vin, rec) => serviceRecords.route(vin, rec),
    health: () => {
      const st = leases.stats();
      return {
        nats: telemetryLog.connected(),
        partitionsHeld: leases.owned().size,
        members: st.members,
        leaseTickFailures: st.tickFailures,
      };
    },
    async stop() {
      await leases.stop(); // hands the partitions back at once (the others take over without waiting for expiry)
      await feed?.stop();
      serviceRecords.close();
      await journal.close();
      await telemetryLog.close();
      await leasePool.end();
    },
  };
}
