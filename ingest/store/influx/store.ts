// TelemetryStore on InfluxDB 2.x (production) or 1.x (Debian's 1.6.7 in tests). One writer path,
// the official client's WriteApi; 1.x is reached through a Transport that maps the v2 write API
// (influx-transport.ts). Queries are InfluxQL on /query, which 2.x serves through DBRP mapping.
// Schema and set-up: ingest/README-influx.md.
import { setImmediate as nextTurn } from 'node:timers/promises';
import { InfluxDB, setLogger, type Logger, type Transport } from '@influxdata/influxdb-client';
import type { Reading } from '../../../proto/domain.js';
import type { TelemetryStore } from '../ports.js';
import { TelemetryUnavailableError } from '../telemetry-errors.js';
import {
  assertRange,
  assertSignal,
  assertVin,
  isNumericSignal,
  MEASUREMENT,
  quoteIdent,
  quoteString,
  toLines,
  type FieldValue,
} from './schema.js';
import {
  detectInfluxVersion,
  InfluxConfigError,
  InfluxV1Transport,
  splitBucket,
  v1AuthHeader,
  type InfluxApiVersion,
} from './transport.js';
import { TrackedWriter, type WriterOptions } from './writer.js';

/** Readings serialised, or handed to the WriteApi, per turn of the event loop (a few ms of work on the 2-core bench machine). */
export const WRITE_SLICE = 2_000;

export { TelemetryFlushError } from './writer.js';
export { TelemetryInputError } from './schema.js';
export { InfluxConfigError } from './transport.js';
export { TelemetryRefusedError, TelemetryUnavailableError } from '../telemetry-errors.js';

export interface InfluxTelemetryStoreOptions {
  url: string;
  /** v2: API token. v1: `user:password`, or empty without authentication. */
  token: string;
  org: string;
  /** v2: bucket name. v1: `database` or `database/retention-policy`. */
  bucket: string;
  /** `auto` (default) asks GET /ping for `X-Influxdb-Version`. */
  apiVersion?: 'auto' | InfluxApiVersion;
  /** Lines per write request (default 5000). */
  batchSize?: number;
  /** A partial batch is sent after this long (default 1000 ms; the client's own default is 60 s). */
  flushIntervalMs?: number;
  /** Retries per batch before the client gives up (default 5). */
  maxRetries?: number;
  /** The client's in-memory retry buffer, in lines (default 100,000); overflow fails the flush. */
  maxBufferLines?: number;
  /** Gzip write bodies larger than this many bytes (the client's default: 1000). */
  gzipThreshold?: number;
  /** HTTP request timeout (default 10 s). */
  timeoutMs?: number;
  /** A flush with no progress for this long rejects (default 60 s). */
  flushTimeoutMs?: number;
  /** Where the client logs its retries; process-wide, as the client's logger is global. */
  logger?: Logger;
}

/** The JSON body of /query (InfluxQL), as far as it is read here. */
export interface InfluxQLResponse {
  error?: string;
  results?: Array<{ error?: string; series?: InfluxQLSeries[] }>;
}

export interface InfluxQLSeries {
  name: string;
  tags?: Record<string, string>;
  columns: string[];
  values: unknown[][];
}

export interface TelemetryWriteStats {
  acceptedLines: number;
  failedLines: number;
  /** Lines of requests refused as input (field type conflict, beyond retention, unparsable...). */
  refusedLines: number;
}

export interface InfluxTelemetryStore extends TelemetryStore {
  readonly apiVersion: InfluxApiVersion;
  /** X-Influxdb-Version as /ping reported it; null when the version was configured. */
  readonly serverVersion: string | null;
  /** Run read-only InfluxQL against the telemetry database (one result per statement). */
  query(influxql: string): Promise<Array<{ series: InfluxQLSeries[] }>>;
  /** Lines accepted / failed / refused as input, since start (metrics). */
  stats(): TelemetryWriteStats;
  /** GET /ping: null when InfluxDB answers, else why not. */
  probe(): Promise<string | null>;
  /** The transport every request goes through (the v1 adapter on 1.x). */
  readonly transport: Transport;
}

function intOption(name: string, v: number | undefined, dflt: number, min: number, max: number): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new InfluxConfigError(`${name} must be an integer in ${min}..${max}, got ${v}`);
  return v;
}

/** Options checked without asking the server: what start-up refuses at once (InfluxConfigError). */
export interface CheckedInfluxOptions {
  url: string;
  token: string;
  timeout: number;
  mode: 'auto' | InfluxApiVersion;
  db: string;
  rp: string | undefined;
  writer: WriterOptions;
}

