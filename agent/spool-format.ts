// On-disk framing of spool records: [u32 length][u32 crc32(payload)][payload], little endian.
// A torn tail (power cut mid-write) shows up as a short header, a length past the end of the
// file, or a CRC mismatch; the reader stops there and reports the offset to truncate at.
import { fs, zlibCrc32 } from './builtins.js';
import { dirname } from 'node:path';
import type { Sample } from '../proto/domain.js';

export const HEADER_BYTES = 8;
/** A record larger than this is corruption, not data (a batch is at most 256 KiB encoded). */
export const MAX_RECORD_BYTES = 4 * 1024 * 1024;

/** One spooled batch, as written. */
export interface SpoolRecord {
  seq: number;
  bootId: string;
  /** Wall-clock time the batch entered the spool (age bound). */
  at: number;
  /** Samples dropped before this batch (reported to the cloud in the batch's `dropped`). */
  dropped: number;
  samples: Sample[];
  /** Replay: the file line of the batch's last sample (resume point, atomic with the batch). */
  src?: number;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3), the same as zlib's crc32. */
export function crc32(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function encodeRecord(rec: SpoolRecord): Buffer {
  const payload = Buffer.from(JSON.stringify(rec), 'utf8');
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out.writeUInt32LE(crc32(payload), 4);
  payload.copy(out, HEADER_BYTES);
  return out;
}

export interface ScannedRecord {
  offset: number;
  length: number;
  record: SpoolRecord;
}

export interface ScanResult {
  records: ScannedRecord[];
  /** Offset just after the last good record. Less than the buffer's length = torn tail. */
  goodEnd: number;
  /** Why the scan stopped early, if it did. */
  tornReason?: string;
}

function isRecord(v: unknown): v is SpoolRecord {
  const r = v as SpoolRecord;
  return !!r && typeof r.seq === 'number' && typeof r.bootId === 'string' && Array.isArray(r.samples) && typeof r.at === 'number';
}

/**
 * Whole segments (read at open and when compacting, up to the 64 MiB bound) are checked with zlib's
 * native crc32: with V8's optimising compilers off (agent/jit.ts) the loop above checks ~13 MB/s,
 * zlib ~1.8 GB/s. node:zlib costs ~2 MB of RSS, so it is loaded only for such a scan; one record
 * (a send, at most a few hundred KiB) keeps the loop.
 */
const NATIVE_CRC_FROM_BYTES = 1024 * 1024;

/** Parse every intact record of a segment file's contents, in order. */
export function scanRecords(buf: Buffer): ScanResult {
  const crcOf = buf.length >= NATIVE_CRC_FROM_BYTES ? zlibCrc32() : crc32;
  const records: ScannedRecord[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < HEADER_BYTES) return { records, goodEnd: off, tornReason: 'short header' };
    const len = buf.readUInt32LE(off);
    const crc = buf.readUInt32LE(off + 4);
    if (len === 0 || len > MAX_RECORD_BYTES) return { records, goodEnd: off, tornReason: `bad length ${len}` };
    if (off + HEADER_BYTES + len > buf.length) return { records, goodEnd: off, tornReason: 'record past end of file' };
    const payload = buf.subarray(off + HEADER_BYTES, off + HEADER_BYTES + len);
    if (crcOf(payload) !== crc) return { records, goodEnd: off, tornReason: 'CRC mismatch' };
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload.toString('utf8'));
    } catch {
      return { records, goodEnd: off, tornReason: 'undecodable payload' };
    }
    if (!isRecord(parsed)) return { records, goodEnd: off, tornReason: 'not a spool record' };
    records.push({ offset: off, length: HEADER_BYTES + len, record: parsed });
    off += HEADER_BYTES + len;
  }
  return { records, goodEnd: off };
}

/** A fault sample carries at least one active DTC; those are never dropped. */
export function isFaultSample(s: Sample): boolean {
  return !!s.dtcs && s.dtcs.length > 0;
}

/** fsync a directory so a create/rename/unlink in it survives a power cut. */
export function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the data files are still synced.
  }
}

/** Replace a file atomically and durably: write a temp file, fdatasync, rename, fsync the dir. */
export function writeFileDurable(path: string, data: string | Buffer): void {
  const tmp = `${path}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
    fs.fdatasyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, path);
  fsyncDir(dirname(path));
}
