// The agent's entry. It imports nothing but jit.ts before it turns V8's optimising compilers off:
// Node resolves and links every static import of a module before it runs any of them, and on
// Node 22 and 24 that work alone (path resolution for ~30 modules) already has Maglev and TurboFan
// compile, which is most of what turning them off saves. The agent itself is run.ts.
import { leanJit } from './jit.js';

leanJit();

export type { AgentDeps, AgentOptions } from './run.js';
export const { AgentOptionsSchema, defaultSpoolDir, newBootId, runAgent, splitToFit } = await import('./run.js');
