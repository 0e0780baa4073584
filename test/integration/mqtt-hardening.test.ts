// The embedded broker hardened, in this process (so its memory can be measured): client id bound to
// the VIN, the client certificate bound to the VIN, the packet size limit without buffering, retain
// only on status, the connection rate limit per address. Plus the shipped Mosquitto config.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashCredential, loadCredentials } from '../../ingest/inbound/credentials.js';
import { DEFAULT_MAX_PACKET_BYTES, startEmbeddedBroker, type EmbeddedBrokerOptions } from '../../ingest/inbound/embedded.js';
import type { InboundHandlers } from '../../ingest/inbound/topics.js';
import { PACKAGE_ROOT } from '../../proto/paths.js';
import { makeCerts } from '../support/mosquitto.js';
import { startInfluxd } from '../support/influxd.js';
import { startIngestProcess } from '../support/ingest.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

const A = 'LSVAU2180N2183301';
const B = 'LSVAU2180N2183302';
const dir = mkdtempSync(join(tmpdir(), 'odopulse-hardening-'));
const certs = makeCerts(dir);

/** A client certificate signed by the test CA, with this subject and optional subjectAltName. */
function issue(name: string, cn: string, san?: string): { cert: Buffer; key: Buffer } {
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run([
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${cn}`,
  ]);
  const ext = san ? ['-extfile', join(dir, `${name}.ext`)] : [];
  if (san) writeFileSync(join(dir, `${name}.ext`), `subjectAltName=${san}\n`);
  run([
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${name}.crt`,
    '-days',
    '2',
    ...ext,
  ]);
  return { cert: readFileSync(join(dir, `${name}.crt`)), key: readFileSync(join(dir, `${name}.key`)) };
}

function recorder() {
  const seen = { telemetry: [] as string[], status: [] as string[], ack: [] as string[] };
  const handlers: InboundHandlers = {
    telemetry: async (vin) => void seen.telemetry.push(vin),
    status: async (vin) => void seen.status.push(vin),
    ack: async (vin) => void seen.ack.push(vin),
  };
  return { seen, handlers };
}

type Broker = Awaited<ReturnType<typeof startEmbeddedBroker>>;
const denied: string[] = [];
const { seen, handlers } = recorder();
let broker: Broker;
let url: string;

async function start(o: Partial<EmbeddedBrokerOptions>, h: InboundHandlers, log: string[]): Promise<Broker> {
  return startEmbeddedBroker({ prefix: 'v1', host: '127.0.0.1', port: 0, onDenied: (what) => log.push(what), ...o }, h);
}

/** Resolves on the event; unlike events.once, an 'error' (ECONNRESET once the broker closed) does not reject. */
const event = <T = unknown>(e: { once(name: string, fn: (v: T) => void): unknown }, name: string) =>
  new Promise<T>((resolve) => e.once(name, resolve));
const closedOf = (c: mqtt.MqttClient) => new Promise<void>((resolve) => c.once('close', () => resolve()));

const connect = (opts: mqtt.IClientOptions, to = url) =>
  mqtt.connectAsync(to, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...opts });

beforeAll(async () => {
  writeFileSync(join(dir, 'creds.txt'), `${A}:${await hashCredential('secret-a')}\n${B}:secret-b\n`);
  broker = await start(
    {
      credentials: loadCredentials(join(dir, 'creds.txt')),
      tls: { port: 0, cert: certs.serverCert, key: certs.serverKey, ca: certs.ca },
    },
    handlers,
    denied,
  );
  url = `mqtt://127.0.0.1:${broker.port}`;
});

afterAll(async () => {
  await broker?.close();
});

describe('client id = the authenticated VIN', () => {
  it("refuses A's credentials with B's VIN as client id; B stays connected and keeps receiving", async () => {
    const b = await connect({ clientId: B, username: B, password: 'secret-b', clean: false });
    let bClosed = false;
    b.on('close', () => (bClosed = true));
    await b.subscribeAsync(`v1/vehicles/${B}/prompts`, { qos: 1 });
    const before = denied.length;

    await expect(connect({ clientId: B, username: A, password: 'secret-a' })).rejects.toThrow(/Identifier rejected/i);
    await expect(connect({ clientId: `${B}:hmi`, username: A, password: 'secret-a' })).rejects.toThrow(/Identifier rejected/i);
    await expect(connect({ clientId: 'hmi', username: A, password: 'secret-a' })).rejects.toThrow(/Identifier rejected/i);
    expect(denied.slice(before)).toHaveLength(3);
    expect(denied.slice(before)[0]).toMatch(new RegExp(`connect as "${A}" \\(client id "${B}"\\).*identifier rejected`));

    const got = new Promise<string>((resolve) => b.once('message', (topic) => resolve(topic)));
    await broker.publish(`v1/vehicles/${B}/prompts`, Buffer.from([1]), { qos: 1 });
    expect(await got).toBe(`v1/vehicles/${B}/prompts`);
    expect(bClosed).toBe(false);
    expect(b.connected).toBe(true);
    await b.endAsync();
  });

  it('accepts the VIN and VIN:suffix side by side (agent and HMI of one car)', async () => {
    const agent = await connect({ clientId: A, username: A, password: 'secret-a' });
    const hmi = await connect({ clientId: `${A}:hmi`, username: A, password: 'secret-a' });
    await hmi.subscribeAsync(`v1/vehicles/${A}/prompts`, { qos: 1 });
    await agent.publishAsync(`v1/vehicles/${A}/telemetry`, Buffer.from([1]), { qos: 1 });
    expect(agent.connected && hmi.connected).toBe(true);
    await agent.endAsync();
    await hmi.endAsync();
  });
});

