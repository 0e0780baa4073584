import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { Aedes } from 'aedes';
import { describe, expect, it } from 'vitest';
import { brokerEndpoint, connectMqtt } from '../../../agent/mqtt-connect.js';

const require = createRequire(import.meta.url);

describe('brokerEndpoint (what mqtt.connect makes of a broker URL)', () => {
  it.each([
    ['mqtt://127.0.0.1:1883', { secure: false, host: '127.0.0.1', port: 1883 }],
    ['tcp://broker.example', { secure: false, host: 'broker.example', port: 1883 }],
    ['mqtts://broker.example', { secure: true, host: 'broker.example', port: 8883 }],
    ['tls://broker.example:9000', { secure: true, host: 'broker.example', port: 9000 }],
    ['ssl://[::1]:8884', { secure: true, host: '::1', port: 8884 }],
    ['mqtt://u%40x:p%3Aw@h:1', { secure: false, host: 'h', port: 1, username: 'u@x', password: 'p:w' }],
  ])('%s', (url, want) => expect(brokerEndpoint(url)).toEqual(want));

  it('refuses other transports', () => {
    expect(() => brokerEndpoint('ws://h:80')).toThrow(/unsupported broker protocol ws/);
  });
});

describe('connectMqtt', () => {
  it('connects with only MqttClient loaded, keeps the connection alive with native timers, publishes QoS 1', async () => {
    const broker = await Aedes.createBroker();
    const server = createServer(broker.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    const client = connectMqtt(`mqtt://127.0.0.1:${port}`, {
      clientId: 'LSVAU2180N2BENCH1',
      clean: false,
      keepalive: 1,
      writeCache: false,
    });
    try {
      let pings = 0;
      client.on('packetsend', (p) => void (p.cmd === 'pingreq' && pings++));
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
      });
      await new Promise<void>((resolve, reject) => client.publish('t', 'x', { qos: 1 }, (err) => (err ? reject(err) : resolve())));
      await new Promise((r) => setTimeout(r, 2300));
      expect(pings).toBeGreaterThanOrEqual(1);
      expect(client.connected).toBe(true);
      const loaded = Object.keys(require.cache);
      // neither the WebSocket / SOCKS transports nor the browser timers (worker-timers' dependencies)
      for (const pkg of [
        '/node_modules/ws/',
        '/node_modules/socks/',
        '/node_modules/ip-address/',
        '/node_modules/broker-factory/',
        '/node_modules/@babel/runtime/',
      ])
        expect(loaded.filter((f) => f.includes(pkg))).toEqual([]);
    } finally {
      await client.endAsync(true);
      server.close();
      await new Promise<void>((r) => broker.close(() => r()));
    }
  });
});
