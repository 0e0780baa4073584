// `odopulse bench e2e --quick` and `bench cluster --quick`, the CI smoke runs of the end-to-end
// benchmarks: each must run the whole stack and print one JSON result with every figure beside its
// ceiling. Figures are not asserted; zero loss and answered probes are (behaviour, not speed).
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { runBin } from '../support/ingest.js';

it('prints the end-to-end figures beside the machine ceilings', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'odopulse-bench-'));
  const out = await runBin(['bench', 'e2e', '--quick', '--out', dir]);
  expect(out.code, out.stderr).toBe(0);
  const r = JSON.parse(out.stdout);
  console.log(
    JSON.stringify({
      combined: r.e2e.combinedCeiling,
      endToEnd: r.e2e.endToEnd,
      cpu: r.e2e.ingestCpu.usPerReading,
      latency: { half: r.e2e.latencyAtHalfLoad.hmiMs, at90: r.e2e.latencyAt90PctLoad.hmiMs },
    }),
  );
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
  for (const l of [r.e2e.latencyAtHalfLoad, r.e2e.latencyAt90PctLoad]) {
    expect(l.hmiMs.n).toBe(l.expected);
    expect(l.sseMs.n).toBe(l.expected);
    expect(l.missingHmi).toBe(0);
    expect(l.timedOutCycles).toBe(0);
    expect(l.lostSoFar).toBe(0);
  }
  expect(r.e2e.allPhases.lost).toBe(0);
  // CPU per reading of the ingest child, main thread and the rest, from /proc
  const cpu = r.e2e.ingestCpu.usPerReading;
  expect(cpu.total).toBeGreaterThan(0);
  expect(cpu.mainThread).toBeGreaterThan(0);
  expect(cpu.mainThread + cpu.otherThreads).toBeCloseTo(cpu.total, 0);
  // the profiled run: one profile per thread (main and the rules workers), each with top frames
  expect(r.e2e.profile.lost).toBe(0);
  expect(r.e2e.profile.threads.length).toBeGreaterThanOrEqual(2);
  for (const t of r.e2e.profile.threads) expect(t.frames.length).toBeGreaterThan(0);
  expect(r.e2e.connections.connected).toBe(r.e2e.connections.target);
  expect(r.e2e.memory.ingestRssMb.length).toBeGreaterThan(0);
  expect(existsSync(join(dir, 'result.json'))).toBe(true);
  expect(readdirSync(join(dir, 'cpu-profile')).filter((f) => f.endsWith('.cpuprofile')).length).toBe(r.e2e.profile.threads.length);
}, 600_000);

it('prints the rules figures in quick mode too (measured rounds after the warm-up)', async () => {
  const out = await runBin(['bench', 'rules', '--quick']);
  expect(out.code, out.stderr).toBe(0);
  const r = JSON.parse(out.stdout);
  expect(r.rules.measuredReadings).toBeGreaterThan(0);
  expect(r.rules.pool.readingsPerSecond).toBeGreaterThan(0);
  expect(r.rules.inThread.readingsPerSecond).toBeGreaterThan(0);
  expect(r.rules.sameEvents).toBe(true);
  // every figure measured, none left empty
  expect(JSON.stringify(r.rules)).not.toContain('null');
}, 300_000);

it('runs the cluster benchmark in quick mode: 1, 2 and 3 instances, nothing lost, every probe answered, the ceilings beside', async () => {
  const out = await runBin(['bench', 'cluster', '--quick']);
  expect(out.code, out.stderr).toBe(0);
  const { cluster } = JSON.parse(out.stdout);
  expect(cluster.runs.map((r: { instances: number }) => r.instances)).toEqual([1, 2, 3]);
  for (const r of cluster.runs) {
    expect(r.endToEnd.lost).toBe(0);
    expect(r.endToEnd.readingsInInflux).toBe(r.endToEnd.readingsPublished);
    expect(r.endToEnd.partitionsRulesBehindAtEnd).toBe(0);
    expect(r.partitionsHeld.reduce((a: number, b: number) => a + b, 0)).toBe(64);
    expect(r.latencyAtHalfLoad.hmiMs.n).toBe(r.latencyAtHalfLoad.expected);
    expect(r.latencyAtHalfLoad.sseMs.n).toBe(r.latencyAtHalfLoad.expected);
    expect(r.latencyAtHalfLoad.timedOutCycles).toBe(0);
  }
  expect(cluster.ceilings.jetstream.readingsPerSec).toBeGreaterThan(0);
  expect(cluster.ceilings.postgres.rulesCommit.commitsPerSec).toBeGreaterThan(0);
}, 600_000);
