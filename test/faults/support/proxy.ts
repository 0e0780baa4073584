// A lossy link for the fault suite: a TCP proxy (node:net) between vehicles and ingest's MQTT port
// that can delay what it forwards, pause it, and cut connections. Bytes keep their order within a
// connection (TCP does); a cut drops whatever was still queued in either direction, so a publish
// or a PUBACK caught on the wire is lost, as on a real link that goes down.
import net from 'node:net';

interface Direction {
  to: net.Socket;
  queue: Array<{ at: number; chunk: Buffer }>;
  timer: NodeJS.Timeout | undefined;
  /** When the last queued chunk leaves: the next may not overtake it. */
  lastAt: number;
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  up: Direction;
  down: Direction;
}

export interface LossyProxyOptions {
  /** Where to forward, asked at every new connection (ingest may be restarted on the same port). */
  target: () => { host: string; port: number };
  /** Added to each chunk in each direction, ms (default 0). */
  delayMs?: number;
  /** Up to this much more, at random (default 0). */
  jitterMs?: number;
}

export class LossyProxy {
  private server: net.Server | undefined;
  private readonly pairs = new Set<Pair>();
  private paused = false;
  delayMs: number;
  jitterMs: number;
  readonly stats = { connections: 0, cut: 0, refused: 0, bytesUp: 0, bytesDown: 0, droppedChunks: 0 };

  constructor(private readonly o: LossyProxyOptions) {
    this.delayMs = o.delayMs ?? 0;
    this.jitterMs = o.jitterMs ?? 0;
  }

  async listen(port = 0): Promise<number> {
    const server = net.createServer((client) => this.accept(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return (server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${(this.server!.address() as net.AddressInfo).port}`;
  }

  /** Connections open right now. */
  get open(): number {
    return this.pairs.size;
  }

  private accept(client: net.Socket): void {
    this.stats.connections++;
    const { host, port } = this.o.target();
    const upstream = net.connect({ host, port });
    const dir = (to: net.Socket): Direction => ({ to, queue: [], timer: undefined, lastAt: 0 });
    const pair: Pair = { client, upstream, up: dir(upstream), down: dir(client) };
    this.pairs.add(pair);
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      this.pump(pair.up);
    });
    const close = () => this.drop(pair);
    client.on('error', close);
    upstream.on('error', () => {
      if (!connected) this.stats.refused++;
      close();
    });
    client.on('close', close);
    upstream.on('close', close);
    client.on('data', (chunk: Buffer) => {
      this.stats.bytesUp += chunk.length;
      this.enqueue(pair.up, chunk, connected);
    });
    upstream.on('data', (chunk: Buffer) => {
      this.stats.bytesDown += chunk.length;
      this.enqueue(pair.down, chunk, true);
    });
  }

  private enqueue(d: Direction, chunk: Buffer, ready: boolean): void {
    const at = Math.max(Date.now() + this.delayMs + Math.random() * this.jitterMs, d.lastAt);
    d.lastAt = at;
    d.queue.push({ at, chunk });
    if (ready) this.pump(d);
  }

  private pump(d: Direction): void {
    if (d.timer) return;
    while (!this.paused && d.queue.length > 0 && !d.to.destroyed) {
      const wait = d.queue[0].at - Date.now();
      if (wait > 0) {
        d.timer = setTimeout(() => {
          d.timer = undefined;
          this.pump(d);
        }, wait);
        return;
      }
      d.to.write(d.queue.shift()!.chunk);
    }
  }

  private drop(p: Pair): void {
    if (!this.pairs.delete(p)) return;
    for (const d of [p.up, p.down]) {
      clearTimeout(d.timer);
      this.stats.droppedChunks += d.queue.length;
      d.queue.length = 0;
    }
    p.client.destroy();
    p.upstream.destroy();
  }

  /** Cut every open connection at once (what was queued is lost); returns how many. */
  cutAll(): number {
    const n = this.pairs.size;
    for (const p of [...this.pairs]) this.drop(p);
    this.stats.cut += n;
    return n;
  }

  /** Cut one open connection chosen by `pick` (default: at random); false when none is open. */
  cutOne(pick: (n: number) => number = (n) => Math.floor(Math.random() * n)): boolean {
    const all = [...this.pairs];
    if (all.length === 0) return false;
    this.drop(all[pick(all.length)]);
    this.stats.cut++;
    return true;
  }

  /** Hold everything (connections stay open, bytes queue up) until resume(). */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    const now = Date.now();
    for (const p of this.pairs) {
      for (const d of [p.up, p.down]) {
        for (const q of d.queue) q.at = Math.min(q.at, now);
        clearTimeout(d.timer);
        d.timer = undefined;
        if (d === p.down || !p.upstream.connecting) this.pump(d);
      }
    }
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
