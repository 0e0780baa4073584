// Ingest as a client of an external broker (Mosquitto, EMQX). A persistent session (clean: false)
// keeps what arrives while ingest is down; MQTT.js PUBACKs a QoS 1 message only when
// handleMessage calls back, which we do after the batch is journalled.
import mqtt, { type IClientOptions, type IPublishPacket } from 'mqtt';
import { readFileSync } from 'node:fs';
import { parseTopic, type BrokerLink, type InboundHandlers } from './topics.js';

export interface ExternalBrokerOptions {
  url: string;
  prefix: string;
  clientId?: string;
  username?: string;
  passwordFile?: string;
  ca?: string;
  onError?(err: Error): void;
}

export async function connectExternalBroker(opts: ExternalBrokerOptions, handlers: InboundHandlers): Promise<BrokerLink> {
  const options: IClientOptions = {
    clientId: opts.clientId ?? 'odopulse-ingest',
    clean: false,
    protocolVersion: 4,
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    ...(opts.username ? { username: opts.username } : {}),
    ...(opts.passwordFile ? { password: readFileSync(opts.passwordFile, 'utf8').trim() } : {}),
    ...(opts.ca ? { ca: readFileSync(opts.ca) } : {}),
  };
  const client = mqtt.connect(opts.url, { ...options, manualConnect: true });
  client.handleMessage = (packet: IPublishPacket, callback) => {
    const t = parseTopic(opts.prefix, packet.topic);
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    if (!t) return callback();
    if (t.channel === 'telemetry') {
      handlers.telemetry(t.vin, payload, null).then(
        () => callback(),
        (err: Error) => callback(err),
      );
      return;
    }
    if (t.channel === 'status') handlers.status(t.vin, payload, null);
    else if (t.channel === 'prompts/ack') handlers.ack(t.vin, payload, null);
    callback();
  };
  client.on('error', (err) => opts.onError?.(err));
  // a resumed session keeps its subscriptions; subscribing again on every connect also covers a new one
  client.on('connect', () => {
    client.subscribe(
      ['telemetry', 'status', 'prompts/ack'].map((c) => `${opts.prefix}/vehicles/+/${c}`),
      { qos: 1 },
      (err) => err && opts.onError?.(err),
    );
  });
  const connected = new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  client.connect();
  await connected;

  return {
    kind: 'external',
    confirmsDelivery: false,
    publish: (topic, payload, o) =>
      new Promise((resolve, reject) =>
        client.publish(topic, Buffer.from(payload), { qos: o.qos, retain: o.retain ?? false }, (err) => (err ? reject(err) : resolve())),
      ),
    ready: () => client.connected,
    connectedClients: () => (client.connected ? 1 : 0),
    close: () => new Promise<void>((resolve) => client.end(false, {}, () => resolve())),
  };
}
