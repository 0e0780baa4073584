// The live stream over a real socket: connect, receive a change, reconnect with Last-Event-ID
// (header or query) and get only what came later, dealer filtering, heartbeats, clean-up.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeHarness, VIN_A, VIN_C, type Harness } from './harness.js';

interface SseEvent {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

/** A minimal SSE client on node's fetch: yields parsed events (and comments) in order. */
async function openStream(url: string, headers: Record<string, string> = {}) {
  const ac = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: ac.signal });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  async function next(): Promise<SseEvent> {
    for (;;) {
      const end = buf.indexOf('\n\n');
      if (end >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const ev: SseEvent = {};
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) ev.comment = line.slice(1).trim();
          else {
            const i = line.indexOf(':');
            const field = line.slice(0, i);
            const value = line.slice(i + 1).replace(/^ /, '');
            if (field === 'data') ev.data = ev.data === undefined ? value : `${ev.data}\n${value}`;
            else if (field === 'id' || field === 'event') ev[field] = value;
          }
        }
        return ev;
      }
      const { done, value } = await reader.read();
      if (done) throw new Error('stream ended');
      buf += decoder.decode(value, { stream: true });
    }
  }
  /** The next `prompt` event, skipping retry/heartbeat blocks. */
  async function nextPrompt(): Promise<{
    id: number;
    data: { seq: number; step: string; at: string; by: string | null; prompt: { id: string; status: string; dealerId: string } };
  }> {
    for (;;) {
      const ev = await next();
      if (ev.event === 'prompt') return { id: Number(ev.id), data: JSON.parse(ev.data!) };
    }
  }
  return { res, next, nextPrompt, close: () => ac.abort() };
}

let h: Harness;
let base: string;
beforeEach(async () => {
  h = await makeHarness({ stream: { heartbeatMs: 50 } });
  h.register(VIN_A, 'D001');
  h.register(VIN_C, 'D002');
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = h.app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  base = `http://127.0.0.1:${addr.port}`;
});
afterEach(async () => {
  await h.close();
});

/** Poll until cond holds: the server learns about a closed socket asynchronously. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
  expect(cond()).toBe(true);
}

describe('GET /api/v1/stream', () => {
  it('delivers live changes for the dealer, then replays only later ones after Last-Event-ID', async () => {
    const s1 = await openStream(`${base}/api/v1/stream?dealerId=D001`);
    expect(s1.res.status).toBe(200);
    expect(s1.res.headers.get('content-type')).toContain('text/event-stream');
    await until(() => h.listenerCount() === 1);

    h.openPrompt(VIN_C, { key: 'other-dealer' });
    const first = h.openPrompt(VIN_A, { key: 'one' });
    const got = await s1.nextPrompt();
    expect(got.id).toBe(first.seq);
    expect(got.data).toMatchObject({
      seq: first.seq,
      step: 'created',
      by: first.by,
      prompt: { id: first.promptId, status: 'open', dealerId: 'D001' },
    });
    expect(got.data.at).toBe(first.at);

    // An ack through the API reaches the stream too.
    await fetch(`${base}/api/v1/prompts/${first.promptId}/ack`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ by: 'li' }),
    });
    const acked = await s1.nextPrompt();
    expect(acked.data).toMatchObject({ step: 'acknowledged', by: 'li', prompt: { id: first.promptId, status: 'acknowledged' } });
    s1.close();
    await until(() => h.listenerCount() === 0);

    // While disconnected: two more for D001, one for D002.
    const second = h.openPrompt(VIN_A, { key: 'two' });
    h.openPrompt(VIN_C, { key: 'other-2' });
    const third = h.openPrompt(VIN_A, { key: 'three' });

    const s2 = await openStream(`${base}/api/v1/stream?dealerId=D001`, { 'last-event-id': String(acked.id) });
    expect((await s2.nextPrompt()).data.prompt.id).toBe(second.promptId);
    expect((await s2.nextPrompt()).data.prompt.id).toBe(third.promptId);
    // ...then live again, with nothing replayed twice.
    const fourth = h.openPrompt(VIN_A, { key: 'four' });
    const live = await s2.nextPrompt();
    expect(live.id).toBe(fourth.seq);
    s2.close();

    // The same through ?lastEventId= (for clients that cannot set headers).
    const s3 = await openStream(`${base}/api/v1/stream?dealerId=D001&lastEventId=${third.seq}`);
    expect((await s3.nextPrompt()).data.prompt.id).toBe(fourth.promptId);
    s3.close();
  });

  it('without a dealer it streams every dealer; heartbeats keep the connection alive', async () => {
    const s = await openStream(`${base}/api/v1/stream`);
    await until(() => h.listenerCount() === 1);
    const a = h.openPrompt(VIN_C, { key: 'x' });
    const b = h.openPrompt(VIN_A, { key: 'y' });
    expect((await s.nextPrompt()).data.prompt.id).toBe(a.promptId);
    expect((await s.nextPrompt()).data.prompt.id).toBe(b.promptId);
    let ev: SseEvent;
    do ev = await s.next();
    while (ev.comment !== 'heartbeat');
    expect(ev.comment).toBe('heartbeat');
    s.close();
    await until(() => h.listenerCount() === 0);
  });

  it('a bad Last-Event-ID is a 400 JSON error, not a stream', async () => {
    const res = await fetch(`${base}/api/v1/stream`, { headers: { 'last-event-id': 'abc' } });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toBe('bad_request');
    const q = await fetch(`${base}/api/v1/stream?lastEventId=-1`);
    expect(q.status).toBe(400);
    expect(h.listenerCount()).toBe(0);
  });

  it('HEAD does not open a stream', async () => {
    const res = await fetch(`${base}/api/v1/stream`, { method: 'HEAD' });
    expect(res.status).toBe(404);
    expect(h.listenerCount()).toBe(0);
  });

  it('app.close() ends open streams instead of hanging', async () => {
    const s = await openStream(`${base}/api/v1/stream`);
    await until(() => h.listenerCount() === 1);
    await h.app.close();
    await expect(s.nextPrompt()).rejects.toThrow();
    expect(h.listenerCount()).toBe(0);
  });
});
