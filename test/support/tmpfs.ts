// A small real filesystem that can be filled: a size-limited tmpfs mounted on a temp dir (needs root,
// as CI runs). `fill()` writes a filler file until the kernel answers ENOSPC, `free()` deletes it.
// tmpfs keeps no blocks in reserve for root (unlike ext4's 5 %), so full means full for ingest too.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  dir: string;
  /** Write the filler until ENOSPC; resolves the filler's size in bytes. */
  fill(): number;
  /** Delete the filler: the space is back. */
  free(): void;
  /** Bytes in use and available (statfs). */
  usage(): { used: number; available: number };
  unmount(): void;
}

const FILLER = '.filler';

function mount(dir: string, sizeBytes: number): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: 'pipe' });
}

/**
 * Whether this process can mount a tmpfs (tried once, on a throw-away dir): `null` if it can, else
 * why not, for `it.skipIf(...)`'s name.
 */
export function tmpfsUnavailable(): string | null {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (process.getuid?.() !== 0) return 'not root (mounting a tmpfs needs root)';
  const dir = mkdtempSync(join(tmpdir(), 'odopulse-tmpfs-probe-'));
  try {
    mount(dir, 1 << 20);
    execFileSync('umount', [dir], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return `mount -t tmpfs failed: ${(err as Error).message.split('\n')[0]}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Mount a tmpfs of `sizeBytes` on a new temp dir. */
export function mountTmpfs(sizeBytes: number): Tmpfs {
  const dir = mkdtempSync(join(tmpdir(), 'odopulse-tmpfs-'));
  mount(dir, sizeBytes);
  const filler = join(dir, FILLER);
  return {
    dir,
    fill() {
      const fd = openSync(filler, 'a');
      const chunk = Buffer.alloc(1 << 20, 0xa5);
      try {
        // a short write means the last pages; the write after it fails with ENOSPC
        for (;;) writeSync(fd, chunk);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      } finally {
        closeSync(fd);
      }
      return statSync(filler).size;
    },
    free() {
      rmSync(filler, { force: true });
    },
    usage() {
      const out = execFileSync('df', ['-B1', '--output=used,avail', dir], { encoding: 'utf8' }).trim().split('\n').at(-1)!;
      const [used, available] = out.trim().split(/\s+/).map(Number);
      return { used, available };
    },
    unmount() {
      try {
        execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
