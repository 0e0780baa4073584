// The sampler turns the source's stream of samples into batches.
// - mode 'policy' (live sources: simulated, Kuksa): per signal, send when its period has passed
//   (event time) or when it moved by more than its deadband (enums/booleans: on any change);
//   triggers (new DTC, ignition off, SOC crossing below a threshold) send a full snapshot and
//   flush the batch at once. Location only when the policy enables it, coarsened.
// - mode 'passthrough' (replay): the replay file is already sampled, so every sample goes out
//   unchanged; only batching applies.
import type { Sample, SamplingPolicy, Signals, SignalValue } from '../proto/domain.js';
import { SIGNALS, VSS, isDrivingState, type ValueSignalPath } from '../proto/signals.js';
import type { PolicyStore } from './policy.js';

export type SamplerMode = 'policy' | 'passthrough';

export interface SamplerOptions {
  mode: SamplerMode;
  policy: PolicyStore;
  /** Overrides of the policy's batching (the agent's --batch-max-* flags). */
  batchMaxSamples?: number;
  batchMaxDelayMs?: number;
  /** Receives each batch in order; the next one waits until its promise settles. */
  onBatch: (samples: Sample[]) => Promise<void>;
  onError?: (err: Error) => void;
}

/** Round to the policy's precision (privacy: coarse position only leaves the car). */
export function coarsen(value: number, precisionDeg: number): number {
  if (precisionDeg <= 0) return value;
  const decimals = Math.max(0, Math.ceil(-Math.log10(precisionDeg)) + 1);
  return Number((Math.round(value / precisionDeg) * precisionDeg).toFixed(decimals));
}

interface Sent {
  v: SignalValue;
  ts: number;
}

/** Stateful per-signal filter of 'policy' mode; pure apart from its own memory (testable alone). */
export class PolicyFilter {
  private readonly sent = new Map<ValueSignalPath, Sent>();
  private readonly latest: Signals = {};
  private dtcs: string[] = [];

  /** Returns the sample to send (or undefined) and whether a trigger fired. */
  filter(s: Sample, pol: SamplingPolicy): { sample?: Sample; trigger: boolean } {
    const prev = { ...this.latest };
    Object.assign(this.latest, s.signals);
    const newDtc = !!s.dtcs && s.dtcs.some((c) => !this.dtcs.includes(c));
    const dtcsChanged = !!s.dtcs && (s.dtcs.length !== this.dtcs.length || newDtc);
    let trigger = false;
    for (const t of pol.triggers) {
      if (t.kind === 'new_dtc' && newDtc) trigger = true;
      if (t.kind === 'ignition_off') {
        const now = s.signals[VSS.lowVoltageSystemState];
        if (now !== undefined && isDrivingState(prev[VSS.lowVoltageSystemState]) && !isDrivingState(now)) trigger = true;
      }
      if (t.kind === 'soc_below') {
        const now = s.signals[VSS.soc];
        const before = prev[VSS.soc];
        if (typeof now === 'number' && typeof before === 'number' && before >= t.threshold && now < t.threshold) trigger = true;
      }
    }
    const out: Signals = {};
    let any = false;
    for (const spec of pol.signals) {
      // On a trigger, send the latest value of every enabled signal (context for the cloud).
      let v = trigger ? this.latest[spec.path] : s.signals[spec.path];
      if (v === undefined) continue;
      if (SIGNALS[spec.path].sensitive) {
        if (!pol.locationEnabled) continue;
        if (typeof v === 'number') v = coarsen(v, pol.locationPrecisionDeg);
      }
      const last = this.sent.get(spec.path);
      const due =
        trigger ||
        last === undefined ||
        s.ts - last.ts >= spec.periodMs ||
        (typeof v === 'number' && typeof last.v === 'number' ? spec.deadband > 0 && Math.abs(v - last.v) >= spec.deadband : v !== last.v);
      if (!due) continue;
      out[spec.path] = v;
      this.sent.set(spec.path, { v, ts: s.ts });
      any = true;
    }
    if (s.dtcs) this.dtcs = [...s.dtcs];
    const withDtcs = dtcsChanged || (trigger && this.dtcs.length > 0);
    if (!any && !withDtcs) return { trigger };
    const sample: Sample = { ts: s.ts, signals: out };
    if (withDtcs) sample.dtcs = [...this.dtcs];
    return { sample, trigger };
  }
}

export class Sampler {
  private buf: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  private readonly filter = new PolicyFilter();
  private backlogWaiters: Array<() => void> = [];
  /** Batches handed on and not yet settled (the spool's back-pressure). */
  backlog = 0;
  samplesIn = 0;
  samplesOut = 0;

  constructor(private readonly opts: SamplerOptions) {}

  private get maxSamples(): number {
    return this.opts.batchMaxSamples ?? this.opts.policy.policy.batchMaxSamples;
  }

  private get maxDelayMs(): number {
    return this.opts.batchMaxDelayMs ?? this.opts.policy.policy.batchMaxDelayMs;
  }

  push(s: Sample): void {
    this.samplesIn++;
    let out: Sample | undefined = s;
    let trigger = false;
    if (this.opts.mode === 'policy') ({ sample: out, trigger } = this.filter.filter(s, this.opts.policy.policy));
    if (out) {
      this.buf.push(out);
      this.samplesOut++;
    }
    // flush() never rejects: a failed batch goes to onError
    if (trigger || this.buf.length >= this.maxSamples) void this.flush();
    else if (this.buf.length > 0 && !this.timer) this.timer = setTimeout(() => void this.flush(), this.maxDelayMs);
  }

  /** Hand the current batch on now (trigger, size, timer, or end of input). */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.buf.length > 0) {
      const batch = this.buf;
      this.buf = [];
      this.backlog++;
      this.chain = this.chain
        .then(() => this.opts.onBatch(batch))
        .catch((err: Error) => this.opts.onError?.(err))
        .finally(() => {
          this.backlog--;
          const ws = this.backlogWaiters;
          this.backlogWaiters = [];
          for (const w of ws) w();
        });
    }
    return this.chain;
  }

  /** Resolves when fewer than `max` batches are waiting for the spool. */
  async waitBacklog(max: number): Promise<void> {
    while (this.backlog >= max) await new Promise<void>((r) => this.backlogWaiters.push(r));
  }

  /** Flush what is buffered and wait for every batch handed on so far. */
  async drain(): Promise<void> {
    await this.flush();
  }
}
