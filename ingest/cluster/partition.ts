// Which partition a vehicle's telemetry belongs to in cluster mode (ingest/cluster/README.md).
//
// Contract: partition = FNV-1a 32-bit hash of the VIN's UTF-8 bytes, modulo the partition count
// (ODOPULSE_PARTITIONS). Every instance must compute the same partition for a VIN, and a vehicle's
// partition decides where its batches are in the stream (subject odopulse.telemetry.<partition>.<vin>)
// and which instance applies its rules. Changing the hash, or the partition count, moves vehicles to
// other partitions: their earlier batches stay under the old partition, so the owners' resume
// positions no longer describe them. Neither may change on a running fleet without a migration.

export const DEFAULT_PARTITIONS = 64;
export const MIN_PARTITIONS = 1;
export const MAX_PARTITIONS = 1024;

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
const utf8 = new TextEncoder();

/** FNV-1a, 32 bits, over `bytes` (unsigned). */
export function fnv1a32(bytes: Uint8Array): number {
  let h = FNV_OFFSET_BASIS;
  for (let i = 0; i < bytes.length; i++) {
    h ^= bytes[i];
    h = Math.imul(h, FNV_PRIME);
  }
  return h >>> 0;
}

/** The partition count is an integer in MIN_PARTITIONS..MAX_PARTITIONS; anything else throws, naming ODOPULSE_PARTITIONS. */
export function validatePartitions(partitions: number): number {
  if (!Number.isInteger(partitions) || partitions < MIN_PARTITIONS || partitions > MAX_PARTITIONS) {
    throw new RangeError(`ODOPULSE_PARTITIONS must be an integer from ${MIN_PARTITIONS} to ${MAX_PARTITIONS}, got ${String(partitions)}`);
  }
  return partitions;
}

/** ODOPULSE_PARTITIONS as given in the environment (unset or empty = DEFAULT_PARTITIONS), validated. */
export function parsePartitions(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return DEFAULT_PARTITIONS;
  const s = value.trim();
  if (!/^\d+$/.test(s))
    throw new RangeError(`ODOPULSE_PARTITIONS must be an integer from ${MIN_PARTITIONS} to ${MAX_PARTITIONS}, got "${value}"`);
  return validatePartitions(Number(s));
}

/** The partition (0..partitions-1) of `vin`: fnv1a32(UTF-8 bytes of vin) mod partitions. */
export function partitionOf(vin: string, partitions: number): number {
  validatePartitions(partitions);
  return fnv1a32(utf8.encode(vin)) % partitions;
}
