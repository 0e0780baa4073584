// The embedded aedes broker. aedes sends the QoS 1 PUBACK only after authorizePublish calls back
// (docs/architecture.md#data-flow), so telemetry is decoded, validated and journalled there.
import { Aedes, type AedesPublishPacket, type Client } from 'aedes';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { VinSchema } from '../../proto/domain.js';
import type { CredentialCheck } from './credentials.js';
import { parseTopic, VEHICLE_PUBLISHES, VEHICLE_SUBSCRIBES, type BrokerLink, type InboundHandlers } from './topics.js';

export interface EmbeddedBrokerOptions {
  prefix: string;
  host: string;
  port: number;
  tls?: { port: number; cert: string; key: string; ca?: string };
  /** undefined = demo mode: any valid VIN may connect, still confined to its own topics. */
  credentials?: CredentialCheck;
  onDenied?(what: string, client: string | null): void;
}

export async function startEmbeddedBroker(
  opts: EmbeddedBrokerOptions,
  handlers: InboundHandlers,
): Promise<BrokerLink & { port: number; tlsPort?: number }> {
  const usernames = new WeakMap<Client, string>();
  const deny = (what: string, client: Client | null) => opts.onDenied?.(what, client?.id ?? null);

  const broker = await Aedes.createBroker({
    authenticate(client, username, password, done) {
      const vin = username ?? '';
      const ok =
        VinSchema.safeParse(vin).success && (!opts.credentials || opts.credentials(vin, password ? Buffer.from(password) : undefined));
      if (!ok) {
        deny(`connect as ${JSON.stringify(vin)}`, client);
        const err = Object.assign(new Error('bad username or password'), { returnCode: 4 as const });
        return done(err as any, false);
      }
      usernames.set(client, vin);
      done(null, true);
    },
    authorizePublish(client, packet, callback) {
      if (!client) return callback(null); // the broker's own messages (wills, heartbeats)
      const vin = usernames.get(client);
      const t = parseTopic(opts.prefix, packet.topic);
      if (!t || t.vin !== vin || !VEHICLE_PUBLISHES.includes(t.channel)) {
        deny(`publish ${packet.topic}`, client);
        return callback(new Error(`not authorised to publish on ${packet.topic}`));
      }
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      if (t.channel === 'telemetry') {
        handlers.telemetry(t.vin, payload, client.id).then(
          () => callback(null),
          (err: Error) => callback(err),
        );
        return;
      }
      if (t.channel === 'prompts/ack') handlers.ack(t.vin, payload, client.id);
      // status is handled on 'publish' so that wills (published by the broker itself) are seen too
      callback(null);
    },
    authorizeSubscribe(client, sub, callback) {
      const vin = usernames.get(client);
      const t = parseTopic(opts.prefix, sub.topic);
      if (!t || t.vin !== vin || !VEHICLE_SUBSCRIBES.includes(t.channel)) {
        deny(`subscribe ${sub.topic}`, client);
        return callback(null, null); // negated: SUBACK 0x80
      }
      callback(null, sub);
    },
  });

  broker.on('publish', (packet: AedesPublishPacket, client: Client | null) => {
    const t = parseTopic(opts.prefix, packet.topic);
    if (t?.channel !== 'status') return;
    // a will carries the publishing client; a retained replay of our own publish would not reach here
    if (client && usernames.get(client) !== t.vin) return;
    handlers.status(t.vin, Buffer.from(packet.payload as Buffer), client?.id ?? null);
  });

  const server = net.createServer(broker.handle as any);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  let tlsServer: tls.Server | undefined;
  if (opts.tls) {
    tlsServer = tls.createServer(
      {
        cert: readFileSync(opts.tls.cert),
        key: readFileSync(opts.tls.key),
        ...(opts.tls.ca ? { ca: readFileSync(opts.tls.ca), requestCert: true, rejectUnauthorized: true } : {}),
      },
      broker.handle as any,
    );
    await new Promise<void>((resolve, reject) => {
      tlsServer!.once('error', reject);
      tlsServer!.listen(opts.tls!.port, opts.host, () => resolve());
    });
  }
  const port = (server.address() as net.AddressInfo).port;
  const tlsPort = tlsServer ? (tlsServer.address() as net.AddressInfo).port : undefined;

  return {
    kind: 'embedded',
    port,
    tlsPort,
    publish(topic, payload, o) {
      return new Promise((resolve, reject) =>
        broker.publish(
          { cmd: 'publish', topic, payload: Buffer.from(payload), qos: o.qos, retain: o.retain ?? false, dup: false } as any,
          (err) => (err ? reject(err) : resolve()),
        ),
      );
    },
    ready: () => server.listening && !broker.closed,
    connectedClients: () => broker.connectedClients,
    async close() {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
      if (tlsServer) await new Promise<void>((r) => tlsServer!.close(() => r()));
    },
  };
}
