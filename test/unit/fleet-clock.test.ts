// The fleet clock (ingest/clock.ts): wall mode bounds samples by their arrival; event mode follows
// the p90 of the vehicles' newest times (one vehicle cannot drag the fleet), never goes back, and
// bounds samples by the skew at the pace the fleet clock runs, so the demo's 20,000x fleet passes.
import { describe, expect, it } from 'vitest';
import { createClock, select } from '../../ingest/clock.js';

const T0 = Date.parse('2026-03-01T00:00:00Z');
const Y2099 = Date.parse('2099-01-01T00:00:00Z');
const SKEW = 600_000;
const HOUR = 3_600_000;
const vin = (i: number) => `LSVAU2180N${String(2_000_000 + i).padStart(7, '0')}`;

describe('wall clock', () => {
  it('is the wall, and accepts samples up to the skew after their arrival', () => {
    const c = createClock('wall', () => T0);
    c.observe(Y2099, vin(1));
    expect(c.now()).toBe(T0);
    expect(c.horizon(SKEW, T0 + 5)).toBe(T0 + 5 + SKEW);
  });
});

describe('event clock', () => {
  it('a fleet of one is its own clock; before any sample it is the wall; it never goes back', () => {
    let wall = T0 - 365 * 24 * HOUR;
    const c = createClock('event', () => wall);
    expect(c.now()).toBe(wall);
    expect(c.horizon(SKEW, wall)).toBe(Infinity);
    c.observe(T0, vin(1));
    expect(c.now()).toBe(T0);
    c.observe(T0 - HOUR, vin(1));
    c.observe(T0 - HOUR, vin(2));
    wall += 1000;
    expect(c.now()).toBe(T0);
  });

  it('follows the p90 of the vehicles, so one vehicle in 2099 does not move it; under 10 vehicles the p90 is the newest', () => {
    const c = createClock('event', () => T0);
    for (let i = 0; i < 5; i++) c.observe(T0 + i * 1000, vin(i));
    expect(c.now()).toBe(T0 + 4000); // nearest rank: ceil(0.9 * 5) = 5th of 5
    for (let i = 5; i < 20; i++) c.observe(T0 + i * 1000, vin(i));
    c.observe(Y2099, vin(0));
    expect(c.now()).toBe(T0 + 18_000); // 18th of 20: the 2099 vehicle is 20th
    c.observe(Y2099, vin(1));
    expect(c.now()).toBe(T0 + 19_000); // two of 20 (10 %) still cannot take it there
    c.observe(Y2099, vin(2));
    expect(c.now()).toBe(Y2099); // three of 20 can
  });

  it('bounds samples by the skew at the fastest pace measured; nothing before the pace is known', () => {
    let wall = T0;
    const c = createClock('event', () => wall);
    c.observe(T0, vin(1));
    expect(c.horizon(SKEW, wall)).toBe(Infinity); // one point: no pace yet
    wall += 500;
    c.observe(T0 + 500, vin(1));
    expect(c.horizon(SKEW, wall)).toBe(Infinity); // under a second
    wall += 1000;
    c.observe(T0 + 1500, vin(1)); // 1x: a replay at real speed
    expect(c.horizon(SKEW, wall)).toBe(T0 + 1500 + SKEW);
    // the pace stays the fastest seen (an idle fleet does not shrink it)
    wall += 1000;
    c.observe(T0 + 1500 + 20_000 * 1000, vin(1));
    expect(c.horizon(SKEW, wall)).toBe(c.now() + SKEW * 20_000);
    wall += 60_000;
    expect(c.horizon(SKEW, wall)).toBe(c.now() + SKEW * 20_000);
  });

  it("passes every sample of the demo's fleet (200 vehicles, 20,000x, one sample an hour each) and stops a 2099 one", () => {
    const SPEED = 20_000;
    const N = 200;
    let wall = Date.parse('2026-12-01T00:00:00Z');
    const w0 = wall;
    const c = createClock('event', () => wall);
    const nextDue = Array.from({ length: N }, (_, i) => T0 + Math.floor((i * HOUR) / N));
    let accepted = 0;
    let refused = 0;
    let rogue = false;
    for (let tick = 0; tick < 1500; tick++) {
      wall += 20; // the simulator's loop: 20 ms of wall per step = 400 s of fleet time
      const simNow = T0 + (wall - w0) * SPEED;
      for (let i = 0; i < N; i++) {
        if (nextDue[i] > simNow) continue;
        const samples: number[] = [];
        while (nextDue[i] <= simNow && samples.length < 50) {
          samples.push(nextDue[i]);
          nextDue[i] += HOUR;
        }
        const horizon = c.horizon(SKEW, wall);
        for (const ts of samples) if (ts > horizon) refused++;
        accepted += samples.length;
        c.observe(samples[samples.length - 1], vin(i));
      }
      if (tick === 1000) {
        rogue = Y2099 > c.horizon(SKEW, wall);
        c.observe(Y2099, vin(7)); // even if it got through, the fleet clock does not follow it
      }
    }
    expect(refused).toBe(0);
    expect(accepted).toBeGreaterThan(N * 100);
    expect(rogue).toBe(true);
    const simNow = T0 + (wall - w0) * SPEED;
    expect(c.now()).toBeLessThanOrEqual(simNow);
    expect(c.now()).toBeGreaterThan(simNow - HOUR);
  });

  it('stays cheap for a large fleet: the quantile is recomputed at most every 100 ms, not per reading', () => {
    let wall = T0;
    const c = createClock('event', () => wall);
    const N = 100_000;
    const started = performance.now();
    for (let k = 0; k < 1_000_000; k++) {
      c.observe(T0 + k, vin(k % N));
      if (k % 100 === 0) {
        wall += 1;
        c.now();
      }
    }
    const ms = performance.now() - started;
    expect(c.now()).toBeGreaterThan(T0 + 800_000);
    expect(ms).toBeLessThan(5000);
  });
});

describe('select', () => {
  it('finds the k-th smallest like a sort does', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31) * 1000;
    for (const n of [1, 2, 3, 10, 99, 1000]) {
      const values = Array.from({ length: n }, () => Math.floor(rnd()));
      const sorted = [...values].sort((a, b) => a - b);
      for (const k of [0, n - 1, Math.ceil(0.9 * n) - 1, n >> 1]) {
        expect(select(Float64Array.from(values), n, k)).toBe(sorted[k]);
      }
    }
  });
});
