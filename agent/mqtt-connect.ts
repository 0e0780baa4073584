// MQTT over TCP or TLS with only the part of mqtt.js that needs: its MqttClient (`mqtt/lib/client`)
// and a stream builder of our own. `mqtt.connect` (the package's entry) also loads, at the first
// connect, the WebSocket transport (`ws`) and SOCKS proxy support (`socks`, `ip-address`): about 40
// modules the agent never uses. A SOCKS proxy (MQTTJS_SOCKS_PROXY) is still honoured: then the full
// mqtt.js is loaded and does the connecting.
import { Module, createRequire } from 'node:module';
import { dirname } from 'node:path';
import { isIP, createConnection } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { IClientOptions, MqttClient } from 'mqtt';

const require = createRequire(import.meta.url);

type MqttClientClass = new (streamBuilder: (client: MqttClient) => NodeJS.ReadWriteStream, opts: IClientOptions) => MqttClient;

const SECURE = new Set(['mqtts', 'tls', 'ssl']);
const PLAIN = new Set(['mqtt', 'tcp']);

/**
 * mqtt.js's keep-alive timer (build/lib/get-timer.js) requires worker-timers at load: Web Worker
 * timers for browsers, ~28 modules with @babel/runtime, which it never uses on Node (timerVariant
 * 'auto' takes the native timers there). Put the native timers in its place in the module cache,
 * so that none of it is loaded; should anything call them, they are the timers it would get anyway.
 */
function nativeWorkerTimers(): void {
  let id: string;
  try {
    id = require.resolve('worker-timers', { paths: [dirname(require.resolve('mqtt/lib/client'))] });
  } catch {
    return; // mqtt.js no longer depends on it
  }
  if (require.cache[id]) return;
  const m = new Module(id);
  m.filename = id;
  m.loaded = true;
  m.exports = {
    setInterval: (fn: () => void, ms: number) => setInterval(fn, ms),
    clearInterval: (t: NodeJS.Timeout) => clearInterval(t),
    setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
    clearTimeout: (t: NodeJS.Timeout) => clearTimeout(t),
  };
  require.cache[id] = m;
}

/** What `mqtt.connect(url, opts)` makes of a broker URL, for the protocols the agent accepts. */
export function brokerEndpoint(brokerUrl: string): { secure: boolean; host: string; port: number; username?: string; password?: string } {
  const u = new URL(brokerUrl);
  const protocol = u.protocol.replace(/:$/, '');
  if (!SECURE.has(protocol) && !PLAIN.has(protocol))
    throw new Error(`unsupported broker protocol ${protocol}: (mqtt|tcp|mqtts|tls|ssl)://`);
  const secure = SECURE.has(protocol);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost';
  const port = u.port ? Number(u.port) : secure ? 8883 : 1883;
  return {
    secure,
    host,
    port,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
  };
}

/** Like `mqtt.connect(brokerUrl, opts)` for mqtt:// and mqtts:// brokers (same options, same client). */
export function connectMqtt(brokerUrl: string, opts: IClientOptions): MqttClient {
  if (process.env.MQTTJS_SOCKS_PROXY) return (require('mqtt') as typeof import('mqtt')).connect(brokerUrl, opts);
  const ep = brokerEndpoint(brokerUrl);
  // As mqtt.js: credentials in the URL win; a client certificate and key make the connection TLS.
  const secure = ep.secure || !!(opts.cert && opts.key);
  const o: IClientOptions = { ...opts, host: ep.host, hostname: ep.host, port: ep.port, protocol: secure ? 'mqtts' : 'mqtt' };
  if (ep.username !== undefined) o.username = ep.username;
  if (ep.password !== undefined) o.password = ep.password;
  if (o.clean === false && !o.clientId) throw new Error('Missing clientId for unclean clients');
  nativeWorkerTimers();
  const { default: Client } = require('mqtt/lib/client') as { default: MqttClientClass };
  const client = new Client((c) => (secure ? tlsStream(c, o) : createConnection({ host: ep.host, port: ep.port })), o);
  client.on('error', () => {}); // as mqtt.connect: errors are reported to the caller's own listener
  return client;
}

// mqtt.js's build/lib/connect/tls.js without the SOCKS branch.
function tlsStream(client: MqttClient, opts: IClientOptions): NodeJS.ReadWriteStream {
  const tlsOpts = { ...opts } as ConnectionOptions & { host: string; path?: string };
  if (isIP(tlsOpts.host) === 0 && !tlsOpts.servername) tlsOpts.servername = tlsOpts.host;
  tlsOpts.rejectUnauthorized = opts.rejectUnauthorized !== false;
  delete tlsOpts.path;
  // node:tls only for a TLS broker: it loads OpenSSL's side of Node (the crypto binding and ~25
  // modules, ~6 MB of RSS on Node 24) that a plain mqtt:// agent never needs.
  const { connect: tlsConnect } = require('node:tls') as typeof import('node:tls');
  const connection = tlsConnect(tlsOpts);
  const onError = (err: Error) => {
    if (tlsOpts.rejectUnauthorized) client.emit('error', err);
    connection.end();
  };
  connection.on('secureConnect', () => {
    if (tlsOpts.rejectUnauthorized && !connection.authorized) connection.emit('error', new Error('TLS not authorized'));
    else connection.removeListener('error', onError);
  });
  connection.on('error', onError);
  return connection;
}
