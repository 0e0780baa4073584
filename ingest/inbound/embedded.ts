// The embedded aedes broker. aedes sends the QoS 1 PUBACK only after authorizePublish calls back
// (architecture.md), so telemetry is decoded, validated and journalled there.
//
// Hardening, before aedes sees a connection or a packet:
// - a connection rate limit per source address (token bucket), checked on the raw TCP socket, so a
//   refused connection costs neither a TLS handshake nor CONNECT processing;
// - a maximum packet size, checked on the byte stream as aedes reads it (aedes has no such option);
// and at CONNECT (authenticate): client id = VIN or VIN:suffix, the client certificate names the VIN
// (mutual TLS), the password (scrypt verified off the event loop).
import { Aedes, type AedesPublishPacket, type Client } from 'aedes';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { decodeHmiPrompt } from '../../proto/codec.js';
import { VinSchema } from '../../proto/domain.js';
import type { CredentialCheck } from './credentials.js';
import { certificateNames, clientIdAllowed, ConnectRateLimiter, isLoopback, PacketSizeGuard, rateKey } from './guards.js';
import { parseTopic, VEHICLE_PUBLISHES, VEHICLE_SUBSCRIBES, type BrokerLink, type InboundHandlers } from './topics.js';

/**
 * 256 KiB, the largest telemetry payload (proto/codec.ts SIZE_LIMITS), plus 1 KiB for the fixed
 * header, topic and packet id: a packet limit of exactly 256 KiB would refuse a full-size batch the
 * agent may send (it splits only above 256 KiB of payload), and a refused batch comes back forever.
 */
export const DEFAULT_MAX_PACKET_BYTES = 256 * 1024 + 1024;
export const DEFAULT_CONNECT_RATE = { perSecond: 20, burst: 40 } as const;

export interface EmbeddedBrokerOptions {
  prefix: string;
  host: string;
  port: number;
  tls?: { port: number; cert: string; key: string; ca?: string };
  /** undefined = demo mode: any valid VIN may connect, still confined to its own topics. */
  credentials?: CredentialCheck;
  onDenied?(what: string, client: string | null): void;
  /** Largest MQTT packet accepted, whole packet (fixed header included), bytes. Default DEFAULT_MAX_PACKET_BYTES. */
  maxPacketBytes?: number;
  /**
   * New connections per second per source address (IPv6: per /64), with a burst; perSecond 0 = no
   * limit. Default DEFAULT_CONNECT_RATE. Loopback addresses are exempt unless limitLoopback: the
   * simulator, the benchmark and the tests open thousands of connections from 127.0.0.1, and a
   * local reverse proxy would make every vehicle one address (limit at the proxy then).
   */
  connectRate?: { perSecond: number; burst: number; limitLoopback?: boolean };
}

/** Prompts awaiting a client's PUBACK, per client, bounded (a QoS 0 subscriber never acks). */
const MAX_TRACKED_PER_CLIENT = 256;

/** aedes's per-client packet id counter (lib/client.js, lib/qos-packet.js): not part of its typed API. */
type IdCounter = { _nextId?: number };

