// The live stream over a real socket: connect, receive a change, reconnect with Last-Event-ID
// (header or query) and get only what came later, dealer filtering, heartbeats, clean-up.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../support/wait.js';
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
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...h.authHeader, ...headers }, signal: ac.signal });
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
  await h.register(VIN_A, 'D001');
  await h.register(VIN_C, 'D002');
  await h.app.listen({ host: '127.0.0.1', port: 0 });
  const addr = h.app.server.address();
  if (!addr || typeof addr === 'string') throw new Error('no address');
  base = `http://127.0.0.1:${addr.port}`;
});
afterEach(async () => {
  await h.close();
});

/** The server learns about an opened or closed socket asynchronously: wait for its listener count. */
const listeners = (n: number) => waitFor(() => h.listenerCount() === n, { what: `${n} stream listener(s)`, intervalMs: 25 });

describe('GET /api/v1/stream', () => {
  it('delivers live changes for the dealer, then replays only later ones after Last-Event-ID', async () => {
    const s1 = await openStream(`${base}/api/v1/stream?dealerId=D001`);
    expect(s1.res.status).toBe(200);
    expect(s1.res.headers.get('content-type')).toContain('text/event-stream');
    await listeners(1);

    await h.openPrompt(VIN_C, { key: 'other-dealer' });
    const first = await h.openPrompt(VIN_A, { key: 'one' });
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
      headers: { 'content-type': 'application/json', ...h.authHeader },
      body: JSON.stringify({ by: 'li' }),
    });
    const acked = await s1.nextPrompt();
    expect(acked.data).toMatchObject({
      step: 'acknowledged',
      by: expect.stringMatching(/^li \(operator, key:/),
      prompt: { id: first.promptId, status: 'acknowledged' },
    });
    s1.close();
    await listeners(0);

    // While disconnected: two more for D001, one for D002.
    const second = await h.openPrompt(VIN_A, { key: 'two' });
    await h.openPrompt(VIN_C, { key: 'other-2' });
    const third = await h.openPrompt(VIN_A, { key: 'three' });

    const s2 = await openStream(`${base}/api/v1/stream?dealerId=D001`, { 'last-event-id': String(acked.id) });
    expect((await s2.nextPrompt()).data.prompt.id).toBe(second.promptId);
    expect((await s2.nextPrompt()).data.prompt.id).toBe(third.promptId);
    // ...then live again, with nothing replayed twice.
    const fourth = await h.openPrompt(VIN_A, { key: 'four' });
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
    await listeners(1);
    const a = await h.openPrompt(VIN_C, { key: 'x' });
    const b = await h.openPrompt(VIN_A, { key: 'y' });
    expect((await s.nextPrompt()).data.prompt.id).toBe(a.promptId);
    expect((await s.nextPrompt()).data.prompt.id).toBe(b.promptId);
    let ev: SseEvent;
    do ev = await s.next();
    while (ev.comment !== 'heartbeat');
    expect(ev.comment).toBe('heartbeat');
    s.close();
    await listeners(0);
  });

  it('a bad Last-Event-ID is a 400 JSON error, not a stream', async () => {
    const res = await fetch(`${base}/api/v1/stream`, { headers: { 'last-event-id': 'abc', ...h.authHeader } });
    expect(res.status).toBe(400);
    expect((await res.json()).error).toBe('bad_request');
    const q = await fetch(`${base}/api/v1/stream?lastEventId=-1`, { headers: h.authHeader });
    expect(q.status).toBe(400);
    expect(h.listenerCount()).toBe(0);
  });

  it('HEAD does not open a stream', async () => {
    const res = await fetch(`${base}/api/v1/stream`, { method: 'HEAD', headers: h.authHeader });
    expect(res.status).toBe(404);
    expect(h.listenerCount()).toBe(0);
  });

  it('app.close() ends open streams instead of hanging', async () => {
    const s = await openStream(`${base}/api/v1/stream`);
    await listeners(1);
    await h.app.close();
    await expect(s.nextPrompt()).rejects.toThrow();
    expect(h.listenerCount()).toBe(0);
  });

  it("streams only the caller's dealers: an advisor never sees another dealer's changes, even when asking for them", async () => {
    const adv = { authorization: `Bearer ${await h.keyFor('advisor', ['D001'])}` };
    const mine = await openStream(`${base}/api/v1/stream`, adv);
    const theirs = await openStream(`${base}/api/v1/stream?dealerId=D002`, adv);
    await listeners(2);
    await h.openPrompt(VIN_C, { key: 'd2' });
    const a = await h.openPrompt(VIN_A, { key: 'd1' });
    // the D002 prompt came first: the advisor's next event is already the D001 one
    expect((await mine.nextPrompt()).data.prompt.id).toBe(a.promptId);
    // a stream asking for another dealer is empty: a later marker on it never arrives, only heartbeats
    let ev: SseEvent;
    do ev = await theirs.next();
    while (ev.comment !== 'heartbeat');
    expect(ev.event).toBeUndefined();
    mine.close();
    theirs.close();
    await listeners(0);
    // replay after Last-Event-ID is scoped the same way
    const replay = await openStream(`${base}/api/v1/stream`, { ...adv, 'last-event-id': '0' });
    expect((await replay.nextPrompt()).data.prompt.id).toBe(a.promptId);
    replay.close();
  });

  it('no credential, a metrics key or too many streams: refused before a stream opens', async () => {
    const none = await fetch(`${base}/api/v1/stream`);
    expect(none.status).toBe(401);
    const metrics = await fetch(`${base}/api/v1/stream`, { headers: { authorization: `Bearer ${await h.keyFor('metrics')}` } });
    expect(metrics.status).toBe(403);
    expect(h.listenerCount()).toBe(0);
    const adv = { authorization: `Bearer ${await h.keyFor('advisor', ['D001'])}` };
    const open = [];
    for (let i = 0; i < 8; i++) open.push(await openStream(`${base}/api/v1/stream`, adv));
    await listeners(8);
    const ninth = await fetch(`${base}/api/v1/stream`, { headers: adv });
    expect(ninth.status).toBe(429);
    expect((await ninth.json()).error).toBe('too_many_streams');
    // another principal is not held back by this one's streams
    const other = await openStream(`${base}/api/v1/stream`);
    expect(other.res.status).toBe(200);
    for (const o of [...open, other]) o.close();
    await listeners(0);
    const again = await openStream(`${base}/api/v1/stream`, adv);
    expect(again.res.status).toBe(200);
    again.close();
  });

  it('a client behind the retained log, or too far behind, gets a reset event instead of a replay of everything', async () => {
    await h.close();
    h = await makeHarness({ stream: { heartbeatMs: 50, maxReplay: 3 } });
    await h.register(VIN_A, 'D001');
    await h.app.listen({ host: '127.0.0.1', port: 0 });
    const addr = h.app.server.address();
    if (!addr || typeof addr === 'string') throw new Error('no address');
    base = `http://127.0.0.1:${addr.port}`;
    const first = await h.openPrompt(VIN_A, { key: 'a' });
    for (const k of ['b', 'c', 'd', 'e']) await h.openPrompt(VIN_A, { key: k });
    const s = await openStream(`${base}/api/v1/stream`, { 'last-event-id': String(first.seq) });
    let ev: SseEvent;
    do ev = await s.next();
    while (ev.event === undefined && ev.comment === undefined);
    expect(ev.event).toBe('reset');
    expect(JSON.parse(ev.data!)).toEqual({ reason: 'too_far_behind', seq: await h.stores.prompts.lastChangeSeq() });
    const live = await h.openPrompt(VIN_A, { key: 'f' });
    expect((await s.nextPrompt()).data.prompt.id).toBe(live.promptId);
    s.close();
  });
});
