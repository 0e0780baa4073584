// connectInflux never waits for InfluxDB: bad settings throw at once, naming the setting; otherwise
// it returns a store that connects in the background (retried with backoff, failures logged with
// the reason), rejects writes, flushes and reads with TelemetryUnavailableError until then, and
// reports why in availability() (/healthz).
import { afterEach, describe, expect, it } from 'vitest';
import { connectInflux, type InfluxConnectOptions, type InfluxConnection } from '../../ingest/store/influx/connect.js';
import { InfluxConfigError } from '../../ingest/store/influx/transport.js';
import { TelemetryUnavailableError } from '../../ingest/store/telemetry-errors.js';
import { VSS } from '../../proto/signals.js';
import { startInflux2Fake, type Influx2Fake } from '../support/influx2-fake.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

const VIN = 'LSVAU2180N2183294';
const T0 = Date.UTC(2026, 2, 1, 8);

function memoryLog() {
  const lines: Array<{ level: string; o: Record<string, unknown>; m?: string }> = [];
  const at = (level: string) => (o: object, m?: string) => void lines.push({ level, o: o as Record<string, unknown>, m });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

const open: Array<InfluxConnection | Influx2Fake> = [];
afterEach(async () => {
  for (const x of open.splice(0)) await x.close();
});

function connect(over: Partial<InfluxConnectOptions> & { log: InfluxConnectOptions['log'] }): InfluxConnection {
  const c = connectInflux({
    url: 'http://127.0.0.1:9',
    token: '',
    org: 'acme',
    bucket: 'telemetry',
    retryMinMs: 20,
    retryMaxMs: 100,
    ...over,
  });
  open.push(c);
  return c;
}

describe('connectInflux', () => {
  it('throws InfluxConfigError at once for settings that can never work, naming the setting', () => {
    const log = memoryLog();
    expect(() => connect({ log, url: 'not a url' })).toThrow(InfluxConfigError);
    expect(() => connect({ log, url: 'not a url' })).toThrow(/INFLUX_URL/);
    expect(() => connect({ log, url: 'ftp://influx:8086' })).toThrow(/INFLUX_URL must be http/);
    expect(() => connect({ log, bucket: 'a/b/c' })).toThrow(/INFLUX_BUCKET/);
    expect(() => connect({ log, apiVersion: 'v3' as never })).toThrow(/API version must be auto, v1 or v2/);
    expect(() => connect({ log, apiVersion: 'v1', token: 'no-colon' })).toThrow(/INFLUX_TOKEN/);
  });

  it('returns at once while nothing listens, rejects with TelemetryUnavailableError, and connects when the server appears', async () => {
    const port = await freePort();
    const log = memoryLog();
    let connected = 0;
    const c = connect({ log, url: `http://127.0.0.1:${port}`, token: 'tok', onConnected: () => connected++ });
    expect(c.connected).toBe(false);

    // the first failure is logged at warn with the reason
    await waitFor(() => log.lines.find((l) => l.level === 'warn'), { what: 'a warning about the connection' });
    const warn = log.lines.find((l) => l.level === 'warn')!;
    expect(warn.m).toMatch(/InfluxDB not reachable/);
    expect(String(warn.o.err)).toMatch(/ECONNREFUSED/);
    expect(warn.o.url).toBe(`http://127.0.0.1:${port}`);

    const reading = { vin: VIN, ts: T0, signals: { [VSS.soc]: 50 } };
    await expect(c.write([reading], () => ({}))).rejects.toThrow(TelemetryUnavailableError);
    await expect(c.flush()).rejects.toThrow(/^InfluxDB not reachable since \S+Z: .*ECONNREFUSED/);
    await expect(c.latest(VIN)).rejects.toThrow(TelemetryUnavailableError);
    await expect(c.history({ vin: VIN, signal: VSS.soc, from: T0, to: T0 + 1000 })).rejects.toThrow(TelemetryUnavailableError);
    await expect(c.count({ signal: VSS.soc, from: T0, to: T0 + 1000 })).rejects.toThrow(TelemetryUnavailableError);
    // bad input is still the caller's mistake, whether or not InfluxDB is there
    await expect(c.latest('not-a-vin')).rejects.toThrow(/invalid VIN/);
    expect(await c.ping()).toBe(false);
    const down = await c.availability();
    expect(down.ok).toBe(false);
    expect(down.error).toMatch(/^not reachable since \d{4}-\d\d-\d\dT\S+Z: .*ECONNREFUSED/);

    // a long outage is not a warning per attempt: many attempts, a handful of lines
    await waitFor(() => c.connectAttempts >= 12, { what: 'a dozen attempts' });
    expect(log.lines.filter((l) => l.level === 'warn')).toHaveLength(5);
    const fake = await startInflux2Fake(port);
    open.push(fake);
    await waitFor(() => c.connected, { what: 'the background connection' });
    expect(connected).toBe(1);
    const info = log.lines.find((l) => l.level === 'info' && l.m === 'connected to InfluxDB');
    expect(info?.o).toMatchObject({ apiVersion: 'v2', serverVersion: 'v2.7.11' });
    const attempts = Number(info?.o.attempts);
    expect(attempts).toBeGreaterThan(12);
    expect(attempts).toBe(c.connectAttempts);

    expect(await c.availability()).toEqual({ ok: true });
    await c.write([reading], () => ({}));
    await c.flush();
    expect(fake.stored).toHaveLength(1);
    expect(fake.stored[0]).toContain(`vin=${VIN}`);
  });

  it('connected but writes failing (a bad token): availability says so until a write goes through', async () => {
    const fake = await startInflux2Fake();
    open.push(fake);
    const log = memoryLog();
    const c = connect({ log, url: fake.url, token: 'wrong' });
    await waitFor(() => c.connected, { what: 'the connection' });
    fake.answer = () => ({ status: 401, body: { code: 'unauthorized', message: 'unauthorized access' } });
    await c.write([{ vin: VIN, ts: T0, signals: { [VSS.soc]: 50 } }], () => ({}));
    await expect(c.flush()).rejects.toThrow(/INFLUX_TOKEN/);
    const bad = await c.availability();
    expect(bad.ok).toBe(false);
    expect(bad.error).toMatch(/^writes failing since \S+Z: .*HTTP 401: unauthorized access/);
    fake.answer = () => undefined;
    await c.write([{ vin: VIN, ts: T0, signals: { [VSS.soc]: 50 } }], () => ({}));
    await c.flush();
    expect(await c.availability()).toEqual({ ok: true });
  });

  it('a server that stops answering makes availability say so promptly instead of hanging /healthz', async () => {
    const fake = await startInflux2Fake();
    open.push(fake);
    const c = connect({ log: memoryLog(), url: fake.url });
    await waitFor(() => c.connected, { what: 'the connection' });
    fake.holdPing = true;
    const hung = await c.availability();
    expect(hung.ok).toBe(false);
    expect(hung.error).toMatch(/^not reachable since \S+Z: no answer to GET \/ping within 2000 ms$/);
    fake.holdPing = false;
    await waitFor(async () => (await c.availability()).ok, { what: 'InfluxDB answering again' });
  });
});
