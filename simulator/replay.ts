// Replay output (docs/contract.md#replay-source): one JSONL file per VIN, one reading per line,
// {ts (ISO 8601), vin, signals, dtcs}. Writes are buffered so thousands of vehicles do not
// need thousands of open files.
import { mkdir, appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Signals } from '../proto/domain.js';
import { createFleet, createFleetVehicleModel } from './fleet.js';

export function formatReplayLine(vin: string, r: { ts: number; signals: Signals; dtcs: string[] }): string {
  return JSON.stringify({ ts: new Date(r.ts).toISOString(), vin, signals: r.signals, dtcs: r.dtcs });
}

export function replayFileFor(dir: string, vin: string): string {
  return join(dir, `${vin}.jsonl`);
}

export class ReplayWriter {
  private readonly buffers = new Map<string, string[]>();
  private buffered = 0;
  private readonly files = new Set<string>();
  private ready: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    private readonly flushBytes = 4 * 1024 * 1024,
  ) {}

  /** Truncate (create) each vehicle's file, so a rerun does not append to an old one. */
  async init(vins: readonly string[]): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const vin of vins) {
      const file = replayFileFor(this.dir, vin);
      await writeFile(file, '');
      this.files.add(file);
    }
  }

  /** Queue a line; returns a promise only when the buffer is full and must be written out. */
  add(vin: string, line: string): Promise<void> | undefined {
    let b = this.buffers.get(vin);
    if (!b) this.buffers.set(vin, (b = []));
    b.push(line);
    this.buffered += line.length + 1;
    return this.buffered >= this.flushBytes ? this.flush() : undefined;
  }

  async flush(): Promise<void> {
    await this.ready;
    const work = [...this.buffers];
    this.buffers.clear();
    this.buffered = 0;
    this.ready = (async () => {
      for (const [vin, lines] of work) {
        const file = replayFileFor(this.dir, vin);
        this.files.add(file);
        await appendFile(file, lines.join('\n') + '\n');
      }
    })();
    await this.ready;
  }

  get paths(): string[] {
    return [...this.files].sort();
  }
}

export interface SimulateToReplayOptions {
  vehicles: number;
  seed: number;
  from: number;
  to: number;
  sampleEveryMs: number;
  outDir: string;
  /** Report position (privacy: off by default). */
  location?: boolean;
  /** Also write a reading at each change of state (default true). */
  transitions?: boolean;
}

/**
 * Simulate a fleet from `from` to `to` as fast as possible and write one replay file per VIN
 * (plus vehicles.json with the profiles). Returns the replay files' paths.
 */
export async function simulateToReplay(opts: SimulateToReplayOptions): Promise<string[]> {
  const { from, to, sampleEveryMs } = opts;
  if (!Number.isFinite(from) || !Number.isFinite(to) || to < from)
    throw new RangeError('simulateToReplay needs finite times with from <= to');
  if (!Number.isFinite(sampleEveryMs) || sampleEveryMs < 1000)
    throw new RangeError(`sampleEveryMs must be at least 1000, got ${sampleEveryMs}`);
  const fleet = createFleet({ vehicles: opts.vehicles, seed: opts.seed, start: from });
  await mkdir(opts.outDir, { recursive: true });
  await writeFile(
    join(opts.outDir, 'vehicles.json'),
    JSON.stringify(
      fleet.vehicles.map((v) => ({ vin: v.vin, ...v.profile })),
      null,
      2,
    ) + '\n',
  );
  const writer = new ReplayWriter(opts.outDir);
  await writer.init(fleet.vehicles.map((v) => v.vin));
  for (const v of fleet.vehicles) {
    const model = createFleetVehicleModel(fleet, v, { location: opts.location, transitions: opts.transitions ?? true });
    for (let ts = from; ts <= to; ts += sampleEveryMs) {
      const r = model.step(ts - model.ts);
      if (!r.reporting) break;
      for (const x of [...(r.transitions ?? []), r]) {
        const pending = writer.add(v.vin, formatReplayLine(v.vin, x));
        if (pending) await pending;
      }
    }
  }
  await writer.flush();
  return writer.paths;
}
