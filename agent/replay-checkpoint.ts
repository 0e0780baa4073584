// Which replay file is in progress (its identity), so an interrupted replay of the same file
// resumes after the last line already in the spool (each spooled batch records its last line,
// atomically with the batch: Spool.sourceLine). Without it a restarted replay would spool the file's first lines again under new seqs, and the
// cloud could not tell them from new data. Cleared once a replay has been fully delivered.
import { fs } from './builtins.js';
import { join } from 'node:path';
import { writeFileDurable } from './spool-format.js';

interface Checkpoint {
  file: string;
  size: number;
  mtimeMs: number;
  line: number;
}

export class ReplayCheckpoint {
  private readonly path: string;
  private readonly id: Omit<Checkpoint, 'line'>;

  constructor(spoolDir: string, file: string) {
    this.path = join(spoolDir, 'replay.json');
    const real = fs.realpathSync(file);
    const st = fs.statSync(real);
    this.id = { file: real, size: st.size, mtimeMs: st.mtimeMs };
  }

  /** Line to resume after, or undefined when this file is not the one being replayed (start over). */
  load(): number | undefined {
    try {
      const c = JSON.parse(fs.readFileSync(this.path, 'utf8')) as Checkpoint;
      if (c.file === this.id.file && c.size === this.id.size && c.mtimeMs === this.id.mtimeMs && Number.isSafeInteger(c.line))
        return c.line;
    } catch {
      // none, or unreadable: start from the beginning
    }
    return undefined;
  }

  /** Durably record that every line up to `line` is in the spool. */
  save(line: number): void {
    writeFileDurable(this.path, JSON.stringify({ ...this.id, line }));
  }

  clear(): void {
    fs.rmSync(this.path, { force: true });
  }
}
