// The latency probes (bench/probes.ts) in a child process of their own. In the benchmark's own
// process they shared an event loop and a heap with the load generator: its clients' timers and
// its garbage collection (tens of ms at a time, under a 2,000-vehicle load) were counted as
// publish -> prompt latency, which a car's head unit, a process of its own, never sees.
import { fork } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { latencyProbes, type ProbeTarget } from './probes.js';

type ProbeArgs = Parameters<typeof latencyProbes>;
export type ProbeResult = Awaited<ReturnType<typeof latencyProbes>>;
type Reply = { ok: true; result: ProbeResult } | { ok: false; error: string };

const SELF = fileURLToPath(import.meta.url);

/** latencyProbes(...) run in a child process; rejects with the child's error, or if it dies first. */
export function latencyProbesApart(
  ingests: ProbeTarget[],
  ...rest: ProbeArgs extends [unknown, ...infer R] ? R : never
): Promise<ProbeResult> {
  // structured clone, not JSON: a missing prompt's latency is Infinity; its output to stderr (stdout is the result)
  const child = fork(SELF, [], { serialization: 'advanced', stdio: ['ignore', 2, 2, 'ipc'] });
  const targets = ingests.map(({ api, mqttUrl, auth }) => ({ api, mqttUrl, auth }));
  return new Promise<ProbeResult>((resolve, reject) => {
    let settled = false;
    child.once('message', (m: Reply) => {
      settled = true;
      if (m.ok) resolve(m.result);
      else reject(new Error(`latency probes failed: ${m.error}`));
    });
    child.once('error', (err) => {
      if (!settled) reject(err);
      settled = true;
    });
    child.once('exit', (code, signal) => {
      if (!settled) reject(new Error(`latency probe process exited (${signal ?? code}) before reporting`));
      settled = true;
    });
    child.send([targets, ...rest]);
  });
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url && process.send) {
  process.once('message', (args: ProbeArgs) => {
    const reply = (m: Reply) => process.send!(m, undefined, undefined, () => process.exit(0));
    latencyProbes(...args).then(
      (result) => reply({ ok: true, result }),
      (err: unknown) => reply({ ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
    );
  });
}
