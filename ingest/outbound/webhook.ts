// Delivers the lifecycle outbox to the configured webhook URLs, at least once, signed; an event
// failing for longer than the give-up age becomes dead (kept, no longer sent) until an operator retries it.
//
// Signing follows the Standard Webhooks scheme (https://www.standardwebhooks.com):
//   webhook-id:        the CloudEvent id (stable across retries: receivers dedupe on it)
//   webhook-timestamp: unix seconds of this attempt
//   webhook-signature: "v1," + base64(HMAC-SHA256(key, `${id}.${timestamp}.${body}`))
// The key is the secret's bytes; a secret written the Standard Webhooks way ("whsec_" + base64)
// is base64-decoded first, so receivers can use the stock libraries. Several signatures may be
// listed, space-separated (key rotation); a receiver accepts if any matches.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Outbox, OutboxEvent } from '../store/ports.js';
import { CLOUDEVENTS_CONTENT_TYPE } from './cloudevents.js';

// The pipeline builds outbox rows in its commit transaction; importable from here or cloudevents.ts.
export { eventsForChanges, eventsForSegmentChanges, segmentsChanged, type SegmentChange } from './cloudevents.js';

function keyBytes(secret: string): Buffer {
  return secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret, 'utf8');
}

export function sign(secret: string, id: string, timestampSec: number, body: string): string {
  const mac = createHmac('sha256', keyBytes(secret)).update(`${id}.${timestampSec}.${body}`).digest('base64');
  return `v1,${mac}`;
}

export function signedHeaders(secret: string, id: string, timestampSec: number, body: string): Record<string, string> {
  return {
    'content-type': CLOUDEVENTS_CONTENT_TYPE,
    'webhook-id': id,
    'webhook-timestamp': String(timestampSec),
    'webhook-signature': sign(secret, id, timestampSec, body),
  };
}

type HeaderBag = Headers | Record<string, string | string[] | undefined>;

