// The frames of a text/event-stream response body, as they arrive (tests and the benchmarks read
// ingest's GET /api/v1/stream with it).

/** Calls `onFrame` with each frame's `event:` name (if any) and `data:` line until the body ends. */
export async function readSseFrames(res: Response, onFrame: (event: string | undefined, data: string) => void): Promise<void> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const lines = buf.slice(0, i).split('\n');
      buf = buf.slice(i + 2);
      const data = lines.find((l) => l.startsWith('data:'));
      if (data)
        onFrame(
          lines
            .find((l) => l.startsWith('event:'))
            ?.slice(6)
            .trim(),
          data.slice(5),
        );
    }
  }
}
