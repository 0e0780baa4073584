// Simulated source: wraps the simulator's vehicle model (simulator/vehicle-model.ts,
// `createVehicleModel({vin, seed, powertrain, startTs}).step(dtMs) -> {ts, signals, dtcs}`),
// stepping it every `stepMs` of model time, paced at `speed` x real time (0 = flat out).
import { setTimeout as sleep } from 'node:timers/promises';
import { checkSignals } from '../../proto/checks.js';
import type { Powertrain, Sample, SignalValue, Signals } from '../../proto/domain.js';
import { createVehicleModel } from '../../simulator/vehicle-model.js';
import type { SignalSource } from './source.js';

export interface VehicleModelLike {
  step(dtMs: number): { ts: number; signals: Record<string, SignalValue | undefined>; dtcs?: string[]; reporting?: boolean };
}
export type VehicleModelFactory = (opts: {
  vin: string;
  seed: number;
  powertrain: Powertrain;
  startTs: number;
  location?: boolean;
}) => VehicleModelLike;

export interface SimulatedSourceOptions {
  vin: string;
  seed: number;
  powertrain: Powertrain;
  startTs: number;
  stepMs: number;
  /** Time acceleration: model ms per wall ms (1 = real time, 0 = as fast as possible). */
  speed: number;
  /** Stop after this many steps (tests, bench); unbounded by default. */
  maxSteps?: number;
  /** Injected model factory; default: the simulator's createVehicleModel. */
  factory?: VehicleModelFactory;
}

export class SimulatedSource implements SignalSource {
  private stopping = false;
  private readonly abort = new AbortController();
  private resolveDone!: () => void;
  readonly done: Promise<void>;
  steps = 0;

  constructor(private readonly o: SimulatedSourceOptions) {
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  async start(onSample: (s: Sample) => void): Promise<void> {
    const factory: VehicleModelFactory = this.o.factory ?? createVehicleModel;
    // The model reports position; whether it leaves the car is the sampling policy's decision.
    const model = factory({ vin: this.o.vin, seed: this.o.seed, powertrain: this.o.powertrain, startTs: this.o.startTs, location: true });
    void this.run(model, onSample).finally(() => this.resolveDone());
  }

  private async run(model: VehicleModelLike, onSample: (s: Sample) => void): Promise<void> {
    const t0 = Date.now();
    while (!this.stopping && (this.o.maxSteps === undefined || this.steps < this.o.maxSteps)) {
      const out = model.step(this.o.stepMs);
      this.steps++;
      if (out.reporting === false) break; // the simulated telematics unit is gone ('lost' vehicle)
      const signals = Object.fromEntries(Object.entries(out.signals).filter(([, v]) => v !== undefined));
      const parsed = checkSignals<Signals>(signals);
      if (parsed.success) onSample({ ts: out.ts, signals: parsed.data, ...(out.dtcs ? { dtcs: out.dtcs } : {}) });
      const due = this.o.speed > 0 ? t0 + (this.steps * this.o.stepMs) / this.o.speed : 0;
      const wait = due - Date.now();
      try {
        if (wait > 0) await sleep(wait, undefined, { signal: this.abort.signal });
        else if (this.steps % 100 === 0) await new Promise((r) => setImmediate(r)); // let I/O run when flat out
      } catch {
        break;
      }
    }
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.abort.abort();
    if (this.steps === 0) this.resolveDone();
    await this.done;
  }
}