describe('mutual TLS: the certificate names the VIN', () => {
  const tlsConnect = (username: string, password: string, c: { cert: Buffer; key: Buffer }) =>
    connect(
      { clientId: username, username, password, ca: readFileSync(certs.ca), cert: c.cert, key: c.key, servername: 'localhost' },
      `mqtts://127.0.0.1:${broker.tlsPort}`,
    );

  it('accepts CN = VIN, or a DNS or URI SAN = VIN', async () => {
    for (const c of [issue('a-cn', A), issue('a-uri', 'car', `URI:${A}`)]) await (await tlsConnect(A, 'secret-a', c)).endAsync();
    await (await tlsConnect(B, 'secret-b', issue('b-dns', 'car', `DNS:${B}`))).endAsync();
  });

  it("refuses another vehicle's certificate, or one naming no VIN, even with the right password", async () => {
    const before = denied.length;
    await expect(tlsConnect(A, 'secret-a', { cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) })).rejects.toThrow(
      /Not authorized/i,
    );
    await expect(tlsConnect(B, 'secret-b', issue('a-cn2', A))).rejects.toThrow(/Not authorized/i);
    await expect(tlsConnect(B, 'secret-b', issue('b-email', 'car', `email:${B}`))).rejects.toThrow(/Not authorized/i);
    expect(denied.slice(before).every((d) => /certificate does not name this VIN/.test(d))).toBe(true);
    expect(denied.length - before).toBe(3);
  });
});

describe('retained publishes only on status', () => {
  it('refuses retained telemetry and prompts/ack (closed, counted, not handled); status may be retained', async () => {
    const c = await connect({ clientId: A, username: A, password: 'secret-a' });
    await c.publishAsync(`v1/vehicles/${A}/status`, Buffer.from([1]), { qos: 1, retain: true });
    await waitFor(() => seen.status.includes(A), { what: 'retained status handled' });

    for (const channel of ['telemetry', 'prompts/ack']) {
      const v = await connect({ clientId: `${A}:t`, username: A, password: 'secret-a' });
      const before = { denied: denied.length, telemetry: seen.telemetry.length, ack: seen.ack.length };
      const closed = closedOf(v);
      v.publish(`v1/vehicles/${A}/${channel}`, Buffer.from([1]), { qos: 1, retain: true });
      await closed;
      v.end(true);
      expect(denied.slice(before.denied)).toEqual([`retained publish v1/vehicles/${A}/${channel}`]);
      expect(seen.telemetry.length).toBe(before.telemetry);
      expect(seen.ack.length).toBe(before.ack);
    }
    expect(c.connected).toBe(true);
    await c.endAsync();
  });
});

/** A raw MQTT 3.1.1 CONNECT (clean session, username and password). */
function connectPacket(clientId: string, username: string, password: string): Buffer {
  const str = (s: string) => {
    const b = Buffer.from(s);
    return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
  };
  const body = Buffer.concat([str('MQTT'), Buffer.from([4, 0xc2, 0, 60]), str(clientId), str(username), str(password)]);
  return Buffer.concat([Buffer.from([0x10, body.length]), body]);
}

/** A PUBLISH QoS 0 fixed header announcing `remaining` bytes, then the start of its variable header. */
function bigPublishHeader(remaining: number, topic: string): Buffer {
  const len: number[] = [];
  for (let x = remaining; ;) {
    const b = x % 128;
    x = Math.floor(x / 128);
    len.push(x > 0 ? b | 0x80 : b);
    if (x === 0) break;
  }
  const t = Buffer.from(topic);
  return Buffer.concat([Buffer.from([0x30, ...len, t.length >> 8, t.length & 0xff]), t]);
}

