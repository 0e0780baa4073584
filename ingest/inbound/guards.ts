// What the embedded broker checks of a connection before aedes sees it (docs/contract.md#topics):
// the client id and certificate identity of a vehicle, the size of each MQTT packet as it streams
// in, and the rate of new connections per source address.
import type tls from 'node:tls';
import { VinSchema } from '../../proto/domain.js';

const SUFFIX = /^[A-Za-z0-9_-]{1,32}$/;

/**
 * The client id a connection as `vin` may use: the VIN (the agent), or `VIN:suffix` with suffix
 * [A-Za-z0-9_-]{1,32} (another app of the same car, e.g. `VIN:hmi`). So one vehicle can never take
 * over another's session (a CONNECT with an id in use closes the older connection). Unauthenticated
 * (demo mode, where anyone may claim any VIN anyway) an id outside the vehicle namespace is also
 * let in, as before; an id naming another VIN, or a bad suffix, is not.
 */
export function clientIdAllowed(clientId: string, vin: string, authenticated: boolean): boolean {
  if (clientId === vin) return true;
  if (clientId.startsWith(`${vin}:`)) return SUFFIX.test(clientId.slice(vin.length + 1));
  if (authenticated) return false;
  const colon = clientId.indexOf(':');
  return !VinSchema.safeParse(colon < 0 ? clientId : clientId.slice(0, colon)).success;
}

/** The names a client certificate carries: subject CN(s), DNS and URI subject alternative names. */
export function certificateNames(cert: Partial<Pick<tls.PeerCertificate, 'subject' | 'subjectaltname'>> | undefined): string[] {
  const out: string[] = [];
  const cn: unknown = cert?.subject?.CN;
  for (const v of Array.isArray(cn) ? cn : [cn]) if (typeof v === 'string') out.push(v);
  let alt: string[];
  try {
    alt = cert?.subjectaltname ? splitAltNames(cert.subjectaltname) : [];
  } catch {
    return out; // an unparsable SAN list names nothing
  }
  for (const e of alt) {
    if (e.startsWith('DNS:')) out.push(e.slice(4));
    else if (e.startsWith('URI:')) out.push(e.slice(4));
  }
  return out;
}

// Node prints a value that contains a separator or quote as a JSON string (CVE-2021-44532), so a
// name cannot smuggle ", DNS:<VIN>" into the list; this is the parse of node's lib/tls.js
// splitEscapedAltNames.
// eslint-disable-next-line no-control-regex -- JSON forbids raw control characters in a string
const JSON_STRING = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/;
function splitAltNames(s: string): string[] {
  const out: string[] = [];
  let token = '';
  let at = 0;
  while (at !== s.length) {
    const sep = s.indexOf(', ', at);
    const quote = s.indexOf('"', at);
    if (quote !== -1 && (sep === -1 || quote < sep)) {
      token += s.slice(at, quote);
      const m = JSON_STRING.exec(s.slice(quote));
      if (!m) throw new Error('bad subjectaltname');
      token += JSON.parse(m[0]) as string;
      at = quote + m[0].length;
    } else if (sep !== -1) {
      out.push(token + s.slice(at, sep));
      token = '';
      at = sep + 2;
    } else {
      token += s.slice(at);
      at = s.length;
    }
  }
  out.push(token);
  return out;
}

/**
 * Follows MQTT fixed headers through a byte stream fed in order (type byte, 1-4 byte remaining
 * length, then the rest skipped without being looked at) and reports the first packet whose size
 * (whole packet) exceeds `max`. A malformed length is left to aedes's parser, which closes the
 * connection for it.
 */
export class PacketSizeGuard {
  private state: 'type' | 'length' | 'body' | 'stopped' = 'type';
  private length = 0;
  private lengthBytes = 0;
  private left = 0;

  constructor(private readonly max: number) {}

  /** The announced size of an oversized packet (then stops), or null. */
  feed(chunk: Buffer): number | null {
    let i = 0;
    while (i < chunk.length) {
      switch (this.state) {
        case 'stopped':
          return null;
        case 'type':
          i++;
          this.state = 'length';
          this.length = 0;
          this.lengthBytes = 0;
          break;
        case 'length': {
          const b = chunk[i++];
          this.length += (b & 0x7f) * 128 ** this.lengthBytes++;
          if (b & 0x80) {
            if (this.lengthBytes === 4) this.state = 'stopped';
            break;
          }
          const size = 1 + this.lengthBytes + this.length;
          if (size > this.max) {
            this.state = 'stopped';
            return size;
          }
          this.left = this.length;
          this.state = this.left > 0 ? 'body' : 'type';
          break;
        }
        case 'body': {
          const n = Math.min(this.left, chunk.length - i);
          i += n;
          this.left -= n;
          if (this.left === 0) this.state = 'type';
          break;
        }
      }
    }
    return null;
  }
}

/** Token bucket per key: `perSecond` refill, `burst` capacity. The clock is injectable (ms). */
export class ConnectRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly perSecond: number;
  private readonly burst: number;
  private readonly now: () => number;
  private readonly maxKeys: number;

  constructor(o: { perSecond: number; burst: number; now?: () => number; maxKeys?: number }) {
    this.perSecond = o.perSecond;
    this.burst = Math.max(1, o.burst);
    this.now = o.now ?? (() => performance.now());
    this.maxKeys = o.maxKeys ?? 100_000;
  }

  /** Take one token for `key`: false = over the limit. */
  take(key: string): boolean {
    const now = this.now();
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = this.refilled(b, now);
      b.at = now;
    } else {
      if (this.buckets.size >= this.maxKeys) this.prune(now);
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Keys tracked (full buckets are forgotten when the table fills). */
  get size(): number {
    return this.buckets.size;
  }

  private refilled(b: { tokens: number; at: number }, now: number): number {
    return Math.min(this.burst, b.tokens + (Math.max(0, now - b.at) / 1000) * this.perSecond);
  }

  /** Forget full buckets (nothing lost); if still too many (many busy addresses), the oldest. */
  private prune(now: number): void {
    for (const [k, b] of this.buckets) if (this.refilled(b, now) >= this.burst) this.buckets.delete(k);
    const target = Math.floor(this.maxKeys * 0.9);
    for (const k of this.buckets.keys()) {
      if (this.buckets.size <= target) break;
      this.buckets.delete(k);
    }
  }
}

export function isLoopback(addr: string): boolean {
  const v4 = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  return v4.startsWith('127.') || addr === '::1';
}

/** The rate-limit key of an address: IPv4 (also when mapped into IPv6) as is, IPv6 by its /64. */
export function rateKey(addr: string): string {
  const a = addr.split('%')[0].toLowerCase();
  if (a.startsWith('::ffff:') && a.includes('.')) return a.slice(7);
  if (!a.includes(':')) return a;
  const [head, tail] = a.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
