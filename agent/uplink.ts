// The MQTT side of the agent: a persistent session (clientId = VIN, clean: false), credentials,
// TLS / mutual TLS, jittered exponential reconnect, birth/death status, the retained config
// subscription, and the in-order, rate-limited flush of the spool. A spooled batch is acked in
// the spool only from mqtt.js's publish callback, i.e. after the broker's PUBACK.
import type { IClientOptions, MqttClient } from 'mqtt';
import { encodeAgentStatus, encodeTelemetryBatch } from '../proto/agent-wire.js';
import type { AgentStatus } from '../proto/domain.js';
import { connectMqtt } from './mqtt-connect.js';
import type { Spool } from './spool.js';

export interface UplinkOptions {
  vin: string;
  brokerUrl: string;
  topicPrefix: string;
  bootId: string;
  spool: Spool;
  username?: string;
  password?: string;
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Batches per second sent from the spool (0 = unlimited). */
  flushRateLimit?: number;
  /** Batches published and not yet acknowledged, at most. */
  maxInflight?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Current status for the birth message (online is set here). */
  status: () => Omit<AgentStatus, 'online'>;
  onConfig?: (payload: Buffer) => void;
  log?: (msg: string) => void;
}

export const topics = (prefix: string, vin: string) => ({
  telemetry: `${prefix}/vehicles/${vin}/telemetry`,
  status: `${prefix}/vehicles/${vin}/status`,
  config: `${prefix}/vehicles/${vin}/config`,
});

