// The back-pressure gate (ingest/inbound/backlog-gate.ts, docs/architecture.md#back-pressure): closes
// at the high-water mark, every batch then shares one wait, opens under the low-water mark, and
// never holds longer than maxHoldMs. Fake timers: the test decides when time passes.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BacklogGate } from '../../ingest/inbound/backlog-gate.js';

function gate(o: { high: number; low?: number; maxHoldMs?: number }) {
  const s = { backlog: 0, holds: 0, changes: [] as Array<[boolean, boolean]> };
  const g = new BacklogGate({
    ...o,
    backlog: () => s.backlog,
    pollMs: 5,
    onHold: () => s.holds++,
    onChange: (closed, forced) => s.changes.push([closed, forced]),
  });
  return { g, s };
}

/** Whether `p` has settled after the microtasks queued so far. */
async function settled(p: Promise<void>): Promise<boolean> {
  let done = false;
  void p.then(() => (done = true));
  await vi.advanceTimersByTimeAsync(0);
  return done;
}

describe('BacklogGate', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('lets batches through below the high-water mark, without a promise', () => {
    const { g, s } = gate({ high: 100 });
    s.backlog = 99;
    expect(g.hold()).toBeUndefined();
    expect(g.closed).toBe(false);
    expect(s.holds).toBe(0);
  });

  it('closes at the high-water mark; every batch shares the wait; opens under the low-water mark only', async () => {
    const { g, s } = gate({ high: 100 }); // low: 60
    s.backlog = 100;
    const first = g.hold();
    expect(first).toBeInstanceOf(Promise);
    expect(g.closed).toBe(true);
    s.backlog = 70; // under high, over low: still closed, later batches wait too
    const second = g.hold();
    expect(second).toBe(first);
    expect(s.holds).toBe(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(await settled(first!)).toBe(false);
    s.backlog = 59;
    await vi.advanceTimersByTimeAsync(5);
    expect(await settled(first!)).toBe(true);
    expect(g.closed).toBe(false);
    expect(s.changes).toEqual([
      [true, false],
      [false, false],
    ]);
    expect(g.hold()).toBeUndefined(); // 59 < 100
  });

  it('opens after maxHoldMs whatever the backlog, and closes again on the next batch', async () => {
    const { g, s } = gate({ high: 10, low: 5, maxHoldMs: 5000 });
    s.backlog = 50;
    const held = g.hold()!;
    await vi.advanceTimersByTimeAsync(4990);
    expect(await settled(held)).toBe(false);
    await vi.advanceTimersByTimeAsync(15);
    expect(await settled(held)).toBe(true);
    expect(s.changes).toEqual([
      [true, false],
      [false, true],
    ]);
    const next = g.hold();
    expect(next).toBeInstanceOf(Promise);
    expect(next).not.toBe(held);
  });

  it('never closes with a high-water mark of 0', () => {
    const { g, s } = gate({ high: 0 });
    s.backlog = 1e9;
    expect(g.hold()).toBeUndefined();
  });
});
