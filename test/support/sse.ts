// A minimal Server-Sent Events reader for tests against ingest's /api/v1/stream: every `prompt`
// event's data, in order, as it arrives.
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
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) return;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = frame.split('\n').find((l) => l.startsWith('data:'));
        if (frame.includes('event: prompt') && data) events.push(JSON.parse(data.slice(5)) as PromptEvent);
      }
    }
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
