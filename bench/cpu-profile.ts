// Top frames of V8 `.cpuprofile` files (written by `--cpu-prof`): self time per function, so a bench
// round can say where ingest's CPU went (bench/README.md#profiles).
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface TopFrame {
  frame: string;
  selfMs: number;
  share: number;
}

/**
 * Frames whose self time is a blocked thread, not CPU: Piscina's worker sleeps in Atomics.wait()
 * inside atomicsWaitLoop (no frame of its own), so the sampler puts that sleep on this frame.
 */
const WAITING = new Set(['atomicsWaitLoop']);

/** Self time per function of one profile, highest first (`share`: of the busy time, idle and waiting excluded). */
export function topFrames(profile: CpuProfile, limit = 25): { totalMs: number; idleMs: number; waitMs: number; frames: TopFrame[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  // time deltas are in µs; sample i's delta is the time since the previous sample
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  for (let i = 0; i < samples.length; i++) self.set(samples[i], (self.get(samples[i]) ?? 0) + (deltas[i + 1] ?? deltas[i] ?? 0));
  const perFrame = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let wait = 0;
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    total += us;
    if (cf.functionName === '(idle)') {
      idle += us;
      continue;
    }
    if (WAITING.has(cf.functionName)) {
      wait += us;
      continue;
    }
    const where = cf.url ? `${shortUrl(cf.url)}:${cf.lineNumber + 1}` : '';
    const key = `${cf.functionName || '(anonymous)'} ${where}`.trim();
    perFrame.set(key, (perFrame.get(key) ?? 0) + us);
  }
  const busy = total - idle - wait;
  const frames = [...perFrame]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([frame, us]) => ({ frame, selfMs: Math.round(us / 1000), share: busy ? Math.round((us / busy) * 1000) / 1000 : 0 }));
  return { totalMs: Math.round(total / 1000), idleMs: Math.round(idle / 1000), waitMs: Math.round(wait / 1000), frames };
}

function shortUrl(url: string): string {
  const i = url.indexOf('/dist/');
  if (i >= 0) return url.slice(i + 1);
  const m = url.indexOf('/node_modules/');
  if (m >= 0) return url.slice(m + 1);
  return url.replace(/^file:\/\//, '');
}

/** Every `.cpuprofile` in a folder (one per thread), with its top frames. */
export function summariseProfiles(dir: string, limit = 25) {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .sort()
    .map((f) => ({ file: basename(f), ...topFrames(JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile, limit) }));
}

if (process.argv[1] && import.meta.url === `file://${process.argv[1]}`) {
  process.stdout.write(JSON.stringify(summariseProfiles(process.argv[2] ?? '.', Number(process.argv[3] ?? 25)), null, 2) + '\n');
}
