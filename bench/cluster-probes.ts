// The cluster benchmark's latency probes are the shared ones (bench/probes.ts), also used by bench/e2e.ts.
export { latencyProbes } from './probes.js';
