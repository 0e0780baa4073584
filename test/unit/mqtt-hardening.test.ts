// The embedded broker's guards as pure logic: the connection rate limiter (token bucket, injected
// clock), the packet size guard over a byte stream, the client id rule and certificate names.
import { describe, expect, it } from 'vitest';
import { loadIngestConfig } from '../../ingest/config.js';
import { DEFAULT_CONNECT_RATE, DEFAULT_MAX_PACKET_BYTES } from '../../ingest/inbound/embedded.js';
import {
  certificateNames,
  clientIdAllowed,
  ConnectRateLimiter,
  isLoopback,
  PacketSizeGuard,
  rateKey,
} from '../../ingest/inbound/guards.js';

const A = 'LSVAU2180N2183301';
const B = 'LSVAU2180N2183302';

describe('connection rate limiter', () => {
  it('lets a burst through, then the refill rate', () => {
    let now = 0;
    const l = new ConnectRateLimiter({ perSecond: 2, burst: 3, now: () => now });
    expect([l.take('a'), l.take('a'), l.take('a'), l.take('a')]).toEqual([true, true, true, false]);
    now += 499;
    expect(l.take('a')).toBe(false); // 0.998 tokens
    now += 1;
    expect(l.take('a')).toBe(true); // one token every 500 ms
    expect(l.take('a')).toBe(false);
    now += 10_000;
    expect([l.take('a'), l.take('a'), l.take('a'), l.take('a')]).toEqual([true, true, true, false]); // refills to the burst, no more
  });

  it('keeps one bucket per key', () => {
    let now = 0;
    const l = new ConnectRateLimiter({ perSecond: 1, burst: 1, now: () => now });
    expect(l.take('a')).toBe(true);
    expect(l.take('a')).toBe(false);
    expect(l.take('b')).toBe(true);
    now += 1000;
    expect(l.take('a')).toBe(true);
  });

  it('a clock going back neither refills nor breaks the bucket', () => {
    let now = 10_000;
    const l = new ConnectRateLimiter({ perSecond: 1, burst: 1, now: () => now });
    expect(l.take('a')).toBe(true);
    now = 0;
    expect(l.take('a')).toBe(false);
    now = 1000;
    expect(l.take('a')).toBe(true);
  });

  it('bounds its table: full buckets are forgotten first, then the oldest', () => {
    let now = 0;
    const l = new ConnectRateLimiter({ perSecond: 1, burst: 2, now: () => now, maxKeys: 100 });
    for (let i = 0; i < 100; i++) l.take(`k${i}`);
    expect(l.size).toBe(100);
    now += 5000; // all full again
    l.take('new');
    expect(l.size).toBe(1);
    for (let i = 0; i < 99; i++) l.take(`busy${i}`);
    l.take('one-more'); // nothing full: the oldest go
    expect(l.size).toBeLessThanOrEqual(91);
    expect(l.take('one-more')).toBe(true); // its own bucket survived (burst 2)
  });

  it('keys addresses: IPv4, IPv4-mapped IPv6, IPv6 per /64; knows loopback', () => {
    expect(rateKey('203.0.113.7')).toBe('203.0.113.7');
    expect(rateKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(rateKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(rateKey('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(rateKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(rateKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) expect(isLoopback(a), a).toBe(true);
    for (const a of ['10.0.0.1', '::ffff:10.0.0.1', '2001:db8::1', '']) expect(isLoopback(a), a).toBe(false);
  });
});

/** A PUBLISH fixed header announcing `remaining` bytes after it. */
function header(remaining: number, type = 0x30): Buffer {
  const len: number[] = [];
  let x = remaining;
  do {
    let b = x % 128;
    x = Math.floor(x / 128);
    if (x > 0) b |= 0x80;
    len.push(b);
  } while (x > 0);
  return Buffer.from([type, ...len]);
}

describe('packet size guard', () => {
  it('passes packets up to the limit, across any chunking', () => {
    const stream = Buffer.concat([header(10), Buffer.alloc(10), Buffer.from([0xc0, 0x00]), header(100 - 3), Buffer.alloc(97)]);
    for (const size of [1, 2, 3, 7, stream.length]) {
      const g = new PacketSizeGuard(100);
      for (let i = 0; i < stream.length; i += size) expect(g.feed(stream.subarray(i, i + size))).toBeNull();
    }
  });

  it('reports the first packet over the limit from its header, before its body', () => {
    const g = new PacketSizeGuard(262_144);
    expect(g.feed(Buffer.concat([header(5), Buffer.alloc(5)]))).toBeNull();
    const big = header(64 * 1024 * 1024);
    expect(g.feed(big.subarray(0, 2))).toBeNull(); // length not complete yet
    expect(g.feed(big.subarray(2))).toBe(1 + 4 + 64 * 1024 * 1024);
    expect(g.feed(Buffer.alloc(1000))).toBeNull(); // stopped: reported once
  });

  it('counts the whole packet: header and remaining length', () => {
    expect(new PacketSizeGuard(102).feed(header(100))).toBeNull();
    expect(new PacketSizeGuard(101).feed(header(100))).toBe(102);
  });

  it('leaves a malformed length to the MQTT parser', () => {
    expect(new PacketSizeGuard(100).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBeNull();
  });
});

describe('client id rule', () => {
  it('authenticated: the VIN or VIN:suffix only', () => {
    expect(clientIdAllowed(A, A, true)).toBe(true);
    expect(clientIdAllowed(`${A}:hmi`, A, true)).toBe(true);
    expect(clientIdAllowed(`${A}:${'x'.repeat(32)}`, A, true)).toBe(true);
    expect(clientIdAllowed(`${A}:Az09_-`, A, true)).toBe(true);
    for (const id of [
      B,
      `${B}:hmi`,
      `${A}:`,
      `${A}:${'x'.repeat(33)}`,
      `${A}:a b`,
      `${A}:a:b`,
      `${A}x`,
      'hmi',
      '',
      `hmi-${A}`,
      A.toLowerCase(),
    ])
      expect(clientIdAllowed(id, A, true), id).toBe(false);
  });

  it("demo mode: anything but another vehicle's id", () => {
    for (const id of [A, `${A}:hmi`, `hmi-${A}`, 'bench-x', 'aedes_1234']) expect(clientIdAllowed(id, A, false), id).toBe(true);
    for (const id of [B, `${B}:hmi`, `${A}:bad suffix`]) expect(clientIdAllowed(id, A, false), id).toBe(false);
  });
});

describe('certificate names', () => {
  it('CN (one or several), DNS and URI SANs; other SAN types and smuggled names do not count', () => {
    expect(certificateNames({ subject: { CN: A } as never })).toEqual([A]);
    expect(certificateNames({ subject: { CN: [A, B] } as never })).toEqual([A, B]);
    expect(certificateNames({ subject: { CN: 'x' } as never, subjectaltname: `DNS:${A}, URI:${B}, IP Address:127.0.0.1` })).toEqual([
      'x',
      A,
      B,
    ]);
    expect(certificateNames({ subjectaltname: `email:${A}` })).toEqual([]);
    // node quotes a value containing the separator: it stays one name
    expect(certificateNames({ subjectaltname: `URI:"http://x/, DNS:${A}"` })).toEqual([`http://x/, DNS:${A}`]);
    expect(certificateNames({ subjectaltname: 'DNS:"unterminated' })).toEqual([]);
    expect(certificateNames(undefined)).toEqual([]);
    expect(certificateNames({})).toEqual([]);
  });
});

describe('broker hardening settings', () => {
  it('defaults: a full-size telemetry batch fits, 20 connections/s burst 40 per address', () => {
    const c = loadIngestConfig({});
    expect(c.ODOPULSE_MQTT_MAX_PACKET_BYTES).toBe(DEFAULT_MAX_PACKET_BYTES);
    expect(DEFAULT_MAX_PACKET_BYTES).toBe(256 * 1024 + 1024);
    expect({ perSecond: c.ODOPULSE_MQTT_CONNECT_RATE, burst: c.ODOPULSE_MQTT_CONNECT_BURST }).toEqual(DEFAULT_CONNECT_RATE);
    expect(DEFAULT_CONNECT_RATE).toEqual({ perSecond: 20, burst: 40 });
  });

  it('reads and checks them', () => {
    const c = loadIngestConfig({
      ODOPULSE_MQTT_MAX_PACKET_BYTES: '65536',
      ODOPULSE_MQTT_CONNECT_RATE: '0',
      ODOPULSE_MQTT_CONNECT_BURST: '5',
    });
    expect([c.ODOPULSE_MQTT_MAX_PACKET_BYTES, c.ODOPULSE_MQTT_CONNECT_RATE, c.ODOPULSE_MQTT_CONNECT_BURST]).toEqual([65536, 0, 5]);
    expect(loadIngestConfig({ ODOPULSE_MQTT_CONNECT_RATE: '0.5' }).ODOPULSE_MQTT_CONNECT_RATE).toBe(0.5);
    expect(() => loadIngestConfig({ ODOPULSE_MQTT_MAX_PACKET_BYTES: '10' })).toThrow(
      /ODOPULSE_MQTT_MAX_PACKET_BYTES \(--mqtt-max-packet-bytes\)/,
    );
    expect(() => loadIngestConfig({ ODOPULSE_MQTT_CONNECT_RATE: '-1' })).toThrow(/ODOPULSE_MQTT_CONNECT_RATE/);
    expect(() => loadIngestConfig({ ODOPULSE_MQTT_CONNECT_BURST: '0' })).toThrow(/ODOPULSE_MQTT_CONNECT_BURST/);
  });
});
