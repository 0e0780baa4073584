// Smoke run of the agent benchmark (figures are printed, not asserted: the machine is shared).
import { expect, it } from 'vitest';
import { benchAgent } from '../../bench/agent.js';

it('measures the agent process and the spool', async () => {
  // dist/ is built by `npm test` before vitest runs; the bench spawns the compiled agent.
  const r = (await benchAgent({ durationS: 3, spoolRecords: 1000 })) as {
    process: { rssMb: number; cpuPctOfOneCore: number; batchesPublished: number };
    spool: { groupCommit32: { recordsPerS: number; mbPerS: number } };
  };
  console.log(JSON.stringify(r));
  expect(r.process.rssMb).toBeGreaterThan(0);
  expect(r.process.cpuPctOfOneCore).toBeGreaterThanOrEqual(0);
  expect(r.spool.groupCommit32.recordsPerS).toBeGreaterThan(0);
}, 120_000);
