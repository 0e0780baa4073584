// InfluxDB 1.x compatibility for the official client. The client only speaks the v2 write API;
// rather than keep a second writer, a Transport maps its v2 write calls onto 1.x's /write and
// hands the HTTP work to the client's own node transport (timeouts, gzip, keep-alive stay its).
import type { ChunkCombiner, CommunicationObserver, ResponseStartedFn, SendOptions, Transport } from '@influxdata/influxdb-client';

export type InfluxApiVersion = 'v1' | 'v2';

/** A bad INFLUX_* setting: said once, at start-up, with what was expected. */
export class InfluxConfigError extends Error {
  override readonly name = 'InfluxConfigError';
}

/** On 1.x the bucket is `database` or `database/retention-policy` (docs/contract.md#settings). */
export function splitBucket(bucket: string): { db: string; rp: string | undefined } {
  const slash = bucket.indexOf('/');
  const db = slash < 0 ? bucket : bucket.slice(0, slash);
  const rp = slash < 0 ? undefined : bucket.slice(slash + 1);
  if (db === '' || rp === '' || (rp !== undefined && rp.includes('/'))) {
    throw new InfluxConfigError(`INFLUX_BUCKET ${JSON.stringify(bucket)}: expected "database" or "database/retention-policy"`);
  }
  return { db, rp };
}

/** The v2 token on 1.x is `user:password` (or empty for no auth); sent as HTTP Basic. */
export function v1AuthHeader(token: string): string | undefined {
  if (token === '') return undefined;
  const colon = token.indexOf(':');
  if (colon < 1) throw new InfluxConfigError('INFLUX_TOKEN on InfluxDB 1.x must be "user:password" (or empty for no authentication)');
  return `Basic ${Buffer.from(token, 'utf8').toString('base64')}`;
}

/**
 * `/api/v2/write?org=&bucket=&precision=` becomes `/write?db=&rp=&precision=` (org has no 1.x
 * meaning). Other paths pass unchanged: /ping and /query exist on both versions.
 */
export function mapV1Path(path: string): string {
  const prefix = '/api/v2/write?';
  if (!path.startsWith(prefix)) return path;
  const v2 = new URLSearchParams(path.slice(prefix.length));
  const { db, rp } = splitBucket(v2.get('bucket') ?? '');
  const v1 = new URLSearchParams({ db });
  if (rp !== undefined) v1.set('rp', rp);
  const precision = v2.get('precision');
  if (precision) v1.set('precision', precision);
  const consistency = v2.get('consistency');
  if (consistency) v1.set('consistency', consistency);
  return `/write?${v1.toString()}`;
}

/** Wraps the client's node transport (built without a token) for an InfluxDB 1.x server. */
export class InfluxV1Transport implements Transport {
  readonly chunkCombiner: ChunkCombiner;
  /** Every request path the client asked for, after mapping (tests check the writer path). */
  onRequest: ((method: string, path: string) => void) | undefined;

  constructor(
    private readonly inner: Transport,
    private readonly authorization: string | undefined,
  ) {
    this.chunkCombiner = inner.chunkCombiner;
  }

  private options(options: SendOptions): SendOptions {
    if (!this.authorization) return options;
    return { ...options, headers: { ...options.headers, authorization: this.authorization } };
  }

  private path(method: string, path: string): string {
    const mapped = mapV1Path(path);
    this.onRequest?.(method, mapped);
    return mapped;
  }

  send(path: string, body: string, options: SendOptions, callbacks?: Partial<CommunicationObserver<Uint8Array>>): void {
    let mapped: string;
    try {
      mapped = this.path(options.method, path);
    } catch (err) {
      callbacks?.error?.(err as Error);
      return;
    }
    this.inner.send(mapped, body, this.options(options), callbacks);
  }

  request(path: string, body: any, options: SendOptions, responseStarted?: ResponseStartedFn): Promise<any> {
    try {
      return this.inner.request(this.path(options.method, path), body, this.options(options), responseStarted);
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  iterate(path: string, body: any, options: SendOptions): AsyncIterableIterator<Uint8Array> {
    return this.inner.iterate(this.path(options.method, path), body, this.options(options));
  }
}

/**
 * The server's version from GET /ping's `X-Influxdb-Version` header ("1.6.7~rc0", "v2.7.11",
 * "3.0.0"). Anything from 2 on is driven through the v2 write API.
 */
export async function detectInfluxVersion(transport: Transport): Promise<{ apiVersion: InfluxApiVersion; serverVersion: string }> {
  let header: string | undefined;
  await transport.request('/ping', '', { method: 'GET' }, (headers) => {
    const v = headers['x-influxdb-version'];
    header = Array.isArray(v) ? v[0] : v;
  });
  if (!header) throw new InfluxConfigError('InfluxDB /ping answered without an X-Influxdb-Version header; set the API version explicitly');
  const m = /^v?(\d+)\./.exec(header.trim());
  if (!m) throw new InfluxConfigError(`unrecognised InfluxDB version ${JSON.stringify(header)}; set the API version explicitly`);
  return { apiVersion: Number(m[1]) >= 2 ? 'v2' : 'v1', serverVersion: header.trim() };
}
