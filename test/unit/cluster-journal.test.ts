// The cluster journal's append order (ingest/cluster/cluster-journal.ts): a vehicle's batches reach
// the stream in arrival order even when each append takes its own time (retries through a leader
// election), and one that fails for good takes those queued behind it down with it.
import { describe, expect, it } from 'vitest';
import { ClusterJournal, type TelemetryLogPort } from '../../ingest/cluster/cluster-journal.js';

function fakeLog(delayOf: (vin: string, seq: number) => number, failing = new Set<string>()) {
  const stored: Array<{ vin: string; seq: number }> = [];
  const log: TelemetryLogPort = {
    append: (b) =>
      new Promise((resolve, reject) =>
        setTimeout(
          () => {
            if (failing.has(`${b.vin}:${b.seq}`)) return reject(new Error('no stream leader'));
            stored.push({ vin: b.vin, seq: b.seq });
            resolve('new');
          },
          delayOf(b.vin, b.seq),
        ),
      ),
    reader: () => {
      throw new Error('not read here');
    },
    connected: () => true,
  };
  const journal = new ClusterJournal({
    log,
    partitions: 4,
    saveInfluxPosition: async () => {},
    onData: () => {},
    logger: { warn: () => {} },
  });
  return { journal, stored };
}

const batch = (vin: string, seq: number) => ({ vin, bootId: 'b', seq, payload: new Uint8Array([1]), receivedAt: 0 });

describe('ClusterJournal appends', () => {
  it("keep each vehicle's order whatever each append's own latency, vehicles side by side", async () => {
    // later seqs are faster: in parallel they would land newest first
    const { journal, stored } = fakeLog((_vin, seq) => (10 - seq) * 3);
    const done = [];
    for (let seq = 1; seq <= 9; seq++) for (const vin of ['A', 'B']) done.push(journal.appendBatch(batch(vin, seq)));
    await Promise.all(done);
    for (const vin of ['A', 'B']) expect(stored.filter((s) => s.vin === vin).map((s) => s.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // the vehicles did not wait for each other: B's first landed before A's last
    expect(stored.findIndex((s) => s.vin === 'B' && s.seq === 1)).toBeLessThan(stored.findIndex((s) => s.vin === 'A' && s.seq === 9));
  });

  it('refuses the batches queued behind one that failed, and takes the next ones again', async () => {
    const { journal, stored } = fakeLog(() => 2, new Set(['A:2']));
    const results = await Promise.allSettled([1, 2, 3, 4].map((seq) => journal.appendBatch(batch('A', seq))));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'rejected']);
    expect(stored.map((s) => s.seq)).toEqual([1]);
    // the vehicle sends them again, in order
    await Promise.all([2, 3, 4].map((seq) => journal.appendBatch(batch('A', seq + 10))));
    expect(stored.map((s) => s.seq)).toEqual([1, 12, 13, 14]);
  });
});
