import { describe, expect, it } from 'vitest';
import { createFleetClock } from '../../../simulator/clock.js';
import { parseDuration, runSimulateCli } from '../../../simulator/cli.js';
import { defaultSampleEvery } from '../../../simulator/main.js';
import { formatSummary } from '../../../simulator/report.js';

describe('fleet clock', () => {
  it('runs simulated time at start + wall elapsed x speed-up', () => {
    let wall = 1000;
    const c = createFleetClock({ start: Date.UTC(2026, 0, 1), speedup: 3600, wallNow: () => wall });
    expect(c.now()).toBe(Date.UTC(2026, 0, 1));
    wall += 2000;
    expect(c.now()).toBe(Date.UTC(2026, 0, 1) + 2 * 3_600_000);
    expect(c.wallElapsed()).toBe(2000);
    expect(c.wallUntil(Date.UTC(2026, 0, 1) + 3 * 3_600_000)).toBe(1000);
    expect(c.wallUntil(0)).toBe(0);
  });

  it('rejects a non-positive speed-up', () => {
    expect(() => createFleetClock({ start: 0, speedup: 0 })).toThrow(/speed-up/);
    expect(() => createFleetClock({ start: Number.NaN, speedup: 1 })).toThrow(/start/);
  });
});

describe('simulate CLI', () => {
  it('parses durations', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1500')).toBe(1500);
    expect(() => parseDuration('soon')).toThrow(/not a duration/);
  });

  it('rejects bad flags with a clear message before doing anything', async () => {
    await expect(runSimulateCli({ connections: 'carrier-pigeon' })).rejects.toThrow(/--connections/);
    await expect(runSimulateCli({ vehicles: 'many' })).rejects.toThrow(/--vehicles/);
    await expect(runSimulateCli({ start: 'yesterday' })).rejects.toThrow(/--start/);
  });

  it('samples more coarsely as time runs faster, within 1 min .. 1 h', () => {
    expect(defaultSampleEvery(1)).toBe(60_000);
    expect(defaultSampleEvery(3600)).toBe(1_800_000);
    expect(defaultSampleEvery(1e6)).toBe(3_600_000);
  });

  it('formats a summary with the key figures', () => {
    const text = formatSummary({
      vehicles: 10,
      connections: 'per-vehicle',
      connected: 10,
      lost: 1,
      readings: 500,
      batches: 120,
      errors: 0,
      registered: 10,
      serviceRecords: 3,
      simulatedFrom: '2026-01-01T00:00:00.000Z',
      simulatedTo: '2026-01-02T01:00:00.000Z',
      simulatedSpanMs: 90_000_000,
      wallMs: 2500,
      msgsPerSec: 48,
      readingsPerSec: 200,
    });
    expect(text).toContain('vehicles         10 (1 lost');
    expect(text).toContain('1d 1h 0m');
    expect(text).toContain('48.0 msgs/s');
  });
});
