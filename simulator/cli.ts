// `odopulse simulate` flags (strings from commander) -> runSimulate options, with clear errors.
import { runSimulate } from './main.js';

export interface SimulateCliFlags {
  vehicles?: string;
  speedup?: string;
  seed?: string;
  duration?: string;
  broker?: string;
  api?: string;
  apiKey?: string;
  connections?: string;
  sampleEvery?: string;
  replayDir?: string;
  progress?: boolean;
  start?: string;
  hmi?: boolean;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "10m", "1h", "2d", "500ms" or plain milliseconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(s.trim());
  if (!m) throw new RangeError(`not a duration: ${JSON.stringify(s)} (use e.g. 90s, 10m, 1h)`);
  return Number(m[1]) * UNITS[m[2] ?? 'ms'];
}

function num(name: string, s: string | undefined, def: number): number {
  if (s === undefined) return def;
  const n = Number(s);
  if (!Number.isFinite(n)) throw new RangeError(`--${name} must be a number, got ${JSON.stringify(s)}`);
  return n;
}

export async function runSimulateCli(flags: SimulateCliFlags, signal?: AbortSignal): Promise<number> {
  const connections = flags.connections ?? 'per-vehicle';
  if (connections !== 'per-vehicle' && connections !== 'multiplex')
    throw new RangeError(`--connections must be per-vehicle or multiplex, got ${JSON.stringify(connections)}`);
  let start: number | undefined;
  if (flags.start !== undefined) {
    start = Date.parse(flags.start);
    if (!Number.isFinite(start)) throw new RangeError(`--start must be an ISO 8601 time, got ${JSON.stringify(flags.start)}`);
  }
  const summary = await runSimulate({
    vehicles: num('vehicles', flags.vehicles, 50),
    speedup: num('speedup', flags.speedup, 3600),
    seed: num('seed', flags.seed, 1),
    durationMs: parseDuration(flags.duration ?? '10m'),
    broker: flags.broker ?? 'mqtt://127.0.0.1:1883',
    api: flags.api || undefined,
    apiKey: flags.apiKey || process.env.ODOPULSE_API_KEY || undefined,
    connections,
    sampleEveryMs: flags.sampleEvery !== undefined ? num('sample-every', flags.sampleEvery, 60_000) : undefined,
    writeReplayDir: flags.replayDir,
    progress: flags.progress ?? true,
    start,
    hmi: flags.hmi ?? false,
    signal,
  });
  // Some errors are normal over a long run (a reconnect); nothing delivered at all is a failure.
  return summary.readings > 0 && summary.batches === 0 && !flags.replayDir ? 1 : 0;
}
