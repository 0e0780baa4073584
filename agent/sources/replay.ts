// Replay source: a JSONL file (docs/contract.md#replay-source), one sample per line, paced by the lines' own
// timestamps divided by `speed` (0 = as fast as possible). Lines for another VIN and invalid
// lines are reported with their line number and skipped; the replay goes on.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { formatZodError, parseReplayLine, type Sample } from '../../proto/domain.js';
import type { SignalSource, SourceIssue } from './source.js';

export interface ReplaySourceOptions {
  file: string;
  vin: string;
  /** Replay speed factor; 0 = as fast as possible. */
  speed: number;
  onIssue?: (issue: SourceIssue) => void;
  /** Skip lines up to and including this one (resume an interrupted replay). */
  resumeAfterLine?: number;
  /** Awaited before each sample is handed on: back-pressure from the spool. */
  backpressure?: () => Promise<void>;
}

export class ReplaySource implements SignalSource {
  private stopping = false;
  private started = false;
  private readonly abort = new AbortController();
  private resolveDone!: () => void;
  private rejectDone!: (e: Error) => void;
  readonly done: Promise<void>;
  /** The file line each delivered sample came from (for the resume checkpoint). */
  readonly lineOf = new WeakMap<Sample, number>();
  lines = 0;
  delivered = 0;
  skipped = 0;

  constructor(private readonly o: ReplaySourceOptions) {
    if (!(o.speed >= 0)) throw new Error(`replay speed must be >= 0, got ${o.speed}`);
    this.done = new Promise((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
    this.done.catch(() => {}); // the caller awaits it; avoid an unhandled rejection meanwhile
  }

  async start(onSample: (s: Sample) => void): Promise<void> {
    this.started = true;
    const input = createReadStream(this.o.file, { encoding: 'utf8' });
    // Open errors (missing file) surface here, before the agent goes on.
    await new Promise<void>((res, rej) => {
      input.once('open', () => res());
      input.once('error', rej);
    });
    void this.run(input, onSample).then(this.resolveDone, this.rejectDone);
  }

  private async run(input: NodeJS.ReadableStream, onSample: (s: Sample) => void): Promise<void> {
    const rl = createInterface({ input, crlfDelay: Infinity });
    let t0Wall = 0;
    let t0Event = 0;
    for await (const line of rl) {
      if (this.stopping) break;
      this.lines++;
      if (line.trim() === '' || this.lines <= (this.o.resumeAfterLine ?? 0)) continue;
      let sample: Sample;
      try {
        const r = parseReplayLine(line);
        if (r.vin !== this.o.vin) {
          this.issue(this.lines, `VIN ${r.vin} is not this agent's VIN ${this.o.vin}`);
          continue;
        }
        sample = { ts: r.ts, signals: r.signals, ...(r.dtcs ? { dtcs: r.dtcs } : {}) };
      } catch (err) {
        this.issue(this.lines, err instanceof z.ZodError ? formatZodError(err) : (err as Error).message);
        continue;
      }
      if (this.o.speed > 0) {
        if (this.delivered === 0) {
          t0Wall = Date.now();
          t0Event = sample.ts;
        }
        const wait = t0Wall + (sample.ts - t0Event) / this.o.speed - Date.now();
        if (wait > 0) {
          try {
            await sleep(wait, undefined, { signal: this.abort.signal });
          } catch {
            break; // stopped while waiting
          }
        }
      }
      if (this.o.backpressure) await this.o.backpressure();
      this.delivered++;
      this.lineOf.set(sample, this.lines);
      onSample(sample);
    }
    rl.close();
  }

  private issue(line: number, reason: string): void {
    this.skipped++;
    this.o.onIssue?.({ line, reason });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    if (!this.started) this.resolveDone();
    await this.done.catch(() => {});
  }
}
