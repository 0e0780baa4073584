// A throw-away influxd 1.x (Debian's 1.6.7) on a temp dir and free loopback ports, for integration
// tests: the product's own launcher (also used by the demo and the benchmark) without a kept data dir.
import { startLocalInfluxd, type InfluxdHandle } from '../../tools/influxd-local.js';

export { influxQuery, INFLUXD_BIN, type InfluxdHandle } from '../../tools/influxd-local.js';

export function startInfluxd(opts: { database?: string } = {}): Promise<InfluxdHandle> {
  return startLocalInfluxd({ database: opts.database });
}
