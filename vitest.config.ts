import { defineConfig } from 'vitest/config';

// Integration tests start real servers (influxd, mosquitto, ingest processes): give them time,
// and run files in parallel only as far as a 2-core machine sensibly allows.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // the fault suite runs on its own (npm run test:faults, vitest.faults.config.ts)
    exclude: ['test/faults/**', 'node_modules/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: ['default'],
  },
});
