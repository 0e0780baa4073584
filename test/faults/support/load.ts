// Load for the fault cases: vehicles publishing telemetry at QoS 1 with a window of unacknowledged
// batches, as the agent's uplink does, and re-sending every unacknowledged batch after a reconnect
// (at least once). A batch counts as produced once the broker PUBACKed it: from then on ingest owns
// it (docs/contract.md#telemetry-batch), and the ledger expects it in InfluxDB.
import mqtt, { type MqttClient } from 'mqtt';
import type { Ledger } from './ledger.js';

/** No PUBACK on a connection for this long while batches wait: drop it and re-send on a new one. */
const STALL_MS = 10_000;

export interface FleetLoadOptions {
  /** Where to connect; asked again at every (re)connect. */
  url: () => string;
  vins: string[];
  ledger: Ledger;
  bootIndex?: number;
  /** Unacknowledged batches per vehicle (default 8). */
  window?: number;
  /** New batches per vehicle per second (default 10). */
  ratePerVehicle?: number;
  prefix?: string;
  clientOptions?: (vin: string) => mqtt.IClientOptions;
  /** First seq per vehicle (default 1). */
  firstSeq?: number;
}

interface VehicleRun {
  vin: string;
  next: number;
  unacked: Set<number>;
  connects: number;
  /** PUBACKs received (any connection). */
  acks: number;
}

export class FleetLoad {
  private stopping = false;
  private readonly runs: VehicleRun[];
  private readonly loops: Promise<void>[] = [];
  private readonly wakers = new Set<() => void>();

  constructor(private readonly o: FleetLoadOptions) {
    this.runs = o.vins.map((vin) => ({ vin, next: o.firstSeq ?? 1, unacked: new Set(), connects: 0, acks: 0 }));
  }

  start(): this {
    for (const r of this.runs) this.loops.push(this.vehicle(r));
    return this;
  }

  /** Batches handed to the broker so far (acked or not). */
  get sent(): number {
    return this.runs.reduce((n, r) => n + r.next - (this.o.firstSeq ?? 1), 0);
  }

  /** Connections made in all (more than one per vehicle means it reconnected). */
  get connects(): number {
    return this.runs.reduce((n, r) => n + r.connects, 0);
  }

  /** Produce nothing new; resolve once every batch sent has been acknowledged (or reject after `timeoutMs`). */
  async stop(timeoutMs = 120_000): Promise<void> {
    this.stopping = true;
    for (const w of this.wakers) w();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const left = this.runs.reduce((n, r) => n + r.unacked.size, 0);
        const why = this.lastConnectError ? `; last refused connect: ${this.lastConnectError}` : '';
        reject(new Error(`${left} batches still unacknowledged after ${timeoutMs} ms${why}`));
      }, timeoutMs);
    });
    try {
      await Promise.race([Promise.all(this.loops), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wakers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  /** The last refused connect and how many there were (a broker that is down, or a VIN it refuses). */
  lastConnectError: string | undefined;
  connectErrors = 0;
  /**
   * Connections dropped by the load because nothing was acknowledged on them for STALL_MS while
   * batches were waiting (then re-sent on a new one). Reported in the cases' notes: a non-zero
   * count is a finding about ingest (a publish neither acknowledged nor refused), not a loss.
   */
  stalls = 0;

  private async connect(r: VehicleRun): Promise<MqttClient> {
    for (let attempt = 1; ; attempt++) {
      try {
        const c = await mqtt.connectAsync(this.o.url(), {
          clientId: r.vin,
          username: r.vin,
          reconnectPeriod: 0,
          connectTimeout: 3000,
          ...this.o.clientOptions?.(r.vin),
        });
        r.connects++;
        return c;
      } catch (err) {
        this.connectErrors++;
        this.lastConnectError = `${r.vin}: ${(err as Error).message}`;
        // a refusal that never ends is a mistake in the case (e.g. a VIN the broker refuses), not a fault
        if (attempt === 300) console.warn(`fault load: ${this.lastConnectError} (still refused after ${attempt} attempts)`);
        await this.wait(200);
      }
    }
  }

  private async vehicle(r: VehicleRun): Promise<void> {
    const { ledger } = this.o;
    const boot = this.o.bootIndex ?? 0;
    const topic = `${this.o.prefix ?? 'v1'}/vehicles/${r.vin}/telemetry`;
    const window = this.o.window ?? 8;
    const gapMs = 1000 / (this.o.ratePerVehicle ?? 10);
    while (!this.stopping || r.unacked.size > 0) {
      const c = await this.connect(r);
      let open = true;
      c.once('close', () => {
        open = false;
        for (const w of this.wakers) w();
      });
      c.on('error', () => {});
      const send = (seq: number) => {
        c.publishAsync(topic, ledger.batch(r.vin, boot, seq), { qos: 1 }).then(
          () => {
            r.acks++;
            if (r.unacked.delete(seq)) ledger.acked.add(ledger.key(r.vin, boot, seq));
            for (const w of this.wakers) w();
          },
          () => {}, // the connection went: re-sent after the reconnect
        );
      };
      // everything not acknowledged goes again, in order (duplicates are the broker's to drop)
      for (const seq of [...r.unacked].sort((a, b) => a - b)) send(seq);
      let last = 0;
      let progressAt = Date.now();
      let seenAcks = r.acks;
      while (open && (!this.stopping || r.unacked.size > 0)) {
        const now = Date.now();
        if (r.acks !== seenAcks || r.unacked.size === 0) progressAt = now;
        seenAcks = r.acks;
        if (r.unacked.size > 0 && now - progressAt > STALL_MS) {
          this.stalls++;
          console.warn(`fault load: ${r.vin}: no PUBACK for ${STALL_MS} ms with ${r.unacked.size} batches waiting; reconnecting`);
          break;
        }
        if (!this.stopping && r.unacked.size < window && now - last >= gapMs) {
          const seq = r.next++;
          r.unacked.add(seq);
          last = now;
          send(seq);
          continue;
        }
        await this.wait(this.stopping ? 100 : Math.max(1, gapMs - (now - last)));
      }
      c.end(true);
    }
  }
}
