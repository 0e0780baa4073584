// A stand-in for an InfluxDB 2.x server on a loopback port (node:http): /ping names a 2.7 version,
// /api/v2/write stores the lines of requests it accepts and answers refused ones the way 2.x does.
// `answer` decides per request; the default accepts everything (204).
import { createServer, type Server } from 'node:http';

export interface FakeAnswer {
  status: number;
  body?: unknown;
}

export interface Influx2Fake {
  url: string;
  port: number;
  /** Lines of accepted write requests, in order. */
  readonly stored: string[];
  /** Every write request: its lines and the status it got. */
  readonly writes: Array<{ lines: string[]; status: number }>;
  /** Decide the answer to a write request (undefined: accept, 204). */
  answer: (lines: string[]) => FakeAnswer | undefined;
  /** Leave /ping unanswered (a hung server). */
  holdPing: boolean;
  close(): Promise<void>;
}

/** 2.x's answers to points it refuses (bodies as 2.7 words them). */
export const V2_REFUSALS = {
  invalid: (line: number, why: string): FakeAnswer => ({
    status: 400,
    body: { code: 'invalid', message: `partial write has occurred, errors encountered on line(s): line ${line}: ${why}` },
  }),
  retention: (dropped: number): FakeAnswer => ({
    status: 422,
    body: {
      code: 'unprocessable entity',
      message: `failure writing points to database: partial write: points beyond retention policy dropped=${dropped}`,
    },
  }),
  tooLarge: (): FakeAnswer => ({
    status: 413,
    body: { code: 'request too large', message: 'unable to read data: points batch is too large' },
  }),
};

/** Start the fake on `port` (0: any free one). */
export async function startInflux2Fake(port = 0): Promise<Influx2Fake> {
  const fake = {
    stored: [] as string[],
    writes: [] as Array<{ lines: string[]; status: number }>,
    answer: (() => undefined) as Influx2Fake['answer'],
    holdPing: false,
  };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      if (req.url === '/ping') {
        if (fake.holdPing) return;
        res.writeHead(204, { 'X-Influxdb-Version': 'v2.7.11' }).end();
      } else if (req.method === 'POST' && req.url?.startsWith('/api/v2/write')) {
        const lines = body.split('\n').filter((l) => l !== '');
        const a = fake.answer(lines) ?? { status: 204 };
        fake.writes.push({ lines, status: a.status });
        if (a.status === 204) fake.stored.push(...lines);
        if (a.body === undefined) res.writeHead(a.status).end();
        else res.writeHead(a.status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify(a.body));
      } else if (req.url?.startsWith('/query')) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ results: [{ statement_id: 0 }] }));
      } else {
        res.writeHead(404).end();
      }
    });
  });
  // the client keeps connections alive; a short server-side timeout would race its reuse (ECONNRESET)
  server.keepAliveTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as { port: number }).port;
  return Object.assign(fake, {
    url: `http://127.0.0.1:${actual}`,
    port: actual,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
}