/** Every check that needs no server: the URL, the bucket, the numbers, an explicit API version and its token. */
export function checkInfluxOptions(opts: InfluxTelemetryStoreOptions): CheckedInfluxOptions {
  let base: URL;
  try {
    base = new URL(opts.url);
  } catch {
    throw new InfluxConfigError(`INFLUX_URL ${JSON.stringify(opts.url)} is not a URL`);
  }
  if (base.protocol !== 'http:' && base.protocol !== 'https:')
    throw new InfluxConfigError(`INFLUX_URL must be http:// or https://, got ${opts.url}`);
  const writer: WriterOptions = {
    org: opts.org,
    bucket: opts.bucket,
    batchSize: intOption('batchSize', opts.batchSize, 5000, 1, 100_000),
    flushIntervalMs: intOption('flushIntervalMs', opts.flushIntervalMs, 1000, 0, 3_600_000),
    maxRetries: intOption('maxRetries', opts.maxRetries, 5, 0, 100),
    maxBufferLines: intOption('maxBufferLines', opts.maxBufferLines, 100_000, 1, 10_000_000),
    flushTimeoutMs: intOption('flushTimeoutMs', opts.flushTimeoutMs, 60_000, 100, 3_600_000),
    gzipThreshold: intOption('gzipThreshold', opts.gzipThreshold, 1000, 0, Number.MAX_SAFE_INTEGER),
  };
  const mode = opts.apiVersion ?? 'auto';
  if (mode !== 'auto' && mode !== 'v1' && mode !== 'v2') {
    throw new InfluxConfigError(`the InfluxDB API version must be auto, v1 or v2, got ${String(mode)}`);
  }
  if (mode === 'v1') v1AuthHeader(opts.token);
  const { db, rp } = splitBucket(opts.bucket);
  return {
    url: opts.url.replace(/\/+$/, ''),
    token: opts.token,
    timeout: intOption('timeoutMs', opts.timeoutMs, 10_000, 100, 600_000),
    mode,
    db,
    rp,
    writer,
  };
}

/**
 * The store on a server that answers: the version from GET /ping unless configured. Rejects with
 * the transport's error while the server cannot be reached, InfluxConfigError when what it answers
 * cannot be used (no or an unknown version, a token 1.x cannot take).
 */
export async function openInfluxStore(c: CheckedInfluxOptions): Promise<InfluxTelemetryStore> {
  let apiVersion: InfluxApiVersion;
  let serverVersion: string | null = null;
  if (c.mode === 'auto') {
    ({ apiVersion, serverVersion } = await detectInfluxVersion(new InfluxDB({ url: c.url, timeout: c.timeout }).transport));
  } else {
    apiVersion = c.mode;
  }
  let influx: InfluxDB;
  if (apiVersion === 'v1') {
    // the inner transport gets no token: on 1.x the credentials travel as Basic auth instead
    const transport = new InfluxV1Transport(new InfluxDB({ url: c.url, timeout: c.timeout }).transport, v1AuthHeader(c.token));
    influx = new InfluxDB({ url: c.url, transport });
  } else {
    influx = new InfluxDB({ url: c.url, token: c.token || undefined, timeout: c.timeout });
  }
  const writer = new TrackedWriter(influx, c.writer);
  return new InfluxStore(influx, writer, apiVersion, serverVersion, c.db, c.rp);
}

/** Check, then open at once: for tools and tests that need InfluxDB now (ingest uses connect.ts). */
export async function createInfluxTelemetryStore(opts: InfluxTelemetryStoreOptions): Promise<InfluxTelemetryStore> {
  const checked = checkInfluxOptions(opts);
  if (opts.logger) setLogger(opts.logger);
  try {
    return await openInfluxStore(checked);
  } catch (err) {
    if (err instanceof InfluxConfigError) throw err;
    throw new InfluxConfigError(
      `cannot detect the InfluxDB version at ${checked.url} (GET /ping: ${(err as Error).message}); is it running? Or set the API version explicitly`,
    );
  }
}

class InfluxStore implements InfluxTelemetryStore {
  private readonly from: string;
  private closed = false;

  constructor(
    private readonly influx: InfluxDB,
    private readonly writer: TrackedWriter,
    readonly apiVersion: InfluxApiVersion,
    readonly serverVersion: string | null,
    private readonly db: string,
    rp: string | undefined,
  ) {
    // a retention policy is named in FROM, which 1.x and 2.x's InfluxQL both understand
    this.from = rp === undefined ? quoteIdent(MEASUREMENT) : `${quoteIdent(db)}.${quoteIdent(rp)}.${quoteIdent(MEASUREMENT)}`;
  }

  get transport(): Transport {
    return this.influx.transport;
  }

  /**
   * Serialised and handed to the WriteApi a slice at a time, the event loop free in between: a
   * 25,000-reading chunk in one go held MQTT handling, the rules loop and HMI delivery up for
   * 100–370 ms under load. Every slice is checked before any is written, so a bad reading still
   * refuses the whole call with nothing written.
   */
  async write(readings: Reading[], tags: (vin: string) => Record<string, string>): Promise<void> {
    if (this.closed) throw new Error('telemetry store is closed');
    const slices: string[][] = [];
    for (let i = 0; i < readings.length; i += WRITE_SLICE) {
      if (i > 0) await nextTurn();
      slices.push(toLines(readings.length <= WRITE_SLICE ? readings : readings.slice(i, i + WRITE_SLICE), tags));
    }
    for (let k = 0; k < slices.length; k++) {
      if (k > 0) await nextTurn();
      if (this.closed) throw new Error('telemetry store is closed');
      this.writer.write(slices[k]);
    }
  }

