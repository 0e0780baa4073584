// `odopulse bench e2e --quick`, the CI smoke run of the end-to-end benchmark: it must run the whole
// stack and print one JSON result with every figure beside its ceiling. Figures are not asserted.
import { expect, it } from 'vitest';
import { runBin } from '../support/ingest.js';

it('prints the end-to-end figures beside the machine ceilings', async () => {
  const out = await runBin(['bench', 'e2e', '--quick']);
  expect(out.code, out.stderr).toBe(0);
  const r = JSON.parse(out.stdout);
  console.log(JSON.stringify({ combined: r.e2e.combinedCeiling, endToEnd: r.e2e.endToEnd, latency: r.e2e.latencyAtHalfLoad }));
  expect(r.machine.cores).toBeGreaterThan(0);
  expect(r.e2e.influxCeiling.raw.linesPerSec).toBeGreaterThan(0);
  expect(r.e2e.brokerCeiling.readingsPerSec).toBeGreaterThan(0);
  // the combined ceiling is computed from the two in the same run, and end-to-end is compared with it
  const { brokerReadingsPerSec: b, influxLinesPerSec: i } = r.e2e.combinedCeiling;
  expect(r.e2e.combinedCeiling.readingsPerSec).toBeCloseTo(1 / (1 / b + 1 / i), -1);
  expect(r.e2e.endToEnd.ratioToCombinedCeiling).toBeGreaterThan(0);
  // zero loss is behaviour, not speed: every published reading is counted in InfluxDB
  expect(r.e2e.endToEnd.lost).toBe(0);
  expect(r.e2e.endToEnd.readingsInInflux).toBe(r.e2e.endToEnd.readingsPublished);
  expect(r.e2e.latencyAtHalfLoad.hmiMs.n).toBe(r.e2e.latencyAtHalfLoad.expected);
  expect(r.e2e.latencyAtHalfLoad.sseMs.n).toBe(r.e2e.latencyAtHalfLoad.expected);
  expect(r.e2e.connections.connected).toBe(r.e2e.connections.target);
  expect(r.e2e.memory.ingestRssMb.length).toBeGreaterThan(0);
}, 600_000);

it('prints the rules figures in quick mode too (measured rounds after the warm-up)', async () => {
  const out = await runBin(['bench', 'rules', '--quick']);
  expect(out.code, out.stderr).toBe(0);
  const r = JSON.parse(out.stdout);
  expect(r.rules.measuredReadings).toBeGreaterThan(0);
  expect(r.rules.pool.readingsPerSecond).toBeGreaterThan(0);
  expect(r.rules.inThread.readingsPerSecond).toBeGreaterThan(0);
  expect(r.rules.sameEvents).toBe(true);
}, 300_000);
