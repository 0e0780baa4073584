import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { flagsToAgentOptions } from '../../../agent/cli.js';
import { AgentOptionsSchema, defaultSpoolDir, splitToFit } from '../../../agent/main.js';
import { SIZE_LIMITS, encodeTelemetryBatch } from '../../../proto/codec.js';
import { SIGNAL_PATHS } from '../../../proto/signals.js';
import { entriesToSample, kuksaValue } from '../../../agent/sources/kuksa.js';
import { ReplaySource } from '../../../agent/sources/replay.js';
import { SimulatedSource } from '../../../agent/sources/simulated.js';
import type { SourceIssue } from '../../../agent/sources/source.js';
import { backoffDelay } from '../../../agent/uplink.js';
import type { Sample } from '../../../proto/domain.js';
import { VSS } from '../../../proto/signals.js';
import { waitFor } from '../../support/wait.js';
import { T0, VIN, VIN2, replayLine } from './fixtures.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'sources-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('ReplaySource', () => {
  it('delivers valid lines for its VIN, reports the others with line numbers, and resumes after a line', async () => {
    const file = join(dir, 'r.jsonl');
    writeFileSync(
      file,
      [
        replayLine(0),
        '',
        'nope',
        replayLine(1, VIN2),
        replayLine(2),
        '{"ts":"2026-03-01T08:00:00Z","vin":"' + VIN + '","signals":{"Vehicle.Speed":-5}}',
        replayLine(3),
      ].join('\n'),
    );
    const got: Sample[] = [];
    const issues: SourceIssue[] = [];
    const src = new ReplaySource({ file, vin: VIN, speed: 0, onIssue: (i) => issues.push(i) });
    await src.start((s) => got.push(s));
    await src.done;
    expect(got.map((s) => s.ts)).toEqual([T0, T0 + 2000, T0 + 3000]);
    expect(issues.map((i) => i.line)).toEqual([3, 4, 6]);
    expect(issues[1].reason).toMatch(/not this agent's VIN/);
    expect(issues[2].reason).toMatch(/Vehicle.Speed/);
    expect(got.map((s) => src.lineOf.get(s))).toEqual([1, 5, 7]);

    const resumed: Sample[] = [];
    const again = new ReplaySource({ file, vin: VIN, speed: 0, resumeAfterLine: 5 });
    await again.start((s) => resumed.push(s));
    await again.done;
    expect(resumed.map((s) => s.ts)).toEqual([T0 + 3000]);
  });

  it('paces by the file timestamps divided by speed, and stops when asked', async () => {
    const file = join(dir, 'slow.jsonl');
    writeFileSync(file, Array.from({ length: 5 }, (_, i) => replayLine(i * 3600)).join('\n')); // an hour apart
    const got: Sample[] = [];
    const src = new ReplaySource({ file, vin: VIN, speed: 1 });
    await src.start((s) => got.push(s));
    // Positive marker: the second line has been read. Nothing is awaited between reading a line and
    // pacing it, so by the time this poll sees it the source is waiting out the hour.
    await waitFor(() => src.lines >= 2, { what: 'the second line read' });
    expect(got).toHaveLength(1); // the next one is an hour away
    await src.stop();
    await src.done;
    expect(got).toHaveLength(1);
    expect(src.delivered).toBe(1);
  });

  it('a missing file fails at start with a clear error', async () => {
    const src = new ReplaySource({ file: join(dir, 'missing.jsonl'), vin: VIN, speed: 0 });
    await expect(src.start(() => {})).rejects.toThrow(/ENOENT/);
  });
});

describe('SimulatedSource', () => {
  it('steps the vehicle model and delivers valid samples', async () => {
    const got: Sample[] = [];
    const src = new SimulatedSource({ vin: VIN, seed: 7, powertrain: 'BEV', startTs: T0, stepMs: 60_000, speed: 0, maxSteps: 30 });
    await src.start((s) => got.push(s));
    await src.done;
    expect(got.length).toBe(30);
    expect(got[1].ts - got[0].ts).toBe(60_000);
    expect(typeof got[0].signals[VSS.odometer]).toBe('number');
  });
});

describe('Kuksa value conversion', () => {
  it('maps typed values and timestamps', () => {
    expect(kuksaValue({ typedValue: 'uint64', uint64: '42' })).toBe(42);
    expect(kuksaValue({ typedValue: 'bool', bool: true })).toBe(true);
    expect(kuksaValue({ typedValue: 'stringArray', stringArray: { values: ['P0A80'] } })).toEqual(['P0A80']);
    expect(kuksaValue(undefined)).toBeUndefined();
    const bad: string[] = [];
    const s = entriesToSample(
      {
        [VSS.isCharging]: { timestamp: { seconds: '1772352000', nanos: 5_000_000 }, value: { typedValue: 'bool', bool: true } },
        [VSS.chargePortType]: { value: { typedValue: 'string', string: 'MAGIC' } },
        'Vehicle.Unknown': { value: { typedValue: 'float', float: 1 } },
      },
      123,
      (m) => bad.push(m),
    );
    expect(s).toEqual({ ts: 1772352000005, signals: { [VSS.isCharging]: true } });
    expect(bad.join()).toMatch(/ChargePortType/);
  });
});

describe('agent options', () => {
  it('defaults and validation', () => {
    const o = AgentOptionsSchema.parse({ vin: VIN, broker: 'mqtt://h:1883', replay: 'f' });
    expect(o).toMatchObject({ topicPrefix: 'v1', speed: 1, flushRateLimit: 50, sampling: 'auto' });
    expect(AgentOptionsSchema.safeParse({ vin: VIN, broker: 'http://x', replay: 'f' }).success).toBe(false);
    expect(AgentOptionsSchema.safeParse({ vin: VIN, broker: 'mqtt://x', replay: 'f', simulate: true }).success).toBe(false);
    expect(defaultSpoolDir(VIN, { ODOPULSE_DATA_DIR: '/var/lib/odo' })).toBe(`/var/lib/odo/agent/${VIN}`);
    expect(defaultSpoolDir(VIN, {})).toBe(`data/agent/${VIN}`);
  });

  it('maps CLI flags', () => {
    const o = flagsToAgentOptions({
      vin: VIN,
      replay: 'f.jsonl',
      speed: '0',
      batchMaxDelay: '500',
      flushRate: '5',
      prefix: 'v1',
      spool: '/s',
    });
    expect(AgentOptionsSchema.parse(o)).toMatchObject({
      speed: 0,
      batchMaxDelayMs: 500,
      flushRateLimit: 5,
      spoolDir: '/s',
      broker: 'mqtt://127.0.0.1:1883',
    });
    expect(AgentOptionsSchema.safeParse(flagsToAgentOptions({ vin: VIN, replay: 'f', speed: 'fast' })).success).toBe(false);
  });
});

describe('reconnect backoff', () => {
  it('grows exponentially with jitter and is capped', () => {
    expect(backoffDelay(0, 1000, 60_000, () => 0)).toBe(500);
    expect(backoffDelay(0, 1000, 60_000, () => 1)).toBe(1000);
    expect(backoffDelay(3, 1000, 60_000, () => 1)).toBe(8000);
    expect(backoffDelay(20, 1000, 60_000, () => 1)).toBe(60_000);
    expect(backoffDelay(20, 1000, 60_000, () => 0)).toBe(30_000);
  });
});

describe('splitToFit', () => {
  it('splits a batch that would exceed the telemetry size limit, keeping order', () => {
    const full = (i: number): Sample => ({
      ts: T0 + i,
      signals: Object.fromEntries(
        SIGNAL_PATHS.filter((p) => /Distance|Speed|Voltage|Level|Health|Displayed|Latitude|Longitude/.test(p)).map((p) => [
          p,
          (i % 80) + 0.123456789,
        ]),
      ),
    });
    const samples = Array.from({ length: 1000 }, (_, i) => full(i));
    const parts = splitToFit(VIN, samples);
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.flat()).toEqual(samples);
    for (const p of parts)
      expect(encodeTelemetryBatch({ vin: VIN, bootId: 'x', seq: 1, samples: p, dropped: 0 }).length).toBeLessThanOrEqual(
        SIZE_LIMITS.telemetry,
      );
    expect(splitToFit(VIN, samples.slice(0, 5))).toHaveLength(1);
  });
});
