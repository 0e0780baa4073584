// Ingest as a client of an external broker (Mosquitto, EMQX). A persistent MQTT 5 session (clean
// start false, a session that never expires) keeps what arrives while ingest is down. A QoS 1
// message is PUBACKed only once its handler resolved (the batch is journalled or dead-lettered),
// but many messages are handled at once, so the journal's group commit shares one fsync among them.
//
// How MQTT.js (5.16, node_modules/mqtt/build/lib) paces inbound messages, and what we do about it:
//  - client.js 330-366: `work` hands ONE parsed packet to the handlers with `nextTickWork` as its
//    `done`; the next packet (and, through `completeParse`, the next read from the socket) waits
//    until `done` is called.
//  - handlers/publish.js 96-117 (QoS 1): after customHandleAcks (client.js 150-155: a no-op unless
//    MQTT 5 and given), `client.handleMessage(packet, cb)`; `cb()` sends the PUBACK
//    (`_sendPacket({ cmd: 'puback', messageId })`) and only then calls `done`, while `cb(err)` calls
//    `done(err)` and sends no PUBACK at all (publish.js 111-114).
//  So a handleMessage that waits for the journal before calling back (as before) has one message in
//  flight: every batch got an fsync (and a pipeline wake-up) of its own. Instead, handleMessage
//  starts the handler, calls back at once with NOT_NOW (no PUBACK from MQTT.js, the next packet is
//  read) and the AckWindow below writes the PUBACK itself when the handler resolves. Not through
//  `_sendPacket`: when the connection is gone that queues the packet for the next one
//  (client.js 1122-1128 -> _storePacket 1170-1171), and a PUBACK from an old connection could
//  acknowledge whatever the broker sends under that packet id after the reconnect. A PUBACK whose
//  connection has closed is dropped: the broker resends the message (it was never acknowledged) and
//  the journal answers the copy as a duplicate.
//
// How many are in flight is the broker's to bound: Receive Maximum, which MQTT.js advertises in
// CONNECT (client.js 167-179, 400-401; it enforces it only for QoS 2, 273-283) and which Mosquitto
// takes as this client's outgoing in-flight limit (src/property_broker.c: msgs_out.inflight_maximum;
// an MQTT 3.1.1 client gets max_inflight_messages, 20 by default). The AckWindow also holds the
// reading of packets when that many are outstanding, in case a broker sends more.
import mqtt, { type IClientOptions, type IPublishPacket } from 'mqtt';
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { StorageWriteError } from '../store/storage-errors.js';
import { parseTopic, type BrokerLink, type InboundHandlers } from './topics.js';

export interface ExternalBrokerOptions {
  url: string;
  prefix: string;
  clientId?: string;
  username?: string;
  passwordFile?: string;
  ca?: string;
  /** QoS 1 messages the broker may have in flight to ingest at once (MQTT 5 Receive Maximum). */
  receiveMaximum?: number;
  onError?(err: Error): void;
}

/** 1,000 × an 18 KB batch is ~18 MB held; the worst case is 1,000 × the 257 KiB largest packet. */
export const DEFAULT_RECEIVE_MAXIMUM = 1000;
/** MQTT 5: the session outlives any disconnect (MQTT 5 §3.1.2.11.2: 0xFFFFFFFF never expires). */
const SESSION_NEVER_EXPIRES = 0xffffffff;

/** How long close() waits for the PUBACKs of messages being handled (unacknowledged, they come again). */
const CLOSE_DRAIN_MS = 5000;
/** Passed to MQTT.js's handleMessage callback: read the next packet, but send no PUBACK (we do). */
const NOT_NOW = new Error('PUBACK deferred until the message is handled');

interface Outstanding {
  state: 'pending' | 'done' | 'failed';
  error?: Error;
  ack(): void;
  fail(err: Error): void;
}

/**
 * QoS 1 messages being handled, in the order they arrived. A message's `ack` runs once its handler
 * resolved and every earlier message's was settled: PUBACKs go out in the order of the PUBLISHes
 * (MQTT 3.1.1 [MQTT-4.6.0-2], MQTT 5 §4.6), never before the handler resolved. A rejected handler
 * gets `fail` instead of `ack`. At most `limit` are outstanding: beyond that, `next` (read the next
 * packet) waits for room.
 */
export class AckWindow {
  private readonly queue: Outstanding[] = [];
  private waiting: (() => void)[] = [];
  private idle: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  get size(): number {
    return this.queue.length;
  }

  add(handled: Promise<unknown>, ack: () => void, fail: (err: Error) => void, next: () => void): void {
    const o: Outstanding = { state: 'pending', ack, fail };
    this.queue.push(o);
    handled.then(
      () => this.settle(o, 'done'),
      (err: unknown) => this.settle(o, 'failed', err instanceof Error ? err : new Error(String(err))),
    );
    if (this.queue.length < this.limit) next();
    else this.waiting.push(next);
  }

