// `odopulse agent ...`: commander's string flags -> AgentOptions -> runAgent.
import { runAgent, type AgentOptions } from './main.js';

export interface AgentCliFlags {
  vin: string;
  broker?: string;
  replay?: string;
  simulate?: boolean;
  kuksa?: string;
  kuksaCa?: string;
  kuksaTokenFile?: string;
  speed?: string;
  spool?: string;
  username?: string;
  passwordFile?: string;
  ca?: string;
  cert?: string;
  key?: string;
  prefix?: string;
  batchMaxSamples?: string;
  batchMaxDelay?: string;
  flushRate?: string;
  seed?: string;
  powertrain?: string;
}

/** A numeric flag, or undefined when absent; a non-number becomes NaN so validation names it. */
const num = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));

export function flagsToAgentOptions(f: AgentCliFlags): AgentOptions {
  const o: Record<string, unknown> = {
    vin: f.vin,
    broker: f.broker ?? 'mqtt://127.0.0.1:1883',
    replay: f.replay,
    simulate: !!f.simulate,
    kuksa: f.kuksa,
    kuksaCaFile: f.kuksaCa,
    kuksaTokenFile: f.kuksaTokenFile,
    speed: num(f.speed),
    spoolDir: f.spool,
    username: f.username,
    passwordFile: f.passwordFile,
    caFile: f.ca,
    certFile: f.cert,
    keyFile: f.key,
    topicPrefix: f.prefix,
    batchMaxSamples: num(f.batchMaxSamples),
    batchMaxDelayMs: num(f.batchMaxDelay),
    flushRateLimit: num(f.flushRate),
    seed: num(f.seed),
    powertrain: f.powertrain,
  };
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o as AgentOptions;
}

export function runAgentCli(flags: AgentCliFlags, signal?: AbortSignal): Promise<number> {
  return runAgent(flagsToAgentOptions(flags), signal);
}
