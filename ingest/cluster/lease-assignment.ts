// Cluster mode's partition assignment (docs/architecture.md#cluster-mode): which live member should
// own each partition, computed by every instance from the same member list (assignPartitions:
// rendezvous hashing with bounded loads), so all of them come to the same answer without talking to
// each other. Pure: no I/O; the leases (leases.ts) act on it at every tick.
import { createHash } from 'node:crypto';

const fmix32 = (x: number): number => {
  let h = x;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
};

/** Two 32-bit words from SHA-256 of the member id: its seed for the per-partition scores. */
function memberSeed(member: string): [number, number] {
  const d = createHash('sha256').update(member, 'utf8').digest();
  return [d.readUInt32LE(0), d.readUInt32LE(4)];
}

/** Rendezvous score of (member, partition): a well-mixed 32-bit number, the same on every instance. */
export function rendezvousScore(member: string, partition: number): number {
  return scoreOf(memberSeed(member), partition);
}

const scoreOf = (seed: [number, number], p: number): number => fmix32(fmix32(seed[0] ^ Math.imul(p + 1, 0x9e3779b1)) ^ seed[1]);

/** Member ids in a fixed order (code units), the same on every instance. */
export const byId = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The preferred owner of every partition 0..partitions-1 among `members` (index = partition; empty
 * when there are no members). Rendezvous hashing with bounded loads: all (member, partition) pairs
 * are taken in order of their score, highest first, and a pair is assigned while its partition is
 * free and its member below its share, which is floor(P/n) or, for the first P mod n members to
 * reach it, one more. So the loads are within one of each other (plain rendezvous hashing leaves
 * 10..33 partitions per member for P = 64 over 3 members), a partition keeps its owner as long as its
 * top pairs do, and a member joining or leaving moves only a little more than the 1/n it must.
 * Deterministic: the same members in any order give the same answer (ties broken by id, partition).
 */
export function assignPartitions(members: Iterable<string>, partitions: number): string[] {
  const ms = [...new Set(members)].sort(byId);
  const n = ms.length;
  if (n === 0) return [];
  if (n === 1) return Array.from({ length: partitions }, () => ms[0]);
  const total = n * partitions;
  const scores = new Float64Array(total);
  const order = new Uint32Array(total);
  for (let i = 0; i < n; i++) {
    const seed = memberSeed(ms[i]);
    for (let p = 0; p < partitions; p++) {
      const k = i * partitions + p;
      scores[k] = scoreOf(seed, p);
      order[k] = k;
    }
  }
  // highest score first; ties: member id order (ms is sorted, so member index), then partition
  order.sort((a, b) => scores[b] - scores[a] || a - b);
  const owner = new Array<string>(partitions);
  const load = new Uint32Array(n);
  const base = Math.floor(partitions / n);
  const extra = partitions % n;
  let atExtra = 0;
  let left = partitions;
  for (let j = 0; j < total && left > 0; j++) {
    const k = order[j];
    const i = Math.floor(k / partitions);
    const p = k - i * partitions;
    if (owner[p] !== undefined) continue;
    const cap = atExtra < extra ? base + 1 : base;
    if (load[i] >= cap) continue;
    owner[p] = ms[i];
    load[i]++;
    if (load[i] === base + 1) atExtra++;
    left--;
  }
  return owner;
}
