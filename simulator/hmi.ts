// Head units of the simulated fleet: one MQTT client per vehicle (client id `VIN:hmi`, as a real
// head unit beside the agent), subscribed to the vehicle's prompts. It confirms every prompt (its
// QoS 1 PUBACK) and reacts to campaign messages the way its owner's persona would: it shows them,
// then the owner acts on them, dismisses them or lets them be (docs/domain.md#campaign-deliveries).
import mqtt, { type MqttClient } from 'mqtt';
import { decodeHmiPrompt, encodePromptAck } from '../proto/codec.js';
import type { AckOutcome } from '../proto/domain.js';
import type { Archetype } from './persona.js';
import { unitFor } from './rng.js';

/** Chance that an owner of this archetype acts on a campaign message, or dismisses it (else: only looks). */
export const CAMPAIGN_RESPONSE: Record<Archetype, { act: number; dismiss: number }> = {
  commuter: { act: 0.3, dismiss: 0.5 },
  weekend_driver: { act: 0.4, dismiss: 0.4 },
  high_mileage: { act: 0.2, dismiss: 0.6 },
  low_runner: { act: 0.15, dismiss: 0.6 },
  battery_abuser: { act: 0.1, dismiss: 0.7 },
  neglectful: { act: 0.05, dismiss: 0.45 },
  dormant_prone: { act: 0.25, dismiss: 0.45 },
  drifting: { act: 0.15, dismiss: 0.55 },
  lost: { act: 0, dismiss: 0 },
  fleet_van: { act: 0.05, dismiss: 0.85 },
};

/** FNV-1a of a string, for a deterministic draw per prompt. */
function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** What the owner does with a campaign message after seeing it: the same answer for the same seed, vehicle and prompt. */
export function campaignReaction(archetype: Archetype, seed: number, promptId: string): Exclude<AckOutcome, 'SHOWN'> | null {
  const r = CAMPAIGN_RESPONSE[archetype];
  const u = unitFor(seed, fnv(promptId));
  if (u < r.act) return 'ACTED';
  if (u < r.act + r.dismiss) return 'DISMISSED';
  return null;
}

export interface HmiClientsOptions {
  broker: string;
  vins: readonly string[];
  archetypeOf(vin: string): Archetype;
  seed: number;
  prefix?: string;
  password?: (username: string) => string | undefined;
  /** Simulated time for the acks' ts_ms. */
  now(): number;
  /** Wall ms between receiving a message and showing it, and between showing and the owner's reaction. */
  reactionMs?: number;
  onError?: (err: Error) => void;
}

export interface HmiClients {
  readonly counts: { shown: number; dismissed: number; acted: number };
  close(): Promise<void>;
}

export function startHmiClients(o: HmiClientsOptions): HmiClients {
  const prefix = o.prefix ?? 'v1';
  const delay = o.reactionMs ?? 300;
  const counts = { shown: 0, dismissed: 0, acted: 0 };
  const clients: MqttClient[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let closed = false;
  const later = (fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, delay);
    timers.add(t);
  };
  for (const vin of o.vins) {
    const c = mqtt.connect(o.broker, {
      clientId: `${vin}:hmi`,
      username: vin,
      password: o.password?.(vin),
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 2000,
      connectTimeout: 30_000,
    });
    clients.push(c);
    const seen = new Set<string>();
    const withdrawn = new Set<string>();
    const ack = (promptId: string, outcome: AckOutcome, actionId?: string) => {
      if (withdrawn.has(promptId)) return;
      const payload = encodePromptAck({ promptId, outcome, ts: o.now(), ...(actionId ? { actionId } : {}) });
      c.publishAsync(`${prefix}/vehicles/${vin}/prompts/ack`, Buffer.from(payload), { qos: 1 })
        .then(() => void (counts[outcome === 'SHOWN' ? 'shown' : outcome === 'ACTED' ? 'acted' : 'dismissed'] += 1))
        .catch((err: Error) => o.onError?.(err));
    };
    c.on('connect', () => {
      c.subscribeAsync(`${prefix}/vehicles/${vin}/prompts`, { qos: 1 }).catch((err: Error) => o.onError?.(err));
    });
    c.on('error', (err) => o.onError?.(err));
    c.on('message', (_topic, payload) => {
      let p;
      try {
        p = decodeHmiPrompt(payload);
      } catch {
        return; // not ours to judge: ingest only sends valid ones
      }
      if (p.withdrawn) {
        withdrawn.add(p.promptId);
        return;
      }
      // the same prompt may arrive more than once (docs/contract.md#hmi-prompt): shown once
      if (p.kind !== 'campaign.message' || seen.has(p.promptId)) return;
      seen.add(p.promptId);
      const reaction = campaignReaction(o.archetypeOf(vin), o.seed, p.promptId);
      later(() => {
        ack(p.promptId, 'SHOWN');
        if (!reaction) return;
        const action = p.actions.find((a) => a.id !== 'dismiss');
        later(() => ack(p.promptId, reaction, reaction === 'ACTED' ? action?.id : undefined));
      });
    });
  }
  return {
    counts,
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    },
  };
}
