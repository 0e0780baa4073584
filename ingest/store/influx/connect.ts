// Connecting ingest to InfluxDB at start-up: retried for a while, since compose starts both at once.
import type { TelemetryStore } from '../ports.js';
import { createInfluxTelemetryStore } from './store.js';

export interface InfluxConnectOptions {
  url: string;
  token: string;
  org: string;
  bucket: string;
  /** How long to keep trying before start-up fails (ms). */
  waitMs?: number;
  log: { warn(o: object, m?: string): void; error(o: object, m?: string): void };
}

/** On loopback, compressing write bodies costs CPU and saves nothing (measured: ~30 % slower). */
export function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '::1' || host === '[::1]' || host.startsWith('127.');
}

export async function connectInflux(o: InfluxConnectOptions): Promise<TelemetryStore> {
  const deadline = Date.now() + (o.waitMs ?? 30_000);
  const logger = {
    warn: (m: string, e?: unknown) => o.log.warn({ err: String(e ?? '') }, m),
    error: (m: string, e?: unknown) => o.log.error({ err: String(e ?? '') }, m),
  };
  for (;;) {
    try {
      return await createInfluxTelemetryStore({
        url: o.url,
        token: o.token,
        org: o.org,
        bucket: o.bucket,
        flushIntervalMs: 1000,
        logger,
        gzipThreshold: isLoopback(o.url) ? Number.MAX_SAFE_INTEGER : 1000,
      });
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`InfluxDB at ${o.url} is not reachable: ${(err as Error).message}`);
      o.log.warn({ err: (err as Error).message }, 'waiting for InfluxDB');
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}