  /** Resolves when nothing is outstanding. */
  drained(): Promise<void> {
    return this.queue.length === 0 ? Promise.resolve() : new Promise((r) => this.idle.push(r));
  }

  private settle(o: Outstanding, state: 'done' | 'failed', error?: Error): void {
    o.state = state;
    o.error = error;
    while (this.queue.length > 0 && this.queue[0].state !== 'pending') {
      const head = this.queue.shift()!;
      if (head.state === 'done') head.ack();
      else head.fail(head.error!);
    }
    while (this.waiting.length > 0 && this.queue.length < this.limit) this.waiting.shift()!();
    if (this.queue.length === 0) for (const r of this.idle.splice(0)) r();
  }
}

/**
 * A PUBACK with reason code 0 and no properties: the same 4 bytes in MQTT 3.1.1 (§3.4) and MQTT 5
 * (§3.4.2.1: reason code and properties may be left out when the reason is Success).
 */
function pubackBytes(messageId: number): Buffer {
  return Buffer.from([0x40, 0x02, messageId >> 8, messageId & 0xff]);
}

export async function connectExternalBroker(opts: ExternalBrokerOptions, handlers: InboundHandlers): Promise<BrokerLink> {
  const receiveMaximum = opts.receiveMaximum ?? DEFAULT_RECEIVE_MAXIMUM;
  const options: IClientOptions = {
    clientId: opts.clientId ?? 'odopulse-ingest',
    clean: false,
    protocolVersion: 5,
    properties: { sessionExpiryInterval: SESSION_NEVER_EXPIRES, receiveMaximum },
    reconnectPeriod: 1000,
    connectTimeout: 10_000,
    ...(opts.username ? { username: opts.username } : {}),
    ...(opts.passwordFile ? { password: readFileSync(opts.passwordFile, 'utf8').trim() } : {}),
    ...(opts.ca ? { ca: readFileSync(opts.ca) } : {}),
  };
  const client = mqtt.connect(opts.url, { ...options, manualConnect: true });
  // One window per connection: PUBACK order matters within a connection, and what an old connection
  // still has outstanding (its PUBACKs are dropped anyway) must not hold up the new one's.
  let window = new AckWindow(receiveMaximum);
  let windowStream: unknown;
  let closing = false;

  /** What the message asks of ingest; settles when it is safe to acknowledge. */
  const handle = (packet: IPublishPacket): Promise<void> => {
    const t = parseTopic(opts.prefix, packet.topic);
    if (!t) return Promise.resolve();
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    if (t.channel === 'telemetry') return handlers.telemetry(t.vin, payload, null);
    if (t.channel === 'status') return handlers.status(t.vin, payload, null);
    if (t.channel === 'prompts/ack') return handlers.ack(t.vin, payload, null);
    return Promise.resolve();
  };

  client.handleMessage = (packet: IPublishPacket, callback) => {
    if (packet.qos !== 1 || packet.messageId === undefined) {
      // QoS 0 (nothing to acknowledge): one at a time, as MQTT.js paces it
      handle(packet).then(
        () => callback(),
        (err: Error) => callback(err),
      );
      return;
    }
    // Shutting down: leave it unacknowledged, the broker sends it again to the next process.
    if (closing) return callback(NOT_NOW);
    const messageId = packet.messageId;
    // the connection this PUBLISH came on; its PUBACK may only go there
    const stream = client.stream as unknown as Duplex;
    if (windowStream !== stream) {
      window = new AckWindow(receiveMaximum);
      windowStream = stream;
    }
    const current = () => client.stream === (stream as unknown) && !stream.destroyed && stream.writable;
    window.add(
      handle(packet),
      () => {
        if (current()) stream.write(pubackBytes(messageId));
      },
      (err) => {
        // a write refused by full storage is logged by the journal once per change of state, not here per message
        if (!(err instanceof StorageWriteError)) opts.onError?.(err);
        // Unacknowledged, it would hold one of the broker's in-flight slots until a reconnect, and only
        // a reconnect makes the broker send it again (MQTT 5 §4.4): reconnect now (the stream's close
        // makes MQTT.js reconnect, client.js 239-250). Later messages of this connection are then not
        // acknowledged either and come again (duplicates, answered as such).
        if (current()) stream.destroy();
      },
      () => callback(NOT_NOW),
    );
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
    close: async () => {
      closing = true;
      // the PUBACKs of what is being journalled now go out before the DISCONNECT
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([window.drained(), new Promise((r) => (timer = setTimeout(r, CLOSE_DRAIN_MS)))]);
      clearTimeout(timer);
      await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    },
  };
}
