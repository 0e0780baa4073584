// In-memory TelemetryStore with InfluxDB's semantics (series = measurement + tags, a point is
// replaced field by field when written again at the same time, GROUP BY time buckets aligned to
// the epoch, mean for numbers and last for the rest), for unit tests and the shared port suite.
// setAvailable(false) plays an outage: writes wait, flush() rejects, queries fail.
import type { Reading } from '../../../proto/domain.js';
import type { TelemetryStore } from '../ports.js';
import {
  assertRange,
  assertSignal,
  assertVin,
  bucketStarts,
  checkedTags,
  isNumericSignal,
  readingFields,
  type FieldValue,
} from '../influx/schema.js';

interface StoredPoint {
  ts: number;
  fields: Map<string, FieldValue>;
}

/** One series (vin + tags): its points by time. */
interface Series {
  points: Map<number, StoredPoint>;
}

interface Staged {
  vin: string;
  seriesKey: string;
  ts: number;
  fields: Record<string, FieldValue>;
}

export class MemoryTelemetryStore implements TelemetryStore {
  private readonly byVin = new Map<string, Map<string, Series>>();
  private staged: Staged[] = [];
  private available = true;
  private closed = false;
  /** Points (lines) accepted since start, as the Influx store counts them. */
  acceptedLines = 0;

  /** false = InfluxDB is down: writes are held, flush() rejects, queries and ping fail. */
  setAvailable(up: boolean): void {
    this.available = up;
  }

  async write(readings: Reading[], tags: (vin: string) => Record<string, string>): Promise<void> {
    if (this.closed) throw new Error('telemetry store is closed');
    // check everything before storing anything, as the Influx store does
    const tagCache = new Map<string, string>();
    const staged: Staged[] = [];
    for (const r of readings) {
      const fields = readingFields(r);
      if (Object.keys(fields).length === 0) continue;
      let key = tagCache.get(r.vin);
      if (key === undefined) {
        const t = checkedTags(r.vin, tags(r.vin));
        key = JSON.stringify(
          Object.keys(t)
            .sort()
            .map((k) => [k, t[k]]),
        );
        tagCache.set(r.vin, key);
      }
      staged.push({ vin: r.vin, seriesKey: key, ts: r.ts, fields });
    }
    this.staged.push(...staged);
    if (this.available) this.commit();
  }

  private commit(): void {
    for (const s of this.staged) {
      let series = this.byVin.get(s.vin);
      if (!series) this.byVin.set(s.vin, (series = new Map()));
      let one = series.get(s.seriesKey);
      if (!one) series.set(s.seriesKey, (one = { points: new Map() }));
      let p = one.points.get(s.ts);
      if (!p) one.points.set(s.ts, (p = { ts: s.ts, fields: new Map() }));
      for (const [k, v] of Object.entries(s.fields)) p.fields.set(k, v);
      this.acceptedLines++;
    }
    this.staged = [];
  }

  async flush(): Promise<void> {
    if (this.staged.length === 0) return;
    if (!this.available) throw new Error(`InfluxDB did not confirm ${this.staged.length} lines: unavailable (memory store)`);
    this.commit();
  }

  private up(): void {
    if (this.closed) throw new Error('telemetry store is closed');
    if (!this.available) throw new Error('InfluxDB query failed: unavailable (memory store)');
  }

  /** Points of one vehicle (or all), across its series, oldest first. */
  private points(vin: string | undefined, from = -Infinity, to = Infinity): StoredPoint[] {
    const maps = vin === undefined ? [...this.byVin.values()] : [this.byVin.get(vin)].filter((m) => m !== undefined);
    const out: StoredPoint[] = [];
    for (const m of maps) for (const s of m.values()) for (const p of s.points.values()) if (p.ts >= from && p.ts < to) out.push(p);
    return out.sort((a, b) => a.ts - b.ts);
  }

  async latest(vin: string): Promise<{ ts: number; signals: Record<string, FieldValue> } | undefined> {
    assertVin(vin);
    this.up();
    const pts = this.points(vin);
    if (pts.length === 0) return undefined;
    const signals: Record<string, FieldValue> = {};
    for (const p of pts) for (const [k, v] of p.fields) signals[k] = v;
    return { ts: pts[pts.length - 1].ts, signals };
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
    this.up();
    if (q.to <= q.from) return [];
    const rows = this.points(q.vin, q.from, q.to)
      .filter((p) => p.fields.has(q.signal))
      .map((p) => ({ ts: p.ts, value: p.fields.get(q.signal) as FieldValue }));
    if (q.everyMs === undefined) return q.limit === undefined ? rows : rows.slice(0, Math.max(1, Math.floor(q.limit)));
    const every = q.everyMs;
    const numeric = isNumericSignal(q.signal);
    let i = 0;
    return bucketStarts(q.from, q.to, every).map((start) => {
      const inBucket: FieldValue[] = [];
      while (i < rows.length && rows[i].ts < start + every) inBucket.push(rows[i++].value);
      if (inBucket.length === 0) return { ts: start, value: null };
      if (!numeric) return { ts: start, value: inBucket[inBucket.length - 1] };
      let sum = 0;
      for (const v of inBucket) sum += v as number;
      return { ts: start, value: sum / inBucket.length };
    });
  }

  async count(q: { vin?: string; signal: string; from: number; to: number }): Promise<number> {
    if (q.vin !== undefined) assertVin(q.vin);
    assertSignal(q.signal);
    assertRange(q);
    this.up();
    if (q.to <= q.from) return 0;
    return this.points(q.vin, q.from, q.to).filter((p) => p.fields.has(q.signal)).length;
  }

  async ping(): Promise<boolean> {
    return !this.closed && this.available;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush();
  }
}
