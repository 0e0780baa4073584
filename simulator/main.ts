// `odopulse simulate`: a seeded fleet on an accelerated clock. Registers profiles through the API,
// then steps every vehicle in a time-sliced loop (no timer per vehicle) and publishes each one's
// readings as TelemetryBatch (QoS 1, per-vehicle increasing seq) with a bound on publishes in flight.
import { randomBytes } from 'node:crypto';
import { setImmediate as yieldNow, setTimeout as sleep } from 'node:timers/promises';
import { encodeTelemetryBatch } from '../proto/codec.js';
import { MAX_SAMPLES_PER_BATCH, type Sample } from '../proto/domain.js';
import { createFleetClock } from './clock.js';
import { createFleet, createFleetVehicleModel } from './fleet.js';
import type { ServiceVisit } from './history.js';
import type { Snapshot } from './vehicle-model.js';
import { startHmiClients, type HmiClients } from './hmi.js';
import { createPublisher, SharedConnectionRefused, type ConnectionMode, type Publisher } from './publisher.js';
import { createApiClient, runBounded, type ApiClient } from './registry.js';
import { formatReplayLine, ReplayWriter, simulateToReplay } from './replay.js';
import { createProgress, formatSummary, type Counters, type Summary } from './report.js';

export { simulateToReplay };
export type { Summary };

export interface SimulateOptions {
  vehicles: number;
  speedup: number;
  seed: number;
  /** Wall time to drive the fleet (from when it is connected). */
  durationMs: number;
  /** MQTT broker URL; empty = do not publish (e.g. only write replay files). */
  broker: string;
  /** Ingest API base URL for profiles and service records; unset = do not register. */
  api?: string;
  /** API key for the ingest API (an operator key: it registers vehicles of every dealer). */
  apiKey?: string;
  /**
   * Simulated time between two periodic readings of a vehicle (default: speed-up x 0.5 s, between
   * 60 s and 1 h). Readings at every change of state (trips, charging, faults) come on top.
   */
  sampleEveryMs?: number;
  connections: ConnectionMode;
  multiplexConnections?: number;
  multiplexUsername?: string;
  /** MQTT password for a username (a VIN in per-vehicle mode). */
  password?: (username: string) => string | undefined;
  writeReplayDir?: string;
  progress?: boolean;
  /** Simulated start time (default: now). */
  start?: number;
  /** Report position (privacy: off by default). */
  location?: boolean;
  maxInFlight?: number;
  prefix?: string;
  /** Do not print the summary or warnings. */
  quiet?: boolean;
  /**
   * Also run a head unit per vehicle (`VIN:hmi`) that confirms prompts and shows, dismisses or acts
   * on campaign messages as the owner's persona would (simulator/hmi.ts). Needs a broker.
   */
  hmi?: boolean;
  signal?: AbortSignal;
}

const SLICE = 256;

/** About two periodic readings per vehicle per wall second, within 1 min .. 1 h of simulated time. */
export function defaultSampleEvery(speedup: number): number {
  return Math.round(Math.min(3_600_000, Math.max(60_000, speedup * 500)));
}
const SWEEP_PAUSE_MS = 20;

function validate(o: SimulateOptions): void {
  const bad = (m: string) => {
    throw new RangeError(`simulate: ${m}`);
  };
  if (!Number.isInteger(o.vehicles) || o.vehicles < 1) bad(`vehicles must be a positive integer, got ${o.vehicles}`);
  if (!Number.isFinite(o.speedup) || o.speedup <= 0) bad(`speedup must be a positive number, got ${o.speedup}`);
  if (!Number.isFinite(o.seed)) bad(`seed must be a number, got ${o.seed}`);
  if (!(o.durationMs >= 0)) bad(`durationMs must be >= 0, got ${o.durationMs}`);
  if (o.sampleEveryMs !== undefined && !(o.sampleEveryMs >= 1000 && Number.isFinite(o.sampleEveryMs)))
    bad(`sampleEveryMs must be at least 1000, got ${o.sampleEveryMs}`);
  if (o.connections !== 'per-vehicle' && o.connections !== 'multiplex')
    bad(`connections must be per-vehicle or multiplex, got ${String(o.connections)}`);
  if (!o.broker && !o.writeReplayDir) bad('nothing to do: give a broker URL or a replay directory');
}

