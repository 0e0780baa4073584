// What the instance a car is connected to knows of it in cluster mode (docs/architecture.md#cluster-mode):
// the rules for a vehicle run on its partition's owner, which may be another instance, but the HMI
// timing (parked? docs/domain.md#hmi-timing) is decided where the car's connection is. So the edge
// keeps each connected vehicle's latest signals from the batches it accepted, and tells the HMI
// delivery when a vehicle with prompts held back (driving, quiet hours) sends new telemetry.
import type { Reading, Signals } from '../../proto/domain.js';
import { DecodedCache } from '../journal/decoded-cache.js';

const MAX_VEHICLES = 200_000;

export class EdgeView extends DecodedCache {
  private readonly latestByVin = new Map<string, { ts: number; signals: Signals }>();

  constructor(private readonly onTelemetry: (vin: string) => void) {
    super();
  }

  override put(vin: string, seq: number, readings: Reading[], bootId = ''): void {
    super.put(vin, seq, readings, bootId);
    let cur = this.latestByVin.get(vin);
    for (const r of readings) {
      if (!cur) cur = { ts: r.ts, signals: {} };
      // a late batch does not overwrite what is newer
      if (r.ts >= cur.ts) {
        Object.assign(cur.signals, r.signals);
        cur.ts = r.ts;
      }
    }
    if (cur) {
      this.latestByVin.delete(vin); // re-inserted last: the map's order is least recently heard first
      this.latestByVin.set(vin, cur);
      if (this.latestByVin.size > MAX_VEHICLES) this.latestByVin.delete(this.latestByVin.keys().next().value!);
    }
    this.onTelemetry(vin);
  }

  latest(vin: string): Signals | undefined {
    return this.latestByVin.get(vin)?.signals;
  }
}
