// Which live member should own each partition (ingest/cluster/leases.ts, assignPartitions):
// rendezvous hashing with bounded loads. Pure: no PostgreSQL. Also the tick loop's behaviour against
// a pool that fails or hangs (it never dies, never overlaps itself).
import { describe, expect, it } from 'vitest';
import type { Pool } from 'pg';
import { assignPartitions, LeaseLostError, PartitionLeases, rendezvousScore } from '../../ingest/cluster/leases.js';
import { waitFor } from '../support/wait.js';

const loads = (owners: string[]): Map<string, number> => {
  const m = new Map<string, number>();
  for (const o of owners) m.set(o, (m.get(o) ?? 0) + 1);
  return m;
};
const moved = (a: string[], b: string[]): number => a.filter((o, p) => b[p] !== o).length;

/** Member ids as deployments name them: host names with pids, pod names, numbered instances. */
function memberSet(seed: number, n: number): string[] {
  const styles = [
    (i: number) => `ingest-${i}`,
    (i: number) => `odopulse-7d9f8c${seed % 97}-${(seed * 31 + i * 7919) % 100000}`,
    (i: number) => `host${(seed * 13 + i) % 1000}.example.net-${1000 + ((seed * 101 + i * 37) % 60000)}`,
  ];
  const style = styles[seed % styles.length];
  return Array.from({ length: n }, (_, i) => style(i + seed * 17));
}

describe('assignPartitions', () => {
  it('gives every partition to one of the members, the same answer whatever the order of the members', () => {
    const ms = ['c', 'a', 'b'];
    const a = assignPartitions(ms, 64);
    expect(a).toHaveLength(64);
    for (const o of a) expect(ms).toContain(o);
    expect(assignPartitions(['b', 'c', 'a'], 64)).toEqual(a);
    expect(assignPartitions(['a', 'b', 'c', 'a'], 64)).toEqual(a); // duplicates ignored
    expect(assignPartitions(new Set(['a', 'c', 'b']), 64)).toEqual(a);
    expect(rendezvousScore('a', 5)).toBe(rendezvousScore('a', 5));
  });

  it('no members: no owners; one member: all of them', () => {
    expect(assignPartitions([], 64)).toEqual([]);
    expect(assignPartitions(['only'], 5)).toEqual(['only', 'only', 'only', 'only', 'only']);
  });

  it('balanced within one partition, for any number of members and partitions', () => {
    for (const P of [1, 3, 7, 64, 100, 1024]) {
      for (let n = 1; n <= 12; n++) {
        for (let seed = 0; seed < 3; seed++) {
          const ms = memberSet(seed, n);
          const a = assignPartitions(ms, P);
          const l = loads(a);
          const counts = ms.map((m) => l.get(m) ?? 0);
          expect(counts.reduce((x, y) => x + y, 0)).toBe(P);
          expect(Math.max(...counts) - Math.min(...counts), `P=${P} n=${n} seed=${seed}: ${counts}`).toBeLessThanOrEqual(1);
          expect(Math.max(...counts)).toBe(Math.ceil(P / n));
        }
      }
    }
  });

  it('a member joining takes its share, and few other partitions move', () => {
    for (const P of [64, 256]) {
      for (const n of [1, 2, 3, 4, 8]) {
        let total = 0;
        const runs = 40;
        for (let seed = 0; seed < runs; seed++) {
          const ms = memberSet(seed, n);
          const joiner = `joiner-${seed}`;
          const before = assignPartitions(ms, P);
          const after = assignPartitions([...ms, joiner], P);
          const m = moved(before, after);
          const share = after.filter((o) => o === joiner).length;
          expect(share).toBeGreaterThanOrEqual(Math.floor(P / (n + 1)));
          // what must move is the joiner's share; on top of it, a few shuffled between the others
          expect(m, `P=${P} n=${n} seed=${seed}`).toBeLessThanOrEqual(Math.ceil(share * 2));
          total += m;
        }
        const ideal = P / (n + 1);
        expect(total / runs, `P=${P} n=${n}: mean moves vs ideal ${ideal}`).toBeLessThanOrEqual(ideal * 1.6);
      }
    }
  });

  it('a member leaving: its partitions move, few of the others', () => {
    for (const P of [64, 256]) {
      for (const n of [2, 3, 4, 8]) {
        let others = 0;
        const runs = 40;
        for (let seed = 0; seed < runs; seed++) {
          const ms = memberSet(seed, n);
          const leaver = ms[seed % n];
          const before = assignPartitions(ms, P);
          const after = assignPartitions(
            ms.filter((m) => m !== leaver),
            P,
          );
          for (let p = 0; p < P; p++) if (before[p] === leaver) expect(after[p]).not.toBe(leaver);
          const o = before.filter((x, p) => x !== leaver && after[p] !== x).length;
          expect(o, `P=${P} n=${n} seed=${seed}`).toBeLessThanOrEqual(Math.ceil(P / n));
          others += o;
        }
        // plain rendezvous would move none of them; the bounded loads move some to stay balanced
        expect(others / runs, `P=${P} n=${n}`).toBeLessThanOrEqual((P / n) * 0.6);
      }
    }
  });

  it('far fewer moves than assigning by position (p mod n over the sorted members)', () => {
    const P = 64;
    const ms = memberSet(1, 4);
    const byPosition = (members: string[]) => {
      const s = [...members].sort();
      return Array.from({ length: P }, (_, p) => s[p % s.length]);
    };
    const joined = [...ms, 'joiner'];
    expect(moved(assignPartitions(ms, P), assignPartitions(joined, P))).toBeLessThan(moved(byPosition(ms), byPosition(joined)) / 2);
  });
});

