// A minimal Server-Sent Events reader for tests against ingest's /api/v1/stream: every `prompt`
// event's data, in order, as it arrives.
import { readSseFrames } from '../../tools/sse-frames.js';

export interface PromptEvent {
  seq: number;
  step: string;
  by: string | null;
  prompt: { id: string; vin: string; kind: string; dealerId: string | null; [k: string]: unknown };
}

export interface SseReader {
  events: PromptEvent[];
  /** Stop reading; resolves once the stream is closed. */
  close(): Promise<void>;
}

export function readPromptStream(url: string, headers: Record<string, string>): SseReader {
  const ac = new AbortController();
  const events: PromptEvent[] = [];
  const done = (async () => {
    const res = await fetch(url, { headers, signal: ac.signal });
    if (res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`);
    await readSseFrames(res, (event, data) => {
      if (event === 'prompt') events.push(JSON.parse(data) as PromptEvent);
    });
  })().catch((err: unknown) => {
    if (!ac.signal.aborted) throw err;
  });
  return {
    events,
    close: async () => {
      ac.abort();
      await done;
    },
  };
}
