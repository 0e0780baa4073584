// The cluster benchmark's latency probes are the shared ones (bench/probes.ts), run in a process of
// their own (bench/probe-process.ts) as bench/e2e.ts runs them.
export { latencyProbesApart as latencyProbes } from './probe-process.js';