/** Full-jitter exponential backoff: a random delay in [base/2, base], base doubling per attempt. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, rand: () => number = Math.random): number {
  const base = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  return Math.max(minMs / 2, Math.round(base / 2 + (rand() * base) / 2));
}

type ReconnectInternals = { reconnectTimer: NodeJS.Timeout | null; _setupReconnect(): void };

export class Uplink {
  private client: MqttClient | undefined;
  private readonly inflight = new Set<number>();
  /** Highest seq handed to mqtt.js in this process; mqtt.js itself re-sends its in-flight ones after a reconnect. */
  private cursor = 0;
  private attempt = 0;
  private tokens: number;
  private lastRefill = Date.now();
  private kickTimer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];
  private stopped = false;
  readonly t: ReturnType<typeof topics>;
  sent = 0;
  acked = 0;
  connects = 0;

  constructor(private readonly o: UplinkOptions) {
    this.t = topics(o.topicPrefix, o.vin);
    this.tokens = Math.max(1, o.flushRateLimit ?? 0);
  }

  private get log() {
    return this.o.log ?? (() => {});
  }

  get connected(): boolean {
    return !!this.client?.connected;
  }

  start(): void {
    const o = this.o;
    const offline: AgentStatus = { ...o.status(), online: false };
    const opts: IClientOptions = {
      clientId: o.vin,
      clean: false,
      username: o.username,
      password: o.password,
      keepalive: 30,
      connectTimeout: 10_000,
      reconnectPeriod: o.reconnectMinMs ?? 1000,
      will: { topic: this.t.status, payload: Buffer.from(encodeAgentStatus(offline)), qos: 1, retain: true },
      ...(o.ca ? { ca: o.ca } : {}),
      ...(o.cert ? { cert: o.cert } : {}),
      ...(o.key ? { key: o.key } : {}),
      rejectUnauthorized: true,
      // mqtt-packet otherwise pre-builds 65,536 two-byte Buffers (one per packet id / length), ~6 MB of heap.
      writeCache: false,
    };
    const client = connectMqtt(o.brokerUrl, opts);
    this.client = client;
    client.on('connect', () => {
      this.attempt = 0;
      this.connects++;
      this.log(`uplink: connected to ${o.brokerUrl}`);
      client.subscribe(this.t.config, { qos: 1 }, (err) => err && this.log(`uplink: subscribe failed: ${err.message}`));
      this.publishStatus();
      this.kick();
    });
    client.on('message', (topic, payload) => {
      if (topic === this.t.config) o.onConfig?.(payload);
    });
    client.on('error', (err) => this.log(`uplink: ${err.message}`));
    client.on('close', () => {
      if (this.stopped) return;
      // mqtt.js reconnects at a fixed period; re-arm its timer with a jittered, growing delay.
      const delay = backoffDelay(this.attempt++, o.reconnectMinMs ?? 1000, o.reconnectMaxMs ?? 60_000);
      const c = client as unknown as ReconnectInternals;
      if (c.reconnectTimer) clearInterval(c.reconnectTimer);
      c.reconnectTimer = null;
      client.options.reconnectPeriod = delay;
      c._setupReconnect();
    });
  }

  /** Birth: retained online status (also re-sent when the policy version or drop count changes). */
  publishStatus(): void {
    const c = this.client;
    if (!c?.connected) return;
    const s: AgentStatus = { ...this.o.status(), online: true };
    c.publish(this.t.status, Buffer.from(encodeAgentStatus(s)), { qos: 1, retain: true }, (err) => {
      if (err) this.log(`uplink: status publish failed: ${err.message}`);
    });
  }

  private refill(): void {
    const rate = this.o.flushRateLimit ?? 0;
    if (rate <= 0) return;
    const now = Date.now();
    this.tokens = Math.min(Math.max(1, rate), this.tokens + ((now - this.lastRefill) / 1000) * rate);
    this.lastRefill = now;
  }

  /** Send what the spool holds, oldest first, within the in-flight window and the rate limit. */
  kick(): void {
    const c = this.client;
    if (!c?.connected || this.stopped) return;
    const rate = this.o.flushRateLimit ?? 0;
    const window = this.o.maxInflight ?? 32;
    while (this.inflight.size < window) {
      const [seq] = this.o.spool.pendingAfter(this.cursor, 1);
      if (seq === undefined) break;
      if (rate > 0) {
        this.refill();
        if (this.tokens < 1) {
          this.kickTimer ??= setTimeout(
            () => {
              this.kickTimer = undefined;
              this.kick();
            },
            Math.ceil(((1 - this.tokens) / rate) * 1000),
          );
          return;
        }
        this.tokens -= 1;
      }
      this.cursor = seq;
      let payload: Buffer;
      try {
        const rec = this.o.spool.read(seq);
        if (!rec) continue;
        payload = Buffer.from(
          encodeTelemetryBatch({ vin: this.o.vin, bootId: rec.bootId, seq: rec.seq, samples: rec.samples, dropped: rec.dropped }),
        );
      } catch (err) {
        // A record that cannot be read or encoded would block the queue forever: drop it, loudly.
        this.log(`uplink: dropping unsendable batch ${seq}: ${(err as Error).message}`);
        this.o.spool.ack(seq);
        continue;
      }
      this.inflight.add(seq);
      this.sent++;
      c.publish(this.t.telemetry, payload, { qos: 1 }, (err) => this.onPuback(seq, err));
    }
    this.checkIdle();
  }

  private onPuback(seq: number, err?: Error): void {
    this.inflight.delete(seq);
    if (err) {
      // mqtt.js gave up on it (client ended): it stays in the spool for the next start.
      if (!this.stopped) this.log(`uplink: batch ${seq} not acknowledged: ${err.message}`);
      this.cursor = Math.min(this.cursor, seq - 1);
      return;
    }
    this.acked++;
    this.o.spool.ack(seq);
    this.kick();
  }

  private checkIdle(): void {
    if (this.inflight.size > 0 || this.o.spool.pendingCount > 0) return;
    const ws = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of ws) w();
  }

  /** Resolves once everything in the spool has been acknowledged by the broker. */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.checkIdle();
    });
  }

  /** Graceful stop: publish the offline status (the will covers a crash), then disconnect. */
  async stop(): Promise<void> {
    const c = this.client;
    if (!c || this.stopped) return;
    this.stopped = true;
    if (this.kickTimer) clearTimeout(this.kickTimer);
    if (c.connected) {
      const s: AgentStatus = { ...this.o.status(), online: false };
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 2000);
        c.publish(this.t.status, Buffer.from(encodeAgentStatus(s)), { qos: 1, retain: true }, () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => c.end(true, {}, () => resolve()), 2000);
      c.end(false, {}, () => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
