// The agent is I/O-bound (≈ 0.3 % of one core at 1 Hz), yet with default flags V8's optimising
// compilers (Maglev, TurboFan) still compile a few functions that run often while modules load
// (path resolution) and in the spool's CRC loop. Their compiler code in the node binary and their
// working memory then stay resident: ≈ 5–7 MB of RSS on Node 22 and 24 in a process that targets
// < 60 MB (README.md#resource-use). Turning them off at run time keeps the interpreter and the
// baseline compiler (Sparkplug); code already optimised stays valid. ODOPULSE_AGENT_JIT=1 keeps them.
import { createRequire } from 'node:module';

let done = false;

/** Stop V8 from optimising further in this process (see above); once, before the agent loads its dependencies. */
export function leanJit(): void {
  if (done || process.env.ODOPULSE_AGENT_JIT === '1') return;
  done = true;
  const v8 = createRequire(import.meta.url)('node:v8') as typeof import('node:v8');
  v8.setFlagsFromString('--no-opt');
  v8.setFlagsFromString('--no-maglev');
}
