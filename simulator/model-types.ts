// The vehicle model's public shape: what H6's simulated agent source and the fleet runner use.
import type { Powertrain, Signals } from '../proto/domain.js';
import type { ServiceVisit } from './history.js';
import type { Persona, VehicleType } from './persona.js';

export type { ServiceVisit } from './history.js';

export interface VehicleModelOptions {
  vin: string;
  seed: number;
  powertrain: Powertrain;
  vehicleType?: VehicleType;
  startTs: number;
  persona?: Persona;
  /** Delivery time (default: drawn from the seed, up to ~4 years before startTs). */
  deliveryTs?: number;
  /** Report Vehicle.CurrentLocation (privacy: off by default). */
  location?: boolean;
  /**
   * Also return a reading at each change of state (trip start/end, charging start/end, a fault
   * code appearing or clearing), so coarse periodic sampling still shows every session and event.
   */
  transitions?: boolean;
}

export interface Snapshot {
  ts: number;
  signals: Signals;
  dtcs: string[];
}

export interface StepResult extends Snapshot {
  /** False once the vehicle is lost: its telematics unit no longer reports. */
  reporting: boolean;
  /** A dealer visit that completed during this step (the simulator POSTs it). */
  service?: ServiceVisit;
  /** With `transitions`: readings at state changes since the previous step, oldest first, all before `ts`. */
  transitions?: Snapshot[];
}

export interface VehicleModel {
  step(dtMs: number): StepResult;
  readonly ts: number;
  readonly vin: string;
  readonly powertrain: Powertrain;
  readonly persona: Persona;
  readonly deliveryTs: number;
  /** The last service visit before the simulation started, if the owner had one. */
  readonly initialService?: ServiceVisit;
}
