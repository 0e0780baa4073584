// AckWindow (ingest/inbound/external.ts): QoS 1 messages handled concurrently, PUBACKed in arrival
// order and each only after its own handler resolved; a bounded number outstanding.
import { describe, expect, it } from 'vitest';
import { AckWindow } from '../../ingest/inbound/external.js';

function deferred() {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Let the promise callbacks run. */
const settle = () => new Promise((r) => setImmediate(r));

function harness(limit: number) {
  const w = new AckWindow(limit);
  const events: string[] = [];
  const add = (id: number) => {
    const d = deferred();
    w.add(
      d.promise,
      () => events.push(`ack ${id}`),
      (err) => events.push(`fail ${id}: ${err.message}`),
      () => events.push(`next ${id}`),
    );
    return d;
  };
  return { w, events, add };
}

describe('AckWindow', () => {
  it('acknowledges in arrival order, each only once its own handling resolved', async () => {
    const { events, add } = harness(10);
    const a = add(1);
    const b = add(2);
    const c = add(3);
    expect(events).toEqual(['next 1', 'next 2', 'next 3']); // all three handled at once
    c.resolve();
    b.resolve();
    await settle();
    expect(events.filter((e) => e.startsWith('ack'))).toEqual([]); // 1 is not done: nothing may go out
    a.resolve();
    await settle();
    expect(events.filter((e) => e.startsWith('ack'))).toEqual(['ack 1', 'ack 2', 'ack 3']);
  });

  it('does not acknowledge a message whose handling failed; the others still are, in order', async () => {
    const { events, add } = harness(10);
    const a = add(1);
    const b = add(2);
    b.reject(new Error('disk full'));
    a.resolve();
    const c = add(3);
    c.resolve();
    await settle();
    expect(events.filter((e) => !e.startsWith('next'))).toEqual(['ack 1', 'fail 2: disk full', 'ack 3']);
  });

  it('holds the next packet while `limit` messages are outstanding', async () => {
    const { w, events, add } = harness(2);
    const a = add(1);
    add(2); // the second outstanding: MQTT.js must not read a third
    expect(events).toEqual(['next 1']);
    expect(w.size).toBe(2);
    a.resolve();
    await settle();
    expect(events).toEqual(['next 1', 'ack 1', 'next 2']);
    expect(w.size).toBe(1);
  });

  it('drained() resolves once nothing is outstanding', async () => {
    const { w, add } = harness(10);
    await w.drained();
    const a = add(1);
    let drained = false;
    void w.drained().then(() => (drained = true));
    await settle();
    expect(drained).toBe(false);
    a.resolve();
    await settle();
    expect(drained).toBe(true);
  });
});