/** Stream `total` bytes in 64 KiB chunks, respecting backpressure, until done or the socket closes. */
async function stream(sock: net.Socket, total: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let sent = 0;
  while (sent < total && !sock.destroyed) {
    const ok = sock.write(chunk);
    sent += chunk.length;
    if (!ok) await Promise.race([event(sock, 'drain'), event(sock, 'close')]);
  }
  return sent;
}

describe('maximum packet size', () => {
  it('closes a connection announcing a 64 MiB PUBLISH without buffering it; others keep working', async () => {
    const other = await connect({ clientId: `${B}:other`, username: B, password: 'secret-b' });
    const before = denied.length;
    const sock = net.connect(broker.port, '127.0.0.1');
    sock.on('error', () => {}); // ECONNRESET / EPIPE once the broker has closed
    const closed = event(sock, 'close');
    await event(sock, 'connect');
    sock.write(connectPacket(B, B, 'secret-b'));
    const connack = await event<Buffer>(sock, 'data');
    expect([...connack]).toEqual([0x20, 2, 0, 0]); // CONNACK accepted

    // peak RSS while the body streams in: aedes alone would hold all of it (its parser buffers a
    // packet until complete), so without the limit this grows by the ~20 MB sent
    const rss0 = process.memoryUsage().rss;
    let peak = rss0;
    const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 2);
    sock.write(bigPublishHeader(64 * 1024 * 1024, `v1/vehicles/${B}/telemetry`));
    const sent = await stream(sock, 20 * 1024 * 1024);
    await closed;
    clearInterval(sample);
    const grown = Math.max(peak, process.memoryUsage().rss) - rss0;
    expect(grown, `RSS grew ${grown} bytes`).toBeLessThan(6 * 1024 * 1024);
    expect(sent).toBeLessThan(20 * 1024 * 1024); // refused long before the 20 MB had been read
    expect(denied.slice(before)).toEqual([`packet of ${1 + 4 + 64 * 1024 * 1024} bytes > limit ${DEFAULT_MAX_PACKET_BYTES}`]);

    await other.publishAsync(`v1/vehicles/${B}/telemetry`, Buffer.from([1]), { qos: 1 });
    expect(other.connected).toBe(true);
    await other.endAsync();
  });

  it('also before CONNECT, and accepts a full-size telemetry batch (256 KiB payload)', async () => {
    const sock = net.connect(broker.port, '127.0.0.1');
    sock.on('error', () => {});
    const closed = event(sock, 'close');
    await event(sock, 'connect');
    sock.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f])); // a CONNECT of 256 MiB
    await stream(sock, 4 * 1024 * 1024);
    await closed;

    const c = await connect({ clientId: A, username: A, password: 'secret-a' });
    const n = seen.telemetry.length;
    await c.publishAsync(`v1/vehicles/${A}/telemetry`, Buffer.alloc(256 * 1024), { qos: 1 });
    expect(seen.telemetry.length).toBe(n + 1);
    const gone = closedOf(c);
    c.publish(`v1/vehicles/${A}/telemetry`, Buffer.alloc(DEFAULT_MAX_PACKET_BYTES), { qos: 1 });
    await gone;
    c.end(true);
  });
});

describe('connection rate limit per source address', () => {
  it('closes connections over the burst before CONNECT processing, counted', async () => {
    const log: string[] = [];
    // loopback is exempt by default; this broker limits it so that the test can be over the limit
    const limited = await start({ connectRate: { perSecond: 2, burst: 3, limitLoopback: true } }, recorder().handlers, log);
    try {
      const to = `mqtt://127.0.0.1:${limited.port}`;
      const ok = await Promise.all([1, 2, 3].map((i) => connect({ clientId: `${A}:c${i}`, username: A }, to)));
      const sock = net.connect(limited.port, '127.0.0.1');
      sock.on('error', () => {});
      const data: Buffer[] = [];
      sock.on('data', (d: Buffer) => data.push(d));
      sock.once('connect', () => sock.write(connectPacket(A, A, '')));
      await event(sock, 'close');
      expect(data).toEqual([]); // no CONNACK: closed before aedes saw the connection
      expect(log).toEqual(['connection from 127.0.0.1: over 2/s (burst 3)']);
      expect(ok.every((c) => c.connected)).toBe(true);
      await Promise.all(ok.map((c) => c.endAsync())); // the refill is the limiter's unit test (injected clock)
    } finally {
      await limited.close();
    }
  });

  it('exempts loopback by default (the simulator and the benchmark connect thousands from 127.0.0.1)', async () => {
    const log: string[] = [];
    const open = await start({ connectRate: { perSecond: 1, burst: 1 } }, recorder().handlers, log);
    try {
      const cs = await Promise.all(
        [1, 2, 3, 4, 5].map((i) => connect({ clientId: `${A}:e${i}`, username: A }, `mqtt://127.0.0.1:${open.port}`)),
      );
      expect(log).toEqual([]);
      await Promise.all(cs.map((c) => c.endAsync()));
    } finally {
      await open.close();
    }
  });
});

