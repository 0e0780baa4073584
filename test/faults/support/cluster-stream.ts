// Read-backs straight from the telemetry stream for the cluster-mode fault case
// (test/faults/cluster.test.ts): per vehicle the stream sequence of its last message, the stream's
// order per vehicle (and the batches late in it), its last sequence now and its RAFT leader.
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { partitionOf } from '../../../ingest/cluster/partition.js';
import type { NatsCluster } from '../../support/nats.js';

/** The telemetry stream and its subjects (ingest/cluster/telemetry-log.ts): odopulse.telemetry.<partition>.<vin>. */
const TELEMETRY_STREAM = 'ODOPULSE_TELEMETRY';
const SUBJECT_PREFIX = 'odopulse.telemetry';

/**
 * For each VIN, the stream sequence of its last message in the telemetry stream (a last_by_subj
 * get on odopulse.telemetry.<partition>.<vin>); absent when it has none.
 */
export async function lastStreamSeqs(natsUrls: string[], vins: string[], partitions: number): Promise<Map<string, number>> {
  const nc = await connect({ servers: natsUrls, timeout: 5000 });
  try {
    const jsm = await jetstreamManager(nc);
    const out = new Map<string, number>();
    for (const vin of vins) {
      const m = await jsm.streams.getMessage(TELEMETRY_STREAM, {
        last_by_subj: `${SUBJECT_PREFIX}.${partitionOf(vin, partitions)}.${vin}`,
      });
      if (m) out.set(vin, m.seq);
    }
    return out;
  } finally {
    await nc.close();
  }
}

/** One vehicle's batches in the telemetry stream, in stream order. */
export interface StreamBatch {
  streamSeq: number;
  seq: number;
}

/**
 * Every message of the telemetry stream, by VIN, in stream order (the order its partition's owner
 * applies them in), read with an ordered consumer from the first sequence to the last one there now.
 */
export async function streamOrder(natsUrls: string[], timeoutMs = 60_000): Promise<Map<string, StreamBatch[]>> {
  const nc = await connect({ servers: natsUrls, timeout: 5000 });
  const out = new Map<string, StreamBatch[]>();
  try {
    const jsm = await jetstreamManager(nc);
    const last = (await jsm.streams.info(TELEMETRY_STREAM)).state.last_seq;
    if (last === 0) return out;
    const consumer = await jetstream(nc).consumers.get(TELEMETRY_STREAM, { filter_subjects: `${SUBJECT_PREFIX}.>` });
    const msgs = await consumer.consume({ max_messages: 1000 });
    const timer = setTimeout(() => void msgs.stop(), timeoutMs);
    try {
      for await (const m of msgs) {
        const vin = m.subject.split('.')[3] ?? '';
        const list = out.get(vin) ?? [];
        list.push({ streamSeq: m.seq, seq: Number(m.headers?.get('Odopulse-Seq')) });
        out.set(vin, list);
        if (m.seq >= last) break;
      }
    } finally {
      clearTimeout(timer);
      await msgs.close().catch(() => {});
    }
    return out;
  } finally {
    await nc.close();
  }
}

/**
 * Batches that came after a newer one of the same vehicle in the stream (a seq not seen before,
 * below the highest seen so far): the rules apply them as stale (latest only, no detector runs).
 */
export function lateBatches(order: Map<string, StreamBatch[]>): { vin: string; seq: number; streamSeq: number; after: StreamBatch }[] {
  const late: { vin: string; seq: number; streamSeq: number; after: StreamBatch }[] = [];
  for (const [vin, list] of order) {
    const seen = new Set<number>();
    let top: StreamBatch | undefined;
    for (const b of list) {
      if (!seen.has(b.seq) && top && b.seq < top.seq) late.push({ vin, seq: b.seq, streamSeq: b.streamSeq, after: top });
      seen.add(b.seq);
      if (!top || b.seq > top.seq) top = b;
    }
  }
  return late;
}

/** The telemetry stream's last sequence now (0 if unreachable): marks a fault's moment in the stream. */
export async function streamLastSeq(nats: NatsCluster): Promise<number> {
  const nc = await connect({ servers: nats.urls.filter((_, i) => nats.running(i)), timeout: 5000 });
  try {
    return (await (await jetstreamManager(nc)).streams.info(TELEMETRY_STREAM)).state.last_seq;
  } catch {
    return 0;
  } finally {
    await nc.close();
  }
}

/** Index (0-based) of the node that leads the telemetry stream's RAFT group, or undefined. */
export async function streamLeader(nats: NatsCluster): Promise<number | undefined> {
  const nc = await connect({ servers: nats.urls.filter((_, i) => nats.running(i)), timeout: 5000 });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(TELEMETRY_STREAM);
    const i = nats.nodes.findIndex((n) => n.name === info.cluster?.leader);
    return i >= 0 ? i : undefined;
  } catch {
    return undefined;
  } finally {
    await nc.close();
  }
}