export async function startEmbeddedBroker(
  opts: EmbeddedBrokerOptions,
  handlers: InboundHandlers,
): Promise<BrokerLink & { port: number; tlsPort?: number }> {
  const usernames = new WeakMap<Client, string>();
  /** Per client connection: packet id -> the prompt it carries, until the client PUBACKs it. */
  const awaiting = new WeakMap<Client, Map<number, { vin: string; promptId: string }>>();
  const deny = (what: string, client: Client | null) => opts.onDenied?.(what, client?.id ?? null);
  const maxPacket = opts.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES;
  const rate = opts.connectRate ?? DEFAULT_CONNECT_RATE;
  const limiter = rate.perSecond > 0 ? new ConnectRateLimiter(rate) : null;
  const limitLoopback = opts.connectRate?.limitLoopback ?? false;

  const broker = await Aedes.createBroker({
    // aedes calls this at CONNECT before registerClient (node_modules/aedes/lib/handlers/connect.js:23-33,
    // connectActions: authenticate first), and registerClient is where an existing session with the
    // same client id is closed (node_modules/aedes/aedes.js:249-258, [MQTT-3.1.4-2]): refusing here means a
    // refused client never kicks anyone off. client.id is already the CONNECT's id (connect.js:85).
    authenticate(client, username, password, done) {
      const vin = username ?? '';
      const refuse = (returnCode: 2 | 4 | 5, why: string) => {
        deny(`connect as ${JSON.stringify(vin)} (client id ${JSON.stringify(client.id)}): ${why}`, client);
        const err = Object.assign(new Error(why), { returnCode });
        done(err as any, false);
      };
      if (!VinSchema.safeParse(vin).success) return refuse(4, 'bad username or password');
      // The cheap checks first: a refused client id or certificate costs no scrypt.
      const mtls = !!opts.tls?.ca && client.conn instanceof tls.TLSSocket;
      // Demo mode authenticates nothing, so there the id rule only keeps clients out of other
      // vehicles' ids (see clientIdAllowed).
      const authenticated = !!opts.credentials || mtls;
      if (!clientIdAllowed(client.id, vin, authenticated)) return refuse(2, 'identifier rejected: client id must be the VIN or VIN:suffix');
      // Mutual TLS configured but no credentials file: the certificate is the only proof of identity,
      // so the plain port must not let anyone in unauthenticated.
      if (opts.tls?.ca && !opts.credentials && !mtls) return refuse(5, 'not authorized: a client certificate is required (mutual TLS)');
      if (mtls && !certificateNames((client.conn as tls.TLSSocket).getPeerCertificate()).includes(vin)) {
        return refuse(5, 'not authorized: the client certificate does not name this VIN (CN or SAN)');
      }
      const accept = () => {
        usernames.set(client, vin);
        done(null, true);
      };
      if (!opts.credentials) return accept();
      opts.credentials(vin, password ? Buffer.from(password) : undefined).then(
        (ok) => (ok ? accept() : refuse(4, 'bad username or password')),
        (err: Error) => refuse(4, `credential check failed: ${err.message}`),
      );
    },
    authorizePublish(client, packet, callback) {
      if (!client) return callback(null); // the broker's own messages (wills, heartbeats)
      const vin = usernames.get(client);
      const t = parseTopic(opts.prefix, packet.topic);
      if (!t || t.vin !== vin || !VEHICLE_PUBLISHES.includes(t.channel)) {
        deny(`publish ${packet.topic}`, client);
        return callback(new Error(`not authorised to publish on ${packet.topic}`));
      }
      // docs/contract.md#topics: of what a vehicle sends only status (birth, and the will) is retained.
      if (packet.retain && t.channel !== 'status') {
        deny(`retained publish ${packet.topic}`, client);
        return callback(new Error(`not authorised to publish retained on ${packet.topic}`));
      }
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      // Refusing a publish (docs/architecture.md#disk-full): aedes runs authorizePublish, then
      // enqueuePublish, which is where the QoS 1 PUBACK is written (node_modules/aedes/lib/handlers/publish.js:
      // runSeries, `case 1: write(client, new PubAck(packet)...)`); an error here ends the series before
      // it, and reaches the client's nextBatch(err) (lib/client.js:66-68) -> 'error' -> _onError, which
      // destroys the connection (client.js:172-180). aedes speaks MQTT 3.1/3.1.1 only
      // (lib/handlers/connect.js:65), so there is no PUBACK reason code (MQTT 5 0x97/0x80) to send, and
      // closing is what MQTT 3.1.1 allows a server that does not accept a PUBLISH [MQTT-3.3.5-2]. The
      // vehicle sees no PUBACK and a closed connection, reconnects, and re-sends what is unacknowledged
      // (its session's in-flight messages, [MQTT-4.4.0-1]).
      if (t.channel === 'telemetry') {
        handlers.telemetry(t.vin, payload, client.id).then(
          () => callback(null),
          (err: Error) => callback(err),
        );
        return;
      }
      if (t.channel === 'prompts/ack') {
        // a rejection: neither stored nor dead-lettered, refused (no PUBACK), the head unit re-sends it
        handlers.ack(t.vin, payload, client.id).then(
          () => callback(null),
          (err: Error) => callback(err),
        );
        return;
      }
      // status is handled on 'publish' so that wills (published by the broker itself) are seen too
      callback(null);
    },
    // Confirmed HMI delivery (docs/architecture.md#confirmed-hmi-delivery). aedes's 'ack' event does
    // not say which message a clean session acked: the packet it emits is the one its persistence
    // kept (node_modules/aedes/lib/handlers/puback.js), and for a clean session it keeps none
    // (lib/client.js deliverQoS: `if (that.clean || packet.retain) doWriteQoS()`). So the packet id
    // is chosen here, at forwarding: a QoSPacket keeps an id its original carries
    // (lib/qos-packet.js), and taking the client's own next id (advancing its counter as QoSPacket
    // would) cannot collide with the ids aedes gives this client's other messages.
    authorizeForward(client, packet) {
      const t = parseTopic(opts.prefix, packet.topic);
      if (t?.channel !== 'prompts' || packet.qos !== 1 || usernames.get(client) !== t.vin) return packet;
      const counter = client as unknown as IdCounter;
      const id = counter._nextId;
      if (typeof id !== 'number') return packet; // another aedes: delivered at the head unit's ack then
      let promptId: string;
      try {
        const p = decodeHmiPrompt(packet.payload as Buffer);
        if (p.withdrawn) return packet;
        promptId = p.promptId;
      } catch {
        return packet;
      }
      counter._nextId = id >= 65535 ? 1 : id + 1;
      let ids = awaiting.get(client);
      if (!ids) awaiting.set(client, (ids = new Map()));
      ids.set(id, { vin: t.vin, promptId });
      if (ids.size > MAX_TRACKED_PER_CLIENT) ids.delete(ids.keys().next().value!);
      return Object.assign(Object.create(Object.getPrototypeOf(packet) as object) as AedesPublishPacket, packet, { messageId: id });
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

  // Clients listening to each vehicle's prompts (a VIN may have several clients, VIN:suffix): cluster
  // mode delivers a vehicle's prompts from the instance its head unit's subscription is on. A restored
  // session's subscriptions come through 'subscribe' too (aedes lib/handlers/connect.js restoreSubs).
  const listening = new Map<Client, string>();
  const listeners = new Map<string, number>();
  const stopListening = (client: Client) => {
    const vin = listening.get(client);
    if (vin === undefined) return;
    listening.delete(client);
    const n = (listeners.get(vin) ?? 1) - 1;
    if (n > 0) listeners.set(vin, n);
    else listeners.delete(vin);
  };
  broker.on('unsubscribe', (topics: string[], client: Client) => {
    const vin = client && listening.get(client);
    if (vin && topics.some((t) => parseTopic(opts.prefix, t)?.channel === 'prompts')) stopListening(client);
  });
  broker.on('clientDisconnect', (client: Client) => stopListening(client));
  broker.on('publish', (packet: AedesPublishPacket, client: Client | null) => {
    const t = parseTopic(opts.prefix, packet.topic);
    if (t?.channel !== 'status') return;
    // a will carries the publishing client; a retained replay of our own publish would not reach here
    if (client && usernames.get(client) !== t.vin) return;
    handlers.status(t.vin, Buffer.from(packet.payload as Buffer), client?.id ?? null).catch(() => {
      // neither stored nor dead-lettered (a full disk; counted): already PUBACKed, the next birth or will tells again
    });
  });

  // The PUBACK: persistence.outgoingClearMessageId gets the PUBACK packet and resolves to what it
  // kept of the message (nothing for a clean session); it also answers with the PUBACK itself, so
  // the 'ack' event carries the packet id either way.
  const persistence = (
    broker as unknown as { persistence: { outgoingClearMessageId(client: Client, packet: { messageId?: number }): Promise<unknown> } }
  ).persistence;
  const clearMessageId = persistence.outgoingClearMessageId.bind(persistence);
  persistence.outgoingClearMessageId = async (client, packet) => (await clearMessageId(client, packet)) ?? packet;
  broker.on('ack', (packet: { messageId?: number } | undefined, client: Client) => {
    const id = packet?.messageId;
    const ids = client && awaiting.get(client);
    const hit = id === undefined ? undefined : ids?.get(id);
    if (!hit) return;
    ids!.delete(id!);
    if (usernames.get(client) === hit.vin) handlers.delivered?.(hit.vin, hit.promptId);
  });
  broker.on('subscribe', (subs: Array<{ topic: string; qos: number }>, client: Client) => {
    const vin = client && usernames.get(client);
    const prompts = subs.some((s) => {
      const t = s.qos !== 128 ? parseTopic(opts.prefix, s.topic) : null;
      return t?.channel === 'prompts' && t.vin === vin;
    });
    if (vin && prompts && !listening.has(client)) {
      listening.set(client, vin);
      listeners.set(vin, (listeners.get(vin) ?? 0) + 1);
    }
    if (vin && prompts) handlers.promptsSubscribed?.(vin);
  });

  /** The rate limit, on the raw TCP socket (before any TLS handshake or MQTT byte). */
  const admit = (socket: net.Socket): boolean => {
    const addr = socket.remoteAddress ?? '';
    if (!limiter || (!limitLoopback && isLoopback(addr)) || limiter.take(rateKey(addr))) return true;
    deny(`connection from ${addr}: over ${rate.perSecond}/s (burst ${rate.burst})`, null);
    socket.destroy();
    return false;
  };
  /**
   * Hand a connection to aedes, with the packet size limit. aedes 1.2.0 has no packet size option:
   * each client's parser is `mqtt.parser()` without options (node_modules/aedes/lib/client.js:60),
   * and mqtt-packet 9's parser keeps appending to its BufferList until the announced remaining
   * length (up to 256 MiB) has arrived (node_modules/mqtt-packet/parser.js:96, _parsePayload). So
   * the limit is enforced on the byte stream: aedes reads the socket with read()
   * (lib/client.js:81, on 'readable' :89), and with a 'readable' listener present Node emits 'data'
   * inside each read() with the very chunk read, before aedes parses it. The guard follows the
   * packet framing and destroys the socket on the fixed header that announces an oversized packet,
   * so at most the chunks already read (socket buffer, tens of KiB) are ever held.
   */
  const handle = (conn: net.Socket) => {
    const client = broker.handle(conn);
    const guard = new PacketSizeGuard(maxPacket);
    const onData = (chunk: Buffer) => {
      const size = guard.feed(chunk);
      if (size === null) return;
      conn.removeListener('data', onData);
      deny(`packet of ${size} bytes > limit ${maxPacket}`, client);
      conn.destroy();
    };
    conn.on('data', onData); // after aedes's 'readable' listener, so this does not switch to flowing mode
  };

  const listen = async (srv: net.Server, port: number) =>
    new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, opts.host, () => resolve());
    });

  // noDelay: a PUBACK or an HmiPrompt is one small segment that must leave at once; Nagle's
  // algorithm held it until the peer's delayed ACK (~40 ms on Linux), the HMI's whole lag behind SSE
  const server = net.createServer({ noDelay: true }, (socket) => {
    if (admit(socket)) handle(socket);
  });
  await listen(server, opts.port);
  // TLS: a plain TCP server owns the port, applies the rate limit, and injects admitted sockets into
  // the tls.Server (documented use of its 'connection' event), which never listens itself.
  let tlsTcp: net.Server | undefined;
  if (opts.tls) {
    const tlsServer = tls.createServer(
      {
        cert: readFileSync(opts.tls.cert),
        key: readFileSync(opts.tls.key),
        ...(opts.tls.ca ? { ca: readFileSync(opts.tls.ca), requestCert: true, rejectUnauthorized: true } : {}),
      },
      (socket) => handle(socket),
    );
    tlsTcp = net.createServer({ noDelay: true }, (socket) => {
      if (admit(socket)) tlsServer.emit('connection', socket);
    });
    await listen(tlsTcp, opts.tls.port);
  }
  const port = (server.address() as net.AddressInfo).port;
  const tlsPort = tlsTcp ? (tlsTcp.address() as net.AddressInfo).port : undefined;

  return {
    kind: 'embedded',
    confirmsDelivery: true,
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
    hasVehicle: (vin) => listeners.has(vin),
    async close() {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
      if (tlsTcp) await new Promise<void>((r) => tlsTcp!.close(() => r()));
    },
  };
}
