// MQTT side of the simulator: one connection per vehicle (clientId = username = VIN, as a real
// agent connects) or a few shared connections, with a bound on publishes awaiting PUBACK.
import mqtt, { type MqttClient } from 'mqtt';
import { encodeAgentStatus } from '../proto/codec.js';
import { PACKAGE_VERSION } from '../proto/paths.js';

export type ConnectionMode = 'per-vehicle' | 'multiplex';

export interface PublisherOptions {
  broker: string;
  vins: readonly string[];
  mode: ConnectionMode;
  /** Shared connections in multiplex mode. */
  multiplexConnections?: number;
  /** Username of the shared connections (the broker must let it publish for many VINs). */
  multiplexUsername?: string;
  /** MQTT password per VIN (per-vehicle mode) or for the shared username. */
  password?: (username: string) => string | undefined;
  prefix?: string;
  maxInFlight?: number;
  /** Simultaneous connection attempts while connecting the fleet. */
  connectConcurrency?: number;
  bootId: (vin: string) => string;
  /** Simulated time for birth/death status messages. */
  now: () => number;
  onError?: (err: Error) => void;
}

export interface Publisher {
  /**
   * Resolves true when the broker acknowledged (QoS 1), false when the vehicle has been retired
   * (its unit is gone, so the message is lost as it would be); rejects on failure. Waits for a slot first.
   */
  publish(vin: string, channel: 'telemetry' | 'status', payload: Uint8Array, retain?: boolean): Promise<boolean>;
  readonly connected: number;
  /** A vehicle falls silent: per-vehicle mode drops its connection (the broker publishes its will). */
  retire(vin: string): void;
  readonly inFlight: number;
  /** Publish death (offline) statuses, wait for what is in flight, close every connection. */
  close(graceMs?: number): Promise<void>;
}

function statusPayload(vin: string, online: boolean, bootId: string, ts: number): Uint8Array {
  return encodeAgentStatus({
    vin,
    online,
    agentVersion: `sim-${PACKAGE_VERSION}`,
    configVersion: 0,
    bootId,
    ts,
    spoolDropped: 0,
    spoolPending: 0,
  });
}

/** A broker that admits only vehicles (per-VIN ACL) refuses multiplexed connections. */
export class SharedConnectionRefused extends Error {
  override name = 'SharedConnectionRefused';
}

