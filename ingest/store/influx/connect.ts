// Connecting ingest to InfluxDB without waiting for it (docs/architecture.md#start-up): start-up
// checks the settings only; the connection is made in the background, retried with backoff, while
// telemetry goes on being journalled and the API served. Until it is made, writes and flushes
// reject (the pipeline keeps the journal and backs off, as in any outage) and reads reject with
// TelemetryUnavailableError (503 from the HTTP API); /healthz says degraded and why.
import type { Reading } from '../../../proto/domain.js';
import type { TelemetryStore } from '../ports.js';
import { TelemetryRefusedError, TelemetryUnavailableError } from '../telemetry-errors.js';
import { assertRange, assertSignal, assertVin } from './schema.js';
import { checkInfluxOptions, openInfluxStore, type CheckedInfluxOptions, type InfluxTelemetryStore } from './store.js';
import { InfluxConfigError, type InfluxApiVersion } from './transport.js';
import { setLogger } from '@influxdata/influxdb-client';

export interface InfluxConnectOptions {
  url: string;
  token: string;
  org: string;
  bucket: string;
  /** `auto` (default) asks GET /ping; an explicit version is checked at once. */
  apiVersion?: 'auto' | InfluxApiVersion;
  log: { info(o: object, m?: string): void; warn(o: object, m?: string): void; error(o: object, m?: string): void };
  /** Called once connected, e.g. so the InfluxDB loop writes the journal now rather than after its backoff. */
  onConnected?: () => void;
  /** First and longest pause between connection attempts (default 1 s and 10 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** HTTP request timeout (default 10 s). */
  timeoutMs?: number;
}

/** What /healthz reports about InfluxDB: ok, or why not (`not reachable since <iso>: <reason>`). */
export interface InfluxAvailability {
  ok: boolean;
  error?: string;
}

export interface InfluxConnection extends TelemetryStore {
  /** Connected (the version detected); says nothing about whether it still answers. */
  readonly connected: boolean;
  /** Connection attempts made so far (the successful one included). */
  readonly connectAttempts: number;
  /** Connected, answering GET /ping and no write failing: for /healthz. */
  availability(): Promise<InfluxAvailability>;
}

/** On loopback, compressing write bodies costs CPU and saves nothing (measured: ~30 % slower). */
export function isLoopback(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    return false; // not a URL: checkInfluxOptions says so, naming INFLUX_URL
  }
  return host === 'localhost' || host === '::1' || host === '[::1]' || host.startsWith('127.');
}

/** Every attempt is logged while the failure is new; after that, one line a minute says it goes on. */
const LOUD_ATTEMPTS = 5;
const QUIET_LOG_EVERY_MS = 60_000;
/** /healthz must answer quickly even when InfluxDB hangs (a frozen server keeps the socket open). */
const PROBE_TIMEOUT_MS = 2000;

const iso = (t: number): string => new Date(t).toISOString();
const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err)) || 'no answer';

/**
 * A TelemetryStore at once; the connection follows in the background. Throws InfluxConfigError now
 * for a setting that can never work (INFLUX_URL not an http(s) URL, INFLUX_BUCKET malformed, an
 * explicit API version unknown or its token unusable): start-up must stop on those.
 */
export function connectInflux(o: InfluxConnectOptions): InfluxConnection {
  const checked = checkInfluxOptions({
    url: o.url,
    token: o.token,
    org: o.org,
    bucket: o.bucket,
    apiVersion: o.apiVersion,
    timeoutMs: o.timeoutMs,
    flushIntervalMs: 1000,
    gzipThreshold: isLoopback(o.url) ? Number.MAX_SAFE_INTEGER : 1000,
  });
  // the client logs its own write retries; process-wide, as its logger is global
  setLogger({
    warn: (m: string, e?: unknown) => o.log.warn({ err: String(e ?? '') }, m),
    error: (m: string, e?: unknown) => o.log.error({ err: String(e ?? '') }, m),
  });
  const conn = new ConnectingInfluxStore(checked, o);
  conn.start();
  return conn;
}

class ConnectingInfluxStore implements InfluxConnection {
  private store: InfluxTelemetryStore | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private attempts = 0;
  private delayMs: number;
  /** Not connected since (start-up, until connected). */
  private readonly startedAt = Date.now();
  private lastError = 'first connection attempt still running';
  private lastLoudAt = 0;
  /** Connected, but GET /ping failing since / writes failing since (null: fine). */
  private pingFailing: { since: number; error: string } | null = null;
  private writeFailing: { since: number; error: string } | null = null;

  constructor(
    private readonly checked: CheckedInfluxOptions,
    private readonly o: InfluxConnectOptions,
  ) {
    this.delayMs = o.retryMinMs ?? 1000;
  }

  get connected(): boolean {
    return this.store !== undefined;
  }

  get connectAttempts(): number {
    return this.attempts;
  }