describe('the shipped Mosquitto config (deploy/mosquitto)', () => {
  it('loads, forces client id = username and enforces max_packet_size', async () => {
    const port = await freePort();
    const conf = readFileSync(join(PACKAGE_ROOT, 'deploy', 'mosquitto', 'mosquitto.conf'), 'utf8')
      .replace(/^listener 1883$/m, `listener ${port} 127.0.0.1`)
      .replace(/^password_file .*$/m, `password_file ${join(dir, 'mq-passwd')}`)
      .replace(/^acl_file .*$/m, `acl_file ${join(PACKAGE_ROOT, 'deploy', 'mosquitto', 'acl')}`)
      .replace(/^persistence_location .*$/m, `persistence_location ${dir}/`);
    expect(conf).toContain(`listener ${port} 127.0.0.1`);
    writeFileSync(join(dir, 'mq.conf'), `user root\nlog_dest stderr\n${conf}`);
    writeFileSync(join(dir, 'mq-passwd'), '');
    execFileSync('mosquitto_passwd', ['-b', join(dir, 'mq-passwd'), A, 'secret-a'], { stdio: 'pipe' });
    execFileSync('mosquitto_passwd', ['-b', join(dir, 'mq-passwd'), 'odopulse-ingest', 'ingest-secret'], { stdio: 'pipe' });
    const proc = spawn('/usr/sbin/mosquitto', ['-c', join(dir, 'mq.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    proc.stderr.on('data', (d) => (log += d));
    try {
      const to = `mqtt://127.0.0.1:${port}`;
      const ingest = await waitFor(() => connect({ clientId: 'ingest-x', username: 'odopulse-ingest', password: 'ingest-secret' }, to), {
        what: `mosquitto on ${port}`,
        intervalMs: 100,
      });
      await ingest.subscribeAsync(`v1/vehicles/+/telemetry`, { qos: 1 });
      const got: string[] = [];
      ingest.on('message', (t) => got.push(t));
      const car = await connect({ clientId: B, username: A, password: 'secret-a' }, to); // id replaced by the username
      await car.publishAsync(`v1/vehicles/${A}/telemetry`, Buffer.alloc(256 * 1024), { qos: 1 });
      await waitFor(() => got.length === 1, { what: 'the full-size batch through mosquitto' });
      const gone = closedOf(car);
      car.publish(`v1/vehicles/${A}/telemetry`, Buffer.alloc(300 * 1024), { qos: 1 });
      await gone;
      car.end(true);
      expect(log).toMatch(new RegExp(`Client ${A} .*disconnected|${A}`));
      await ingest.endAsync();
    } finally {
      proc.kill('SIGTERM');
      await event(proc, 'exit');
    }
  });
});

describe('ingest wires the settings into its embedded broker', () => {
  it('ODOPULSE_MQTT_MAX_PACKET_BYTES, and the warning about unsalted sha256 credentials', async () => {
    const influx = await startInfluxd({ database: 'hardening' });
    const sha = createHash('sha256').update('secret-b').digest('hex');
    writeFileSync(join(dir, 'creds-ingest.txt'), `${A}:${await hashCredential('secret-a')}\n${B}:sha256:${sha}\n`);
    const ingest = await startIngestProcess({
      INFLUX_URL: influx.url,
      INFLUX_BUCKET: 'hardening',
      ODOPULSE_MQTT_CREDENTIALS: join(dir, 'creds-ingest.txt'),
      ODOPULSE_MQTT_MAX_PACKET_BYTES: '4096',
    });
    try {
      expect(ingest.output()).toMatch(/1 credential\(s\) in the unsalted sha256 form \(line 2\)/);
      const c = await connect({ clientId: A, username: A, password: 'secret-a' }, ingest.mqttUrl);
      await c.publishAsync(`v1/vehicles/${A}/prompts/ack`, Buffer.alloc(3000), { qos: 1 }); // under the limit (an invalid ack, dead-lettered)
      const gone = closedOf(c);
      c.publish(`v1/vehicles/${A}/prompts/ack`, Buffer.alloc(5000), { qos: 1 });
      await gone;
      c.end(true);
      await waitFor(
        async () => /odopulse_mqtt_denied_total [1-9]/.test(await (await fetch(`${ingest.api}/metrics`, { headers: ingest.auth })).text()),
        {
          what: 'the refusal counted',
        },
      );
      await expect(connect({ clientId: `${A}:x`, username: B, password: 'secret-b' }, ingest.mqttUrl)).rejects.toThrow(
        /Identifier rejected/i,
      );
    } finally {
      await ingest.stop();
      await influx.stop();
    }
  });
});