export async function createPublisher(o: PublisherOptions, signal?: AbortSignal): Promise<Publisher> {
  const prefix = o.prefix ?? 'v1';
  const maxInFlight = o.maxInFlight ?? 2000;
  const topic = (vin: string, channel: string) => `${prefix}/vehicles/${vin}/${channel}`;
  const clients: MqttClient[] = [];
  const clientOf: (vin: string) => MqttClient =
    o.mode === 'per-vehicle' ? (vin) => byVin.get(vin)! : (vin) => clients[vinIndex.get(vin)! % clients.length];
  const byVin = new Map<string, MqttClient>();
  const vinIndex = new Map<string, number>(o.vins.map((v, i) => [v, i]));
  let connected = 0;
  let inFlight = 0;
  const waiters: (() => void)[] = [];
  const retired = new Set<string>();
  let connecting = true;

  const open = (clientId: string, username: string, will?: { vin: string }) => {
    const c = mqtt.connect(o.broker, {
      clientId,
      username,
      password: o.password?.(username),
      protocolVersion: 4,
      clean: true,
      keepalive: 60,
      reconnectPeriod: 2000,
      connectTimeout: 30_000,
      ...(will
        ? {
            will: {
              topic: topic(will.vin, 'status'),
              payload: Buffer.from(statusPayload(will.vin, false, o.bootId(will.vin), o.now())),
              qos: 1 as const,
              retain: true,
            },
          }
        : {}),
    });
    let up = false;
    c.on('connect', () => {
      if (!up) connected++;
      up = true;
    });
    c.on('close', () => {
      if (up) connected--;
      up = false;
    });
    c.on('error', (err) => {
      if (!connecting) o.onError?.(err); // first-attempt errors are judged below
    });
    return c;
  };

  /** Resolves once connected, or with the first error (the client keeps retrying in the background). */
  const waitConnected = (c: MqttClient) =>
    new Promise<Error | undefined>((resolve) => {
      if (c.connected) return resolve(undefined);
      const ok = () => done(undefined);
      const fail = (err: Error) => done(err);
      const done = (err: Error | undefined) => {
        c.off('connect', ok);
        c.off('error', fail);
        resolve(err);
      };
      c.once('connect', ok);
      c.once('error', fail);
    });

  const firstErrors: Error[] = [];
  const endAll = () => Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));

  if (o.mode === 'per-vehicle') {
    const concurrency = o.connectConcurrency ?? 100;
    let next = 0;
    const worker = async () => {
      while (next < o.vins.length && !signal?.aborted) {
        const vin = o.vins[next++];
        const c = open(vin, vin, { vin });
        byVin.set(vin, c);
        clients.push(c);
        const err = await waitConnected(c);
        if (err) firstErrors.push(err);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, o.vins.length) }, worker));
  } else {
    const n = Math.max(1, Math.min(o.multiplexConnections ?? 4, o.vins.length));
    const user = o.multiplexUsername ?? 'odopulse-simulator';
    const tag = Math.floor(Math.random() * 0xffffff).toString(16);
    for (let i = 0; i < n; i++) clients.push(open(`odopulse-sim-${tag}-${i}`, user));
    for (const err of await Promise.all(clients.map(waitConnected))) if (err) firstErrors.push(err);
    // CONNACK 4/5 (bad credentials / not authorised) will not heal by retrying: say why and stop.
    const refused = firstErrors.find((e) => [4, 5, 134, 135].includes(Number((e as { code?: unknown }).code)));
    if (refused) {
      await endAll();
      throw new SharedConnectionRefused(
        `the broker refused the shared connection as ${JSON.stringify(user)} (${refused.message}); a broker with a per-VIN ACL needs per-vehicle connections`,
      );
    }
  }
  if (clients.length > 0 && firstErrors.length === clients.length && connected === 0) {
    await endAll();
    throw new Error(`cannot connect to the broker at ${o.broker}: ${firstErrors[0].message}`);
  }
  // Some vehicles failed their first attempt: counted, and they keep retrying in the background.
  for (const err of firstErrors) o.onError?.(err);
  connecting = false;

  const publish = async (vin: string, channel: 'telemetry' | 'status', payload: Uint8Array, retain = false): Promise<boolean> => {
    while (inFlight >= maxInFlight) await new Promise<void>((r) => waiters.push(r));
    if (retired.has(vin)) return false;
    const c = clientOf(vin);
    if (!c) throw new Error(`no connection for ${vin}`);
    inFlight++;
    try {
      await c.publishAsync(topic(vin, channel), Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), { qos: 1, retain });
      return true;
    } catch (err) {
      if (retired.has(vin)) return false; // in flight when the unit went silent
      throw err;
    } finally {
      inFlight--;
      waiters.shift()?.();
    }
  };

  // Birth messages, as an agent announces itself (retained status).
  for (const vin of o.vins) {
    publish(vin, 'status', statusPayload(vin, true, o.bootId(vin), o.now()), true).catch((err: Error) => o.onError?.(err));
  }

  return {
    publish,
    retire(vin) {
      retired.add(vin);
      const c = byVin.get(vin);
      if (!c) return;
      byVin.delete(vin);
      // No DISCONNECT: the connection just dies, as when a unit loses power, so the will fires.
      c.options.reconnectPeriod = 0;
      c.stream?.destroy();
      c.end(true);
    },
    get connected() {
      return connected;
    },
    get inFlight() {
      return inFlight;
    },
    async close(graceMs = 10_000) {
      const deadline = Date.now() + graceMs;
      const deaths = o.vins
        .filter((vin) => !retired.has(vin))
        .map((vin) => publish(vin, 'status', statusPayload(vin, false, o.bootId(vin), o.now()), true).catch(() => undefined));
      await Promise.race([Promise.all(deaths), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref())]);
      while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await endAll();
    },
  };
}
