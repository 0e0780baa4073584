// Topic layout (docs/contract.md#topics): {prefix}/vehicles/{vin}/{telemetry|status|prompts|prompts/ack|config}.
import { VinSchema } from '../../proto/domain.js';

export const CHANNELS = ['telemetry', 'status', 'prompts', 'prompts/ack', 'config'] as const;
export type Channel = (typeof CHANNELS)[number];
/** What a vehicle may publish, and what it may subscribe to, under its own VIN. */
export const VEHICLE_PUBLISHES: readonly Channel[] = ['telemetry', 'status', 'prompts/ack'];
export const VEHICLE_SUBSCRIBES: readonly Channel[] = ['prompts', 'config'];

export function topicFor(prefix: string, vin: string, channel: Channel): string {
  return `${prefix}/vehicles/${vin}/${channel}`;
}

export function parseTopic(prefix: string, topic: string): { vin: string; channel: Channel } | null {
  const head = `${prefix}/vehicles/`;
  if (!topic.startsWith(head)) return null;
  const rest = topic.slice(head.length);
  const slash = rest.indexOf('/');
  if (slash < 0) return null;
  const vin = rest.slice(0, slash);
  const channel = rest.slice(slash + 1) as Channel;
  if (!CHANNELS.includes(channel) || !VinSchema.safeParse(vin).success) return null;
  return { vin, channel };
}

/** Handlers the pipeline gives a broker adapter. */
export interface InboundHandlers {
  /**
   * Resolves once the batch is safe (journalled or dead-lettered): only then may the broker PUBACK.
   * Rejects (a StorageWriteError when storage is full, docs/architecture.md#disk-full) if it is not.
   */
  telemetry(vin: string, payload: Buffer, clientId: string | null): Promise<void>;
  /**
   * Resolve once the message is applied (or dead-lettered); reject (a StorageWriteError) only when
   * neither the message nor its dead letter could be stored.
   */
  status(vin: string, payload: Buffer, clientId: string | null): Promise<void>;
  ack(vin: string, payload: Buffer, clientId: string | null): Promise<void>;
  /**
   * The vehicle's own client PUBACKed this prompt (embedded broker only, BrokerLink.confirmsDelivery):
   * the car has it.
   */
  delivered?(vin: string, promptId: string): void;
  /** A client of this vehicle subscribed to its prompts topic (embedded broker only): re-send what it has not confirmed. */
  promptsSubscribed?(vin: string): void;
}

export interface BrokerLink {
  readonly kind: 'embedded' | 'external';
  /**
   * Whether the link sees the car's PUBACK of a prompt (InboundHandlers.delivered): the embedded
   * broker does. As a client of an external broker, ingest only gets the broker's PUBACK, which
   * says nothing about the car: there a prompt is delivered at the head unit's first ack.
   */
  readonly confirmsDelivery: boolean;
  publish(topic: string, payload: Uint8Array, opts: { qos: 0 | 1; retain?: boolean }): Promise<void>;
  ready(): boolean;
  connectedClients(): number;
  /** Whether a client of this vehicle listens to its prompts here (embedded broker; cluster mode's HMI delivery). */
  hasVehicle?(vin: string): boolean;
  close(): Promise<void>;
}
