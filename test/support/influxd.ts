// A throw-away influxd 1.x (Debian's 1.6.7) on a temp dir and free loopback ports, for integration
// tests: the product's own launcher (also used by the demo and the benchmark) without a kept data dir.
import { influxQuery, startLocalInfluxd, type InfluxdHandle } from '../../tools/influxd-local.js';

export { influxQuery, INFLUXD_BIN, type InfluxdHandle } from '../../tools/influxd-local.js';

export function startInfluxd(opts: { database?: string } = {}): Promise<InfluxdHandle> {
  return startLocalInfluxd({ database: opts.database });
}

/** The single number an aggregate such as COUNT() answers (0 when the series is empty). */
export async function influxNumber(url: string, db: string, q: string): Promise<number> {
  const v = (await influxQuery(url, db, q)).results?.[0]?.series?.[0]?.values?.[0]?.[1];
  if (v === undefined) return 0;
  if (typeof v !== 'number') throw new Error(`expected a number from ${q}, got ${JSON.stringify(v)}`);
  return v;
}
