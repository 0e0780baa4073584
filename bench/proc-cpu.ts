// CPU accounting from /proc (Linux) for bench/cluster.ts: utime + stime of a process, of a process
// tree one level deep, and the busy time of the whole machine, in seconds.
import { readFileSync, readdirSync } from 'node:fs';

const CLK_TCK = 100;

function statFields(pid: number): string[] | null {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return f.slice(f.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Own CPU of a process (all its threads), seconds. */
export function ownCpu(pid: number): number {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) / CLK_TCK : 0;
}

/** The live children of `ppid` (from /proc/<pid>/stat), optionally only those named `comm`. */
export function childrenOf(ppid: number, comm?: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const s = readFileSync(`/proc/${name}/stat`, 'utf8');
      const c = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')'));
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (Number(rest[1]) === ppid && (comm === undefined || c === comm)) out.push(Number(name));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/**
 * CPU of a process tree one level deep (the postmaster and its backends): the parent's own time,
 * the time of the children it has reaped (cutime + cstime) and the live children's own time. A
 * backend that exits between two readings moves from the last term to the second: still counted.
 */
export function treeCpu(pid: number): number {
  const f = statFields(pid);
  if (!f) return 0;
  let s = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / CLK_TCK;
  for (const c of childrenOf(pid)) s += ownCpu(c);
  return s;
}

/** Busy core-seconds of the whole machine so far (/proc/stat: everything but idle and iowait). */
export function machineBusy(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = line.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - line[3] - line[4]) / CLK_TCK;
}

export interface Meter {
  name: string;
  read(): number;
}

export function snapshot(meters: Meter[]): Map<string, number> {
  const m = new Map(meters.map((x) => [x.name, x.read()]));
  m.set('__machine', machineBusy());
  return m;
}

export interface ThreadCpu {
  tid: number;
  /** The thread's name (/proc/<pid>/task/<tid>/comm). */
  comm: string;
  seconds: number;
}

/** utime + stime of every live thread of a process (/proc/<pid>/task/<tid>/stat), seconds. */
export function threadsCpu(pid: number): ThreadCpu[] {
  const out: ThreadCpu[] = [];
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tids) {
    try {
      const s = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
      out.push({
        tid: Number(t),
        comm: s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')),
        seconds: (Number(rest[11]) + Number(rest[12])) / CLK_TCK,
      });
    } catch {
      /* exited meanwhile */
    }
  }
  return out;
}

/**
 * CPU of a process between two readings, split by thread: the main thread (tid == pid), the rest
 * (the whole process less the main thread: the process total counts threads that exited in
 * between too), and per thread name (threads live at the second reading; a thread that exited in
 * between is only in `rest`).
 */
export function threadCpuDelta(
  pid: number,
  before: { total: number; threads: ThreadCpu[] },
  after: { total: number; threads: ThreadCpu[] },
): {
  total: number;
  main: number;
  rest: number;
  byName: Record<string, { threads: number; seconds: number }>;
  /** Each thread live at the second reading, busiest first. */
  threads: ThreadCpu[];
} {
  const was = new Map(before.threads.map((t) => [t.tid, t.seconds]));
  const byName: Record<string, { threads: number; seconds: number }> = {};
  const threads: ThreadCpu[] = [];
  let main = 0;
  for (const t of after.threads) {
    const d = t.seconds - (was.get(t.tid) ?? 0);
    threads.push({ tid: t.tid, comm: t.comm, seconds: d });
    if (t.tid === pid) main = d;
    const g = (byName[t.comm] ??= { threads: 0, seconds: 0 });
    g.threads++;
    g.seconds += d;
  }
  const total = after.total - before.total;
  threads.sort((a, b) => b.seconds - a.seconds);
  return { total, main, rest: total - main, byName, threads };
}

/** A reading for threadCpuDelta: the process total and its threads, taken together. */
export function processThreadsCpu(pid: number): { total: number; threads: ThreadCpu[] } {
  return { total: ownCpu(pid), threads: threadsCpu(pid) };
}
