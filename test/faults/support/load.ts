// Load for the fault cases: vehicles publishing telemetry at QoS 1 with a window of unacknowledged
// batches, as the agent's uplink does, and re-sending every unacknowledged batch after a reconnect
// (at least once). A batch counts as produced once the broker PUBACKed it: from then on ingest owns
// it (docs/contract.md#telemetry-batch), and the ledger expects it in InfluxDB.
import mqtt, { type MqttClient } from 'mqtt';
import type { Ledger } from './ledger.js';

/** mqtt.js's connectAsync rejection (allowRetries false) for a connection closed before its CONNACK. */
const CLOSED_BEFORE_CONNACK = "Couldn't connect to server";

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

/** What the load did with one batch: for a failure message (FleetLoad.explain). */
interface SeqTrace {
  /** Times handed to a connection (1 + re-sends). */
  sends: number;
  /** Connections (numbered per vehicle, 1 = its first) it was sent on, in order. */
  conns: number[];
  lastSentAt: number;
  /** Why its last publish failed (the connection closed before its PUBACK, ...). */
  lastError?: string;
  /** The connection its PUBACK came on. */
  ackedOn?: number;
}

/** Where a vehicle's loop is: connecting (attempt n), on an open connection, or finished. */
type LoopState =
  | { at: 'connecting'; since: number; attempt: number }
  | { at: 'connected'; since: number; conn: number; closedAt?: number }
  | { at: 'ended'; since: number }
  | { at: 'failed'; since: number; error: string };

interface VehicleRun {
  vin: string;
  next: number;
  unacked: Set<number>;
  connects: number;
  /** PUBACKs received (any connection). */
  acks: number;
  state: LoopState;
  /** The vehicle's last refused connect, connection error or close. */
  lastError?: string;
  lastAckAt?: number;
  trace: Map<number, SeqTrace>;
}

export class FleetLoad {
  private stopping = false;
  private readonly runs: VehicleRun[];
  private readonly loops: Promise<void>[] = [];
  private readonly wakers = new Set<() => void>();

  constructor(private readonly o: FleetLoadOptions) {
    this.runs = o.vins.map((vin) => ({
      vin,
      next: o.firstSeq ?? 1,
      unacked: new Set(),
      connects: 0,
      acks: 0,
      state: { at: 'connecting', since: Date.now(), attempt: 0 },
      trace: new Map(),
    }));
  }

  start(): this {
    for (const r of this.runs) {
      const loop = this.vehicle(r);
      loop.then(
        () => (r.state = { at: 'ended', since: Date.now() }),
        (err: Error) => {
          r.state = { at: 'failed', since: Date.now(), error: err?.message ?? String(err) };
          throw err; // still reported (unhandled) as before
        },
      );
      this.loops.push(loop);
    }
    return this;
  }