  flush(): Promise<void> {
    return this.writer.flush();
  }

  stats(): TelemetryWriteStats {
    return {
      acceptedLines: this.writer.acceptedLines,
      failedLines: this.writer.failedLines,
      refusedLines: this.writer.refusedLines,
    };
  }

  async query(influxql: string): Promise<Array<{ series: InfluxQLSeries[] }>> {
    if (this.closed) throw new Error('telemetry store is closed');
    const params = new URLSearchParams({ db: this.db, q: influxql, epoch: 'ms' });
    let json: InfluxQLResponse | null;
    try {
      json = (await this.influx.transport.request(`/query?${params.toString()}`, '', {
        method: 'GET',
        headers: { accept: 'application/json' },
      })) as InfluxQLResponse | null;
    } catch (err) {
      // no answer, or an HTTP error (down, overloaded, credentials): the HTTP API says 503
      throw new TelemetryUnavailableError(`InfluxDB did not answer the query: ${(err as Error).message}`, { cause: err });
    }
    if (!json || !Array.isArray(json.results)) throw new Error(`InfluxDB query failed: ${json?.error ?? 'no results in the answer'}`);
    return json.results.map((r) => {
      if (r.error) throw new Error(`InfluxDB query failed: ${r.error}`);
      return { series: (r.series ?? []) as InfluxQLSeries[] };
    });
  }

  async latest(vin: string): Promise<{ ts: number; signals: Record<string, FieldValue> } | undefined> {
    assertVin(vin);
    const where = `WHERE "vin" = ${quoteString(vin)}`;
    // LAST(*) gives every field's last value but no single time; the newest row gives the time
    const [last, newest] = await this.query(
      `SELECT LAST(*) FROM ${this.from} ${where}; SELECT * FROM ${this.from} ${where} ORDER BY time DESC LIMIT 1`,
    );
    const lastRow = last.series[0];
    const newestRow = newest.series[0];
    if (!lastRow?.values?.[0] || !newestRow?.values?.[0]) return undefined;
    const signals: Record<string, FieldValue> = {};
    lastRow.columns.forEach((col, i) => {
      const v = lastRow.values[0][i];
      if (col.startsWith('last_') && v !== null && v !== undefined) signals[col.slice(5)] = v as FieldValue;
    });
    return { ts: Number(newestRow.values[0][0]), signals };
  }

  async history(q: {
    vin: string;
    signal: string;
    from: number;
    to: number;
    everyMs?: number;
    limit?: number;
  }): Promise<Array<{ ts: number; value: FieldValue | null }>> {
    assertVin(q.vin);
    assertSignal(q.signal);
    assertRange(q);
    if (q.to <= q.from) return [];
    const field = quoteIdent(q.signal);
    const where = `WHERE "vin" = ${quoteString(q.vin)} AND time >= ${q.from}ms AND time < ${q.to}ms`;
    const sql =
      q.everyMs === undefined
        ? `SELECT ${field} FROM ${this.from} ${where}${q.limit === undefined ? '' : ` LIMIT ${Math.max(1, Math.floor(q.limit))}`}`
        : `SELECT ${isNumericSignal(q.signal) ? 'MEAN' : 'LAST'}(${field}) FROM ${this.from} ${where} GROUP BY time(${q.everyMs}ms) fill(null)`;
    const [res] = await this.query(sql);
    const rows = res.series.flatMap((s) => s.values);
    return rows.map((row) => ({ ts: Number(row[0]), value: (row[1] ?? null) as FieldValue | null }));
  }

  async count(q: { vin?: string; signal: string; from: number; to: number }): Promise<number> {
    if (q.vin !== undefined) assertVin(q.vin);
    assertSignal(q.signal);
    assertRange(q);
    if (q.to <= q.from) return 0;
    const vinCond = q.vin === undefined ? '' : ` AND "vin" = ${quoteString(q.vin)}`;
    const [res] = await this.query(
      `SELECT COUNT(${quoteIdent(q.signal)}) FROM ${this.from} WHERE time >= ${q.from}ms AND time < ${q.to}ms${vinCond}`,
    );
    const v = res.series[0]?.values?.[0]?.[1];
    return typeof v === 'number' ? v : 0;
  }

  async ping(): Promise<boolean> {
    return (await this.probe()) === null;
  }

  async probe(): Promise<string | null> {
    try {
      await this.influx.transport.request('/ping', '', { method: 'GET' });
      return null;
    } catch (err) {
      return (err instanceof Error ? err.message : String(err)) || 'no answer';
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writer.close();
  }
}