  start(): void {
    void this.attempt();
  }

  private async attempt(): Promise<void> {
    this.timer = undefined;
    if (this.closed) return;
    this.attempts++;
    let store: InfluxTelemetryStore;
    try {
      store = await openInfluxStore(this.checked);
    } catch (err) {
      if (this.closed) return;
      this.failed(err);
      this.timer = setTimeout(() => void this.attempt(), this.delayMs);
      this.timer.unref();
      this.delayMs = Math.min(this.o.retryMaxMs ?? 10_000, this.delayMs * 2);
      return;
    }
    if (this.closed) {
      await store.close().catch(() => undefined);
      return;
    }
    this.store = store;
    this.o.log.info(
      {
        url: this.checked.url,
        apiVersion: store.apiVersion,
        serverVersion: store.serverVersion,
        attempts: this.attempts,
        ...(this.attempts > 1 ? { unreachableSince: iso(this.startedAt) } : {}),
      },
      'connected to InfluxDB',
    );
    try {
      this.o.onConnected?.();
    } catch (err) {
      this.o.log.error({ err: messageOf(err) }, 'onConnected failed');
    }
  }

  private failed(err: unknown): void {
    const config = err instanceof InfluxConfigError;
    const error = messageOf(err);
    const next = config ? `configuration: ${error}` : error;
    const changed = next !== this.lastError;
    this.lastError = next;
    const now = Date.now();
    // every attempt while it is new or the reason changes; then once a minute, so a long outage is not a flood
    if (this.attempts > LOUD_ATTEMPTS && !changed && now - this.lastLoudAt < QUIET_LOG_EVERY_MS) return;
    this.lastLoudAt = now;
    const fields = { url: this.checked.url, err: error, attempts: this.attempts, since: iso(this.startedAt), retryInMs: this.delayMs };
    // a server that answers something ingest cannot use (no version header, a token 1.x cannot take) is the set-up's to fix
    if (config) this.o.log.error(fields, 'InfluxDB answers but cannot be used as configured; retrying');
    else
      this.o.log.warn(
        fields,
        this.attempts > LOUD_ATTEMPTS
          ? 'InfluxDB still not reachable; telemetry is kept in the journal'
          : 'InfluxDB not reachable; retrying',
      );
  }

  private unavailable(): TelemetryUnavailableError {
    return new TelemetryUnavailableError(`InfluxDB not reachable since ${iso(this.startedAt)}: ${this.lastError}`);
  }

  private ready(): InfluxTelemetryStore {
    if (this.closed) throw new Error('telemetry store is closed');
    if (!this.store) throw this.unavailable();
    return this.store;
  }

  async availability(): Promise<InfluxAvailability> {
    if (!this.store) return { ok: false, error: this.unavailable().message.replace(/^InfluxDB /, '') };
    let timer: NodeJS.Timeout | undefined;
    const pingError = await Promise.race([
      this.store.probe(),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(`no answer to GET /ping within ${PROBE_TIMEOUT_MS} ms`), PROBE_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    if (pingError !== null) {
      this.pingFailing ??= { since: Date.now(), error: pingError };
      this.pingFailing.error = pingError;
      return { ok: false, error: `not reachable since ${iso(this.pingFailing.since)}: ${pingError}` };
    }
    this.pingFailing = null;
    if (this.writeFailing) return { ok: false, error: `writes failing since ${iso(this.writeFailing.since)}: ${this.writeFailing.error}` };
    return { ok: true };
  }

  async write(readings: Reading[], tags: (vin: string) => Record<string, string>): Promise<void> {
    await this.ready().write(readings, tags);
  }

  async flush(): Promise<void> {
    const store = this.ready();
    try {
      await store.flush();
      this.writeFailing = null;
    } catch (err) {
      // a refusal is an answer: InfluxDB takes writes, it just will not take those points
      if (err instanceof TelemetryRefusedError) this.writeFailing = null;
      else {
        this.writeFailing ??= { since: Date.now(), error: messageOf(err) };
        this.writeFailing.error = messageOf(err).slice(0, 500);
      }
      throw err;
    }
  }

  async latest(vin: string): ReturnType<TelemetryStore['latest']> {
    assertVin(vin);
    return this.ready().latest(vin);
  }

  async history(q: Parameters<TelemetryStore['history']>[0]): ReturnType<TelemetryStore['history']> {
    assertVin(q.vin);
    assertSignal(q.signal);
    assertRange(q);
    return this.ready().history(q);
  }

  async count(q: Parameters<TelemetryStore['count']>[0]): Promise<number> {
    if (q.vin !== undefined) assertVin(q.vin);
    assertSignal(q.signal);
    assertRange(q);
    return this.ready().count(q);
  }

  async ping(): Promise<boolean> {
    return this.store ? this.store.ping() : false;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    await this.store?.close();
  }
}