describe('PartitionLeases tick loop, against a pool that fails', () => {
  const quiet = { info: () => {}, warn: () => {}, error: () => {} };
  const noop = async () => {};

  it('rejects settings that cannot work', () => {
    const pool = {} as Pool;
    const base = { pool, instanceId: 'a', partitions: 4, onAcquired: noop, onReleased: noop, log: quiet };
    expect(() => new PartitionLeases({ ...base, leaseMs: 1000, renewMs: 600 })).toThrow(RangeError);
    expect(() => new PartitionLeases({ ...base, partitions: 0 })).toThrow(RangeError);
    expect(() => new PartitionLeases({ ...base, instanceId: '' })).toThrow(RangeError);
  });

  it('a statement that hangs or throws fails the tick, never overlaps the next one, and the ticks go on', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    let calls = 0;
    const pool = {
      // the start-up's schema step: a client whose statements succeed
      connect: async () => ({ query: async () => ({ rows: [{ n: 4, top: 3 }], rowCount: 1 }), release: () => {} }),
      query: (cfg: { text: string }) => {
        if (/DELETE FROM cluster_members WHERE heartbeat_at/.test(cfg.text)) return Promise.resolve({ rows: [], rowCount: 0 });
        calls++;
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        // odd calls take longer than a tick period (within queryTimeoutMs), then throw; even ones throw at once
        const hang = calls % 2 === 1;
        return new Promise((_, reject) =>
          setTimeout(
            () => {
              inFlight--;
              reject(new Error('connection refused'));
            },
            hang ? 150 : 5,
          ),
        );
      },
    } as unknown as Pool;
    const warned: string[] = [];
    const leases = new PartitionLeases({
      pool,
      instanceId: 'a',
      partitions: 4,
      leaseMs: 400,
      renewMs: 100,
      queryTimeoutMs: 200,
      onAcquired: noop,
      onReleased: noop,
      log: { ...quiet, warn: (_o, m) => warned.push(m) },
    });
    await leases.start();
    await waitFor(() => leases.stats().ticks >= 6, { timeoutMs: 20_000, what: 'six ticks' });
    const s = leases.stats();
    expect(s.tickFailures).toBe(s.ticks);
    expect(s.consecutiveFailures).toBe(s.ticks);
    expect(maxInFlight).toBe(1); // one statement at a time: one tick at a time
    expect(warned.filter((m) => /tick failed/.test(m))).toHaveLength(1); // logged once, counted every time
    expect(leases.owned().size).toBe(0);
    await expect(leases.fence({ query: noop } as never, 0, 1)).rejects.toBeInstanceOf(LeaseLostError);
    await leases.stop();
  });
});
