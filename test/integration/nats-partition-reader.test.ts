// The partition reader (ingest/cluster/partition-reader.ts) against a real nats-server when its
// consumer goes on sending heartbeats but stops delivering: what CI saw after a stream leader kill
// (heartbeats for 20 s, 11 entries never delivered). The fault is injected between the real
// consumer and the reader: the first consumer's messages after the first two are dropped while its
// heartbeats pass. The reader must notice, from the stream leader's last sequence, that the
// partition has more than it was given, and recreate the consumer from its own position.
import { jetstream, type ConsumerMessages, type JetStreamClient } from '@nats-io/jetstream';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { partitionOf } from '../../ingest/cluster/partition.js';
import { JetStreamPartitionReader } from '../../ingest/cluster/partition-reader.js';
import { JetStreamTelemetryLog, type TelemetryLogEntry } from '../../ingest/cluster/telemetry-log.js';
import { NATS_SERVER, startNatsCluster, type NatsCluster } from '../support/nats.js';

const haveNats = NATS_SERVER.startsWith('/') ? existsSync(NATS_SERVER) : true;
const te = new TextEncoder();
const vin = 'WVWZZZ1K000000042';

/** `js` whose first consumer delivers `keep` messages and then drops the rest (heartbeats still pass). */
function droppingAfter(js: JetStreamClient, keep: number): { js: JetStreamClient; dropped: () => number } {
  let consumersMade = 0;
  let dropped = 0;
  const consumers = new Proxy(js.consumers, {
    get(target, prop, receiver) {
      if (prop !== 'get') return Reflect.get(target, prop, receiver) as unknown;
      return async (...args: Parameters<typeof target.get>) => {
        const c = await target.get(...args);
        if (consumersMade++ > 0) return c;
        return new Proxy(c, {
          get(ct, cp, cr) {
            if (cp !== 'consume') return Reflect.get(ct, cp, cr) as unknown;
            return async (...cargs: Parameters<typeof ct.consume>) => {
              const msgs: ConsumerMessages = await ct.consume(...cargs);
              let given = 0;
              return new Proxy(msgs, {
                get(mt, mp, mr) {
                  if (mp !== Symbol.asyncIterator) {
                    const v = Reflect.get(mt, mp, mr) as unknown;
                    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(mt) : v;
                  }
                  return async function* () {
                    for await (const m of mt) {
                      if (given++ < keep) yield m;
                      else dropped++;
                    }
                  };
                },
              });
            };
          },
        });
      };
    },
  });
  return {
    js: new Proxy(js, { get: (t, p, r) => (p === 'consumers' ? consumers : (Reflect.get(t, p, r) as unknown)) }),
    dropped: () => dropped,
  };
}

describe.skipIf(!haveNats)('partition reader, consumer alive but not delivering', () => {
  let nats: NatsCluster;
  let log: JetStreamTelemetryLog;
  beforeAll(async () => {
    nats = await startNatsCluster({ nodes: 1 });
    log = await JetStreamTelemetryLog.connect({ servers: nats.urls.join(','), name: 'reader-stall', partitions: 4, log: () => {} });
    await log.ensureStream({ replicas: 1 });
  });
  afterAll(async () => {
    await log?.close();
    await nats?.close();
  });

  it('recreates the consumer when the stream leader has entries past a position that does not move', async () => {
    const p = partitionOf(vin, 4);
    for (let seq = 1; seq <= 5; seq++) {
      const r = await log.append({ vin, bootId: 'b', seq, payload: te.encode(`e${seq}`), receivedAt: seq });
      expect(r).toBe('new');
    }
    const faulty = droppingAfter(jetstream(log.nc), 2);
    const lines: string[] = [];
    const reader = new JetStreamPartitionReader(
      faulty.js,
      p,
      1,
      { heartbeatMs: 500, stallMs: 1500 },
      (msg) => lines.push(msg),
      () => {},
      () => log.lastSeq(p),
    );
    try {
      const got: TelemetryLogEntry[] = [];
      const deadline = Date.now() + 30_000;
      while (got.length < 5 && Date.now() < deadline) got.push(...(await reader.next(10, 1000)));
      expect(got.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(faulty.dropped()).toBeGreaterThan(0);
      expect(reader.restarts).toBeGreaterThan(0);
      expect(lines.join('\n')).toMatch(/stuck \(the stream has more, none came\) after seq 2/);
      // an idle reader at the end of its partition is left alone: the leader has nothing past it
      const restarts = reader.restarts;
      expect(await reader.next(10, 5000)).toEqual([]);
      expect(reader.restarts).toBe(restarts);
    } finally {
      await reader.stop();
    }
  }, 60_000);
});
