// Smoke run of the agent benchmark (figures are printed, not asserted: the machine is shared).
import { expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { benchAgent } from '../../bench/agent.js';
import { PACKAGE_ROOT } from '../../proto/paths.js';

it('measures the agent process and the spool', async () => {
  execFileSync(
    join(PACKAGE_ROOT, 'node_modules/.bin/tsc'),
    ['agent/main.ts', '--outDir', 'dist', '--rootDir', '.', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2023',
      '--skipLibCheck', '--esModuleInterop', '--resolveJsonModule', '--types', 'node'],
    { cwd: PACKAGE_ROOT, stdio: 'pipe' },
  );
  const r = (await benchAgent({ durationS: 3, spoolRecords: 1000 })) as {
    process: { rssMb: number; cpuPctOfOneCore: number; batchesPublished: number };
    spool: { groupCommit32: { recordsPerS: number; mbPerS: number } };
  };
  console.log(JSON.stringify(r));
  expect(r.process.rssMb).toBeGreaterThan(0);
  expect(r.process.cpuPctOfOneCore).toBeGreaterThanOrEqual(0);
  expect(r.spool.groupCommit32.recordsPerS).toBeGreaterThan(0);
}, 120_000);