export async function runSimulate(opts: SimulateOptions): Promise<Summary> {
  validate(opts);
  const wall0 = performance.now();
  const start = opts.start ?? Date.now();
  const sampleEvery = opts.sampleEveryMs ?? defaultSampleEvery(opts.speedup);
  const signal = opts.signal;
  const warn = (m: string) => {
    if (!opts.quiet) process.stderr.write(`simulate: ${m}\n`);
  };
  let warned = 0;
  const counters: Counters = { readings: 0, batches: 0, errors: 0 };
  const onError = (err: Error) => {
    counters.errors++;
    if (warned++ < 5) warn(err.message);
  };

  const fleet = createFleet({ vehicles: opts.vehicles, seed: opts.seed, start });
  const vins = fleet.vehicles.map((v) => v.vin);
  let registered = 0;
  let serviceRecords = 0;
  const api: ApiClient | undefined = opts.api ? createApiClient(opts.api, { token: opts.apiKey }) : undefined;
  if (api) {
    // One request first: an API that is not there is a setup mistake, not 10,000 retried failures.
    const [first, ...rest] = fleet.vehicles;
    try {
      await api.putProfile(first.vin, first.profile);
    } catch (err) {
      throw new Error(
        `cannot register vehicles at ${opts.api}: ${(err as Error).message} (is ingest running? omit the API URL to skip registration)`,
      );
    }
    const failed = await runBounded(
      rest,
      16,
      (v) => api.putProfile(v.vin, v.profile),
      (e) => onError(e),
      signal,
    );
    registered = fleet.vehicles.length - failed;
    // The owners' last visit before the simulation started, so schedules begin where they should.
    const withHistory = fleet.vehicles.filter((v) => v.persona.serviceDiscipline !== 'skips');
    await runBounded(
      withHistory,
      16,
      async (v) => {
        const visit = createFleetVehicleModel(fleet, v).initialService;
        if (visit) {
          await api.postServiceRecord(v.vin, visit);
          serviceRecords++;
        }
      },
      (e) => onError(e),
      signal,
    );
  }

  const runTag = randomBytes(4).toString('hex');
  const bootId = (vin: string) => `sim-${runTag}-${vin.slice(-6)}`;
  let clockNow = () => start;
  let connectionMode: ConnectionMode = opts.connections;
  let publisher: Publisher | undefined;
  if (opts.broker && !signal?.aborted) {
    const connect = (mode: ConnectionMode) =>
      createPublisher(
        {
          broker: opts.broker,
          vins,
          mode,
          multiplexConnections: opts.multiplexConnections,
          multiplexUsername: opts.multiplexUsername,
          password: opts.password,
          prefix: opts.prefix,
          maxInFlight: opts.maxInFlight,
          bootId,
          now: () => clockNow(),
          onError,
        },
        signal,
      );
    try {
      publisher = await connect(connectionMode);
    } catch (err) {
      if (!(err instanceof SharedConnectionRefused)) throw err;
      // e.g. ingest's embedded broker: every connection must be a vehicle. Connect them one by one.
      warn(`${err.message}; falling back to one connection per vehicle`);
      connectionMode = 'per-vehicle';
      publisher = await connect(connectionMode);
    }
  }
  const archetypes = new Map(fleet.vehicles.map((v) => [v.vin, v.persona.archetype]));
  const hmi: HmiClients | undefined =
    opts.hmi && opts.broker
      ? startHmiClients({
          broker: opts.broker,
          vins,
          archetypeOf: (vin) => archetypes.get(vin) ?? 'commuter',
          seed: opts.seed,
          prefix: opts.prefix,
          password: opts.password,
          now: () => clockNow(),
          onError,
        })
      : undefined;
  const writer = opts.writeReplayDir ? new ReplayWriter(opts.writeReplayDir) : undefined;
  await writer?.init(vins);

  const N = fleet.vehicles.length;
  const models = fleet.vehicles.map((v) => createFleetVehicleModel(fleet, v, { location: opts.location, transitions: true }));
  const nextDue = new Float64Array(N);
  for (let i = 0; i < N; i++) nextDue[i] = start + Math.floor((i * sampleEvery) / N); // spread readings over the interval
  const seq = new Float64Array(N);
  const lost = new Uint8Array(N);
  const pending: (Sample[] | undefined)[] = new Array(N);
  const maxInFlight = opts.maxInFlight ?? 2000;
  let lostCount = 0;
  let maxTs = start;
  let flushing: Promise<void> | undefined;
  const serviceQueue: [string, ServiceVisit][] = [];
  let servicePosting = 0;

  const clock = createFleetClock({ start, speedup: opts.speedup });
  clockNow = () => clock.now();
  let stopped = signal?.aborted ?? false;
  const stop = () => {
    stopped = true;
  };
  signal?.addEventListener('abort', stop, { once: true });
  const timer = Number.isFinite(opts.durationMs) ? setTimeout(stop, Math.min(opts.durationMs, 2 ** 31 - 1)) : undefined;

  const publishBatch = (i: number, all: Sample[]) => {
    const vin = vins[i];
    for (let from = 0; from < all.length; from += MAX_SAMPLES_PER_BATCH) {
      const samples = all.slice(from, from + MAX_SAMPLES_PER_BATCH);
      let payload: Uint8Array;
      try {
        payload = encodeTelemetryBatch({ vin, bootId: bootId(vin), seq: ++seq[i], samples, dropped: 0 });
      } catch (err) {
        onError(err as Error);
        continue;
      }
      publisher!.publish(vin, 'telemetry', payload).then((sent) => {
        if (sent) counters.batches++;
      }, onError);
    }
  };

  const emit = (i: number, r: Snapshot) => {
    counters.readings++;
    if (r.ts > maxTs) maxTs = r.ts;
    if (publisher) (pending[i] ??= []).push({ ts: r.ts, signals: r.signals, dtcs: r.dtcs });
    if (writer) flushing = writer.add(vins[i], formatReplayLine(vins[i], r)) ?? flushing;
  };

  const pumpServices = () => {
    while (api && servicePosting < 4 && serviceQueue.length > 0) {
      const [vin, visit] = serviceQueue.shift()!;
      servicePosting++;
      api
        .postServiceRecord(vin, visit)
        .then(() => void serviceRecords++, onError)
        .finally(() => {
          servicePosting--;
          pumpServices();
        });
    }
  };

  const stepVehicle = (i: number, simNow: number) => {
    if (lost[i]) return;
    const m = models[i];
    while (nextDue[i] <= simNow && (pending[i]?.length ?? 0) < MAX_SAMPLES_PER_BATCH) {
      const r = m.step(nextDue[i] - m.ts);
      nextDue[i] += sampleEvery;
      if (!r.reporting) {
        lost[i] = 1;
        lostCount++;
        publisher?.retire(vins[i]); // its telematics unit is gone: it falls silent
        break;
      }
      if (r.transitions) for (const x of r.transitions) emit(i, x);
      emit(i, r);
      if (r.service && api) {
        if (serviceQueue.length < 10_000) serviceQueue.push([vins[i], r.service]);
        else onError(new Error(`service record queue full: dropped a visit of ${vins[i]}`));
      }
    }
    const buf = pending[i];
    if (publisher && buf && buf.length > 0 && publisher.inFlight < maxInFlight) {
      pending[i] = undefined;
      publishBatch(i, buf);
    }
  };

  const progress = opts.progress ? createProgress(opts.durationMs) : undefined;
  let lastProgress = 0;
  let cursor = 0;
  try {
    while (!stopped) {
      const simNow = clock.now();
      let sweepEnd = false;
      for (let k = 0; k < SLICE; k++) {
        stepVehicle(cursor, simNow);
        if (++cursor >= N) {
          cursor = 0;
          sweepEnd = true;
          break;
        }
      }
      pumpServices();
      if (flushing) {
        await flushing;
        flushing = undefined;
      }
      if (progress && clock.wallElapsed() - lastProgress >= 500) {
        lastProgress = clock.wallElapsed();
        progress.update({
          connected: publisher?.connected ?? 0,
          total: publisher ? (connectionMode === 'per-vehicle' ? N : Math.min(N, opts.multiplexConnections ?? 4)) : 0,
          simTs: simNow,
          wallMs: lastProgress,
          counters,
        });
      }
      if (sweepEnd) await sleep(SWEEP_PAUSE_MS);
      else await yieldNow();
    }
  } finally {
    if (timer) clearTimeout(timer);
    signal?.removeEventListener('abort', stop);
    progress?.stop();
  }

  // Hand over what was read but not yet published, then close down in order.
  const connectedAtEnd = publisher?.connected ?? 0;
  if (publisher) {
    for (let i = 0; i < N; i++) {
      const buf = pending[i];
      if (buf && buf.length > 0) {
        pending[i] = undefined;
        publishBatch(i, buf);
      }
    }
    await publisher.close(10_000);
  }
  await hmi?.close();
  await writer?.flush();
  const drainUntil = Date.now() + 10_000;
  while ((servicePosting > 0 || serviceQueue.length > 0) && Date.now() < drainUntil) {
    pumpServices();
    await sleep(20);
  }

  const wallMs = performance.now() - wall0;
  const summary: Summary = {
    vehicles: N,
    connections: connectionMode,
    connected: connectedAtEnd,
    lost: lostCount,
    readings: counters.readings,
    batches: counters.batches,
    errors: counters.errors,
    registered,
    serviceRecords,
    simulatedFrom: new Date(start).toISOString(),
    simulatedTo: new Date(maxTs).toISOString(),
    simulatedSpanMs: maxTs - start,
    wallMs,
    msgsPerSec: counters.batches / Math.max(wallMs / 1000, 1e-3),
    readingsPerSec: counters.readings / Math.max(wallMs / 1000, 1e-3),
    ...(writer ? { replayFiles: writer.paths } : {}),
  };
  if (!opts.quiet) process.stdout.write(formatSummary(summary));
  return summary;
}