function header(h: HeaderBag, name: string): string | undefined {
  if (typeof (h as Headers).get === 'function') return (h as Headers).get(name) ?? undefined;
  const rec = h as Record<string, string | string[] | undefined>;
  const v = rec[name] ?? Object.entries(rec).find(([k]) => k.toLowerCase() === name)?.[1];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * Receiver side: true when the headers carry a valid signature for body and the timestamp is
 * within toleranceSec of now (replay protection). Never throws on malformed input.
 */
export function verifySignature(
  secret: string,
  headers: HeaderBag,
  body: string,
  toleranceSec: number,
  nowSec = Math.floor(Date.now() / 1000),
): boolean {
  const id = header(headers, 'webhook-id');
  const ts = header(headers, 'webhook-timestamp');
  const sigs = header(headers, 'webhook-signature');
  if (!id || !ts || !sigs || !/^\d{1,12}$/.test(ts)) return false;
  const t = Number(ts);
  if (Math.abs(nowSec - t) > toleranceSec) return false;
  const expected = Buffer.from(sign(secret, id, t, body).slice(3), 'base64');
  for (const s of sigs.split(' ')) {
    const [version, mac] = s.split(',', 2);
    if (version !== 'v1' || !mac) continue;
    const got = Buffer.from(mac, 'base64');
    if (got.length === expected.length && timingSafeEqual(got, expected)) return true;
  }
  return false;
}

export interface WebhookDispatcherOptions {
  outbox: Outbox;
  secret: string;
  clock?: () => number;
  /** First retry delay; doubles per failed attempt up to maxBackoffMs, with jitter. */
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** Requests in flight at once. */
  concurrency?: number;
  fetchImpl?: typeof fetch;
  /** Per-request timeout. */
  timeoutMs?: number;
  /** Longest sleep between outbox checks when nothing is due (kick() wakes it sooner). */
  pollMs?: number;
  /**
   * Give up on an event that has been failing this long (from its first failed attempt, on this
   * dispatcher's clock): its next failed attempt makes it dead, kept until retried. 0 or unset = never.
   */
  giveUpMs?: number;
  /** Failed attempts and storage errors, for logs and metrics. */
  onError?: (err: Error, event?: OutboxEvent) => void;
  /** An event became dead (after its last failed attempt, `error`). */
  onDead?: (event: OutboxEvent, error: string) => void;
}

export class WebhookDispatcher {
  private readonly outbox: Outbox;
  private readonly secret: string;
  private readonly clock: () => number;
  private readonly base: number;
  private readonly max: number;
  private readonly concurrency: number;
  private readonly fetchImpl: typeof fetch;
  private readonly timeoutMs: number;
  private readonly pollMs: number;
  private readonly giveUpMs: number;
  private readonly reportTo: (err: Error, event?: OutboxEvent) => void;
  private readonly deadTo: (event: OutboxEvent, error: string) => void;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private kicked = false;
  private aborter = new AbortController();
  private nDelivered = 0;
  private nFailed = 0;
  private nDead = 0;

  constructor(opts: WebhookDispatcherOptions) {
    if (!opts.secret) throw new Error('webhook secret is required (ODOPULSE_WEBHOOK_SECRET)');
    this.outbox = opts.outbox;
    this.secret = opts.secret;
    this.clock = opts.clock ?? Date.now;
    this.base = Math.max(1, opts.baseBackoffMs ?? 1000);
    this.max = Math.max(this.base, opts.maxBackoffMs ?? 10 * 60_000);
    this.concurrency = Math.max(1, Math.floor(opts.concurrency ?? 4));
    this.fetchImpl = opts.fetchImpl ?? fetch;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.pollMs = opts.pollMs ?? 5_000;
    this.giveUpMs = Math.max(0, opts.giveUpMs ?? 0);
    this.reportTo = opts.onError ?? (() => {});
    this.deadTo = opts.onDead ?? (() => {});
  }

  /** Successful deliveries since start. */
  get delivered(): number {
    return this.nDelivered;
  }

  /** Failed attempts (each retry that failed counts) since start. */
  get failed(): number {
    return this.nFailed;
  }

  /** Events given up (moved to dead) since start. */
  get dead(): number {
    return this.nDead;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.aborter = new AbortController();
    this.loop = this.run();
  }

  /** New events were enqueued: look now instead of at the next poll. */
  kick(): void {
    this.kicked = true;
    this.wake?.();
  }

  /** Stops after aborting requests in flight; what was not confirmed stays in the outbox. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.aborter.abort();
    this.wake?.();
    await this.loop;
    this.loop = undefined;
  }

  private async run(): Promise<void> {
    while (this.running) {
      let delay: number;
      try {
        this.kicked = false;
        const batch = await this.outbox.due(this.clock(), this.concurrency);
        if (batch.length > 0) {
          await Promise.all(batch.map((e) => this.deliver(e)));
          continue;
        }
        delay = await this.idleDelay();
      } catch (err) {
        // Storage trouble (disk full, closed): report it and try again later, never spin.
        this.report(err);
        delay = this.pollMs;
      }
      // the outbox is read asynchronously: a kick or a stop() meanwhile must not be slept through
      if (this.running && !this.kicked) await this.sleep(delay);
    }
  }

  private async idleDelay(): Promise<number> {
    try {
      const next = await this.outbox.nextDueAt();
      if (next !== null) return Math.max(0, Math.min(this.pollMs, next - this.clock()));
    } catch {
      // reported by the next due() call
    }
    return this.pollMs;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  private async deliver(e: OutboxEvent): Promise<void> {
    const ts = Math.floor(this.clock() / 1000);
    let error: string;
    try {
      const res = await this.fetchImpl(e.url, {
        method: 'POST',
        headers: signedHeaders(this.secret, e.id, ts, e.body),
        body: e.body,
        signal: AbortSignal.any([this.aborter.signal, AbortSignal.timeout(this.timeoutMs)]),
      });
      await res.body?.cancel().catch(() => {}); // the answer's body is not needed; free the socket
      if (res.status >= 200 && res.status < 300) {
        this.nDelivered++;
        await this.record(() => this.outbox.markDelivered(e.id, e.url, this.clock()), e);
        return;
      }
      error = `HTTP ${res.status}`;
    } catch (err) {
      if (!this.running) return; // stopped mid-request: the event stays due, nothing to record
      error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    }
    this.nFailed++;
    const now = this.clock();
    const dead = this.giveUpMs > 0 && now - (e.firstFailedAt ?? now) >= this.giveUpMs;
    const recorded = await this.record(() => this.outbox.markFailed(e.id, e.url, error, now + this.backoff(e.attempts), { now, dead }), e);
    this.report(new Error(`webhook ${e.url} event ${e.id}: ${error}`), e);
    if (dead && recorded) {
      this.nDead++;
      try {
        this.deadTo(
          { ...e, state: 'dead', attempts: e.attempts + 1, lastError: error, firstFailedAt: e.firstFailedAt ?? now, deadAt: now },
          error,
        );
      } catch {
        // a throwing callback must not stop deliveries
      }
    }
  }

  /** A storage error must not kill the loop; an unrecorded delivery is simply sent again. */
  private async record(write: () => Promise<void>, e: OutboxEvent): Promise<boolean> {
    try {
      await write();
      return true;
    } catch (err) {
      this.report(err, e);
      return false;
    }
  }

  /** A throwing error callback must not stop deliveries. */
  private report(err: unknown, e?: OutboxEvent): void {
    try {
      this.reportTo(err instanceof Error ? err : new Error(String(err)), e);
    } catch {
      // nothing sensible left to do with it
    }
  }

  /** Exponential backoff with "equal jitter": half fixed, half random, so retries spread out. */
  private backoff(attempts: number): number {
    const exp = Math.min(this.max, this.base * 2 ** Math.min(attempts, 30));
    return Math.round(exp / 2 + Math.random() * (exp / 2));
  }
}
