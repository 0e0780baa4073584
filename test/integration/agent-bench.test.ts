// Smoke run of the agent benchmark. Speed is not asserted (the machine is shared): what is checked
// is that the bench measured something real: the agent ran and published, every figure is a finite
// positive number, the memory figure is that of a live Node process, the spool wrote what it was asked.
import { expect, it } from 'vitest';
import { benchAgent, LEAN_NODE_FLAGS } from '../../bench/agent.js';
import { SIGNAL_PATHS } from '../../proto/signals.js';

interface ProcessFigures {
  nodeFlags: string;
  durationS: number;
  sampleHz: number;
  signals: number;
  batchesPublished: number;
  rssMb: number;
  cpuPctOfOneCore: number;
  targets: { rssMb: number; cpuPct: number };
  meetsTargets: boolean;
}

interface SpoolRun {
  records: number;
  recordsPerS: number;
  mbPerS: number;
}

interface AgentBench {
  process: ProcessFigures;
  processLean: ProcessFigures;
  spool: { recordBytes: number; samplesPerRecord: number; oneAtATime: SpoolRun; groupCommit32: SpoolRun };
}

/** A Node process with the agent loaded takes well over this; a figure below it was not measured. */
const RSS_FLOOR_MB = 15;
const DURATION_S = 3;
const SPOOL_RECORDS = 1000;

const finitePositive = (v: number, what: string) => {
  expect(Number.isFinite(v), `${what} = ${v}`).toBe(true);
  expect(v, what).toBeGreaterThan(0);
};

it('measures the agent process and the spool', async () => {
  // dist/ is built by `npm test` before vitest runs; the bench spawns the compiled agent.
  const r = (await benchAgent({ durationS: DURATION_S, spoolRecords: SPOOL_RECORDS })) as AgentBench;
  console.log(JSON.stringify(r));

  for (const [name, p, flags] of [
    ['process', r.process, '(none)'],
    ['processLean', r.processLean, LEAN_NODE_FLAGS.join(' ')],
  ] as const) {
    expect(p.nodeFlags, name).toBe(flags);
    expect(p).toMatchObject({ durationS: DURATION_S, sampleHz: 1, signals: SIGNAL_PATHS.length });
    // The agent really ran against the broker: at least the batch flushed when it was stopped.
    expect(p.batchesPublished, `${name}.batchesPublished`).toBeGreaterThanOrEqual(1);
    finitePositive(p.rssMb, `${name}.rssMb`);
    expect(p.rssMb, `${name}.rssMb`).toBeGreaterThan(RSS_FLOOR_MB);
    finitePositive(p.cpuPctOfOneCore, `${name}.cpuPctOfOneCore`);
    // Targets are reported beside the figures (whether they are met is speed: not asserted).
    expect(p.targets).toEqual({ rssMb: 60, cpuPct: 2 });
    expect(typeof p.meetsTargets).toBe('boolean');
  }

  expect(r.spool.samplesPerRecord).toBe(10);
  finitePositive(r.spool.recordBytes, 'spool.recordBytes');
  expect(r.spool.groupCommit32.records).toBe(SPOOL_RECORDS);
  expect(r.spool.oneAtATime.records).toBeGreaterThan(0);
  for (const [name, run] of [
    ['oneAtATime', r.spool.oneAtATime],
    ['groupCommit32', r.spool.groupCommit32],
  ] as const) {
    finitePositive(run.recordsPerS, `spool.${name}.recordsPerS`);
    finitePositive(run.mbPerS, `spool.${name}.mbPerS`);
  }
}, 120_000);