  /**
   * What the load knows about these batches (of its boot): for each, sent
   * or not, how often, on which connections, its last error, acknowledged on which; and for its
   * vehicle, where the loop is (connecting since when, on which connection, ended), its last error and
   * last PUBACK. For the failure message of a wait that never saw them acknowledged.
   */
  explain(batches: Array<{ vin: string; seq: number }>): string {
    const now = Date.now();
    const ago = (t: number | undefined) => (t === undefined ? 'never' : `${((now - t) / 1000).toFixed(1)} s ago`);
    const byVin = new Map<string, number[]>();
    for (const b of batches) byVin.set(b.vin, [...(byVin.get(b.vin) ?? []), b.seq]);
    const lines: string[] = [];
    for (const [vin, seqs] of byVin) {
      const r = this.runs.find((x) => x.vin === vin);
      if (!r) continue; // another load's (cluster cases run one per instance)
      const st = r.state;
      const where =
        st.at === 'connecting'
          ? `connecting (attempt ${st.attempt}) since ${ago(st.since)}`
          : st.at === 'connected'
            ? `on connection #${st.conn} since ${ago(st.since)}${st.closedAt ? ` (closed ${ago(st.closedAt)}, not left yet)` : ' (open)'}`
            : st.at === 'failed'
              ? `loop FAILED ${ago(st.since)}: ${st.error}`
              : `loop ended ${ago(st.since)}`;
      const unacked = [...r.unacked].sort((a, b) => a - b);
      lines.push(
        `${vin}: ${where}; ${r.connects} connections, next seq ${r.next}, ${r.acks} PUBACKs (last ${ago(r.lastAckAt)}), ` +
          `${unacked.length} unacked [${unacked.slice(0, 10).join(', ')}${unacked.length > 10 ? ', …' : ''}]` +
          (r.lastError ? `, last error: ${r.lastError}` : ''),
      );
      for (const seq of seqs.sort((a, b) => a - b)) {
        const t = r.trace.get(seq);
        if (!t) {
          lines.push(`  seq ${seq}: never sent${seq >= r.next ? ` (not produced yet: next is ${r.next})` : ''}`);
          continue;
        }
        lines.push(
          `  seq ${seq}: sent ${t.sends}× on connection${t.conns.length > 1 ? 's' : ''} #${t.conns.join(', #')}, last ${ago(t.lastSentAt)}` +
            (t.ackedOn !== undefined
              ? `, PUBACK on #${t.ackedOn}`
              : r.unacked.has(seq)
                ? ', no PUBACK (unacked)'
                : ', not in unacked, no PUBACK') +
            (t.lastError ? `, last publish error: ${t.lastError}` : ''),
        );
      }
    }
    return lines.join('\n');
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
        // every vehicle whose loop has not ended, with its first unacknowledged batches
        const running = this.runs.filter((r) => r.state.at !== 'ended');
        const detail = this.explain(
          running.flatMap((r) =>
            [...r.unacked]
              .sort((a, b) => a - b)
              .slice(0, 3)
              .map((seq) => ({ vin: r.vin, seq })),
          ),
        );
        const idle = running.filter((r) => r.unacked.size === 0).map((r) => `${r.vin}: ${r.state.at}, nothing unacked`);
        reject(
          new Error(
            `${left} batches still unacknowledged after ${timeoutMs} ms${why}; ${running.length} vehicle loops not ended\n${[detail, ...idle].filter((x) => x).join('\n')}`,
          ),
        );
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
  /**
   * Connects whose connection closed before its CONNACK, without an error (ingest killed after
   * reading the CONNECT): retried like any refused connect. Before connectAsync's allowRetries was
   * false each of these stopped its vehicle for good.
   */
  closedBeforeConnack = 0;
  /** Refused connects by error message (ECONNREFUSED while ingest is down, resets, timeouts, ...). */
  readonly connectErrorKinds = new Map<string, number>();

  private async connect(r: VehicleRun): Promise<MqttClient> {
    for (let attempt = 1; ; attempt++) {
      r.state = { at: 'connecting', since: r.state.at === 'connecting' ? r.state.since : Date.now(), attempt };
      try {
        // allowRetries false: a connection closed before its CONNACK rejects. Without it mqtt.js
        // (reconnectPeriod 0) only emits 'close' there, and clears its connect timeout on it, so the
        // promise never settled and this vehicle's loop stopped for good: ingest killed after reading
        // a CONNECT and before answering it closes with a FIN (nothing unread: no reset, no error).
        const c = await mqtt.connectAsync(
          this.o.url(),
          {
            clientId: r.vin,
            username: r.vin,
            reconnectPeriod: 0,
            connectTimeout: 3000,
            ...this.o.clientOptions?.(r.vin),
          },
          false,
        );
        r.connects++;
        r.state = { at: 'connected', since: Date.now(), conn: r.connects };
        return c;
      } catch (err) {
        this.connectErrors++;
        if ((err as Error).message === CLOSED_BEFORE_CONNACK) this.closedBeforeConnack++;
        const kind = (err as Error).message.replace(/\d+\.\d+\.\d+\.\d+:\d+/, 'host:port');
        this.connectErrorKinds.set(kind, (this.connectErrorKinds.get(kind) ?? 0) + 1);
        this.lastConnectError = `${r.vin}: ${(err as Error).message}`;
        r.lastError = `connect attempt ${attempt}: ${(err as Error).message}`;
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
      const conn = r.connects;
      let open = true;
      c.once('close', () => {
        open = false;
        const prefix = `connection #${conn}:`;
        r.lastError = r.lastError?.startsWith(prefix) ? `${r.lastError}, then closed` : `connection #${conn} closed`;
        if (r.state.at === 'connected' && r.state.conn === conn) r.state.closedAt = Date.now();
        for (const w of this.wakers) w();
      });
      c.on('error', (err) => (r.lastError = `connection #${conn}: ${err.message}`));
      const send = (seq: number) => {
        let t = r.trace.get(seq);
        if (!t) r.trace.set(seq, (t = { sends: 0, conns: [], lastSentAt: 0 }));
        t.sends++;
        if (t.conns.length < 20) t.conns.push(conn);
        t.lastSentAt = Date.now();
        const trace = t;
        c.publishAsync(topic, ledger.batch(r.vin, boot, seq), { qos: 1 }).then(
          () => {
            r.acks++;
            r.lastAckAt = Date.now();
            trace.ackedOn ??= conn;
            if (r.unacked.delete(seq)) ledger.acked.add(ledger.key(r.vin, boot, seq));
            for (const w of this.wakers) w();
          },
          (err: Error) => (trace.lastError = `#${conn}: ${err?.message ?? String(err)}`), // the connection went: re-sent after the reconnect
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
