import { defineConfig } from 'vitest/config';

// The fault suite (test/faults, docs/architecture.md#fault-suite): real processes killed, frozen,
// starved of disk and fed garbage. One file at a time: the faults are timing-sensitive enough
// without two of them sharing 2 cores, and each case holds its own load.
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    globalSetup: ['test/faults/support/global-setup.ts'],
    testTimeout: 600_000,
    hookTimeout: 120_000,
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    reporters: ['default'],
  },
});
