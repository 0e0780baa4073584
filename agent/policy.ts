// The sampling policy: a local default, replaced at run time by the versioned policy the cloud
// publishes (retained) on `${prefix}/vehicles/${vin}/config`. An invalid policy is counted,
// logged and ignored: the last good one stays in force.
import { decodeAgentConfig } from '../proto/agent-config-wire.js';
import { CodecError } from '../proto/codec-limits.js';
import { checkSamplingPolicy, parseSamplingPolicy } from '../proto/checks.js';
import type { SamplingPolicy } from '../proto/domain.js';
import { VSS } from '../proto/signals.js';
import { fs } from './builtins.js';
import { writeFileDurable } from './spool-format.js';

/** Local default (version 0): what the agent samples before the cloud has said anything. */
export const DEFAULT_POLICY: SamplingPolicy = parseSamplingPolicy({
  version: 0,
  signals: [
    { path: VSS.odometer, periodMs: 60_000, deadband: 1 },
    { path: VSS.speed, periodMs: 10_000, deadband: 20 },
    { path: VSS.lowVoltageSystemState, periodMs: 60_000 },
    { path: VSS.soc, periodMs: 60_000, deadband: 2 },
    { path: VSS.soh, periodMs: 3_600_000, deadband: 0.5 },
    { path: VSS.isCharging, periodMs: 60_000 },
    { path: VSS.chargePortType, periodMs: 60_000 },
    { path: VSS.voltage12v, periodMs: 60_000, deadband: 0.3 },
    { path: VSS.fuelLevel, periodMs: 60_000, deadband: 2 },
    { path: VSS.latitude, periodMs: 60_000 },
    { path: VSS.longitude, periodMs: 60_000 },
  ],
  triggers: [{ kind: 'new_dtc' }, { kind: 'ignition_off' }, { kind: 'soc_below', threshold: 20 }, { kind: 'soc_below', threshold: 7 }],
  batchMaxSamples: 50,
  batchMaxDelayMs: 10_000,
  locationEnabled: false,
  locationPrecisionDeg: 0.01,
});

export type PolicyListener = (policy: SamplingPolicy) => void;

/** Holds the policy in force; `applyPayload` is fed the raw config-topic bytes. */
export class PolicyStore {
  private current: SamplingPolicy;
  private readonly listeners: PolicyListener[] = [];
  rejected = 0;
  lastError: string | undefined;

  /**
   * @param persistPath where the last good policy is kept, so a restart without a broker
   *   connection samples by it rather than by the default.
   */
  constructor(
    initial: SamplingPolicy = DEFAULT_POLICY,
    private readonly log: (msg: string) => void = () => {},
    private readonly persistPath?: string,
  ) {
    this.current = initial;
    if (!persistPath) return;
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(persistPath, 'utf8'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log(`policy: ignoring unreadable ${persistPath}: ${(err as Error).message}`);
      return;
    }
    const r = checkSamplingPolicy(raw);
    if (r.success) this.current = r.data;
    else log(`policy: ignoring invalid ${persistPath}: ${r.error.message}`);
  }

  get policy(): SamplingPolicy {
    return this.current;
  }

  onChange(fn: PolicyListener): void {
    this.listeners.push(fn);
  }

  /** Apply a config payload; returns false (and keeps the current policy) if it is invalid. */
  applyPayload(bytes: Uint8Array): boolean {
    let next: SamplingPolicy;
    try {
      next = decodeAgentConfig(bytes);
    } catch (err) {
      return this.reject(err instanceof CodecError ? err.message : String(err));
    }
    return this.apply(next);
  }

  /** Apply an already-decoded policy (validated again here: callers may build it by hand). */
  apply(candidate: unknown): boolean {
    const r = checkSamplingPolicy(candidate);
    if (!r.success) return this.reject(r.error.message);
    const next = r.data;
    if (new Set(next.signals.map((s) => s.path)).size !== next.signals.length) return this.reject('a signal path appears twice');
    if (JSON.stringify(next) === JSON.stringify(this.current)) return true; // retained re-delivery
    this.current = next;
    this.log(`policy: version ${next.version} in force`);
    if (this.persistPath) {
      try {
        writeFileDurable(this.persistPath, JSON.stringify(next));
      } catch (err) {
        this.log(`policy: cannot save ${this.persistPath}: ${(err as Error).message}`);
      }
    }
    for (const fn of this.listeners) fn(next);
    return true;
  }

  private reject(reason: string): false {
    this.rejected++;
    this.lastError = reason;
    this.log(`policy: rejected invalid sampling policy (keeping version ${this.current.version}): ${reason}`);
    return false;
  }
}
