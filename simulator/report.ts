// What a simulation run tells its operator: a live progress line (cli-progress) and the summary.
import cliProgress from 'cli-progress';

export interface Summary {
  vehicles: number;
  /** The connection mode used (multiplex falls back to per-vehicle when the broker refuses it). */
  connections: 'per-vehicle' | 'multiplex';
  /** Vehicles with a live MQTT connection at the end of the run (per-vehicle) or shared connections up. */
  connected: number;
  /** Vehicles that stopped reporting (lost personas). */
  lost: number;
  readings: number;
  batches: number;
  errors: number;
  registered: number;
  serviceRecords: number;
  simulatedFrom: string;
  simulatedTo: string;
  simulatedSpanMs: number;
  wallMs: number;
  msgsPerSec: number;
  readingsPerSec: number;
  replayFiles?: string[];
}

export interface Counters {
  readings: number;
  batches: number;
  errors: number;
}

export interface ProgressView {
  update(v: { connected: number; total: number; simTs: number; wallMs: number; counters: Counters }): void;
  stop(): void;
}

export function createProgress(durationMs: number): ProgressView {
  const bar = new cliProgress.SingleBar(
    {
      format:
        'simulate |{bar}| {percentage}% | {connected}/{total} connected | {rate} msg/s | {readings} readings | {errors} errors | sim {sim}',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const finite = Number.isFinite(durationMs) && durationMs > 0;
  bar.start(finite ? Math.ceil(durationMs / 1000) : 1, 0, { connected: 0, total: 0, rate: 0, readings: 0, errors: 0, sim: '-' });
  let lastBatches = 0;
  let lastWall = 0;
  return {
    update({ connected, total, simTs, wallMs, counters }) {
      const dt = (wallMs - lastWall) / 1000;
      const rate = dt > 0 ? Math.round((counters.batches - lastBatches) / dt) : 0;
      lastBatches = counters.batches;
      lastWall = wallMs;
      bar.update(finite ? Math.min(Math.floor(wallMs / 1000), Math.ceil(durationMs / 1000)) : 0, {
        connected,
        total,
        rate,
        readings: counters.readings,
        errors: counters.errors,
        sim: new Date(simTs).toISOString().slice(0, 16).replace('T', ' '),
      });
    },
    stop: () => bar.stop(),
  };
}

function span(ms: number): string {
  const d = Math.floor(ms / 86_400_000);
  const h = Math.floor((ms % 86_400_000) / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  return d > 0 ? `${d}d ${h}h ${m}m` : `${h}h ${m}m`;
}

export function formatSummary(s: Summary): string {
  const lines = [
    'simulation summary',
    `  vehicles         ${s.vehicles} (${s.lost} lost, ${s.connected} ${s.connections === 'multiplex' ? 'shared connections' : 'connected'} at end)`,
    `  registered       ${s.registered} profiles, ${s.serviceRecords} service records`,
    `  readings         ${s.readings}`,
    `  batches          ${s.batches}`,
    `  errors           ${s.errors}`,
    `  simulated span   ${span(s.simulatedSpanMs)} (${s.simulatedFrom} .. ${s.simulatedTo})`,
    `  wall time        ${(s.wallMs / 1000).toFixed(1)} s`,
    `  throughput       ${s.msgsPerSec.toFixed(1)} msgs/s, ${s.readingsPerSec.toFixed(1)} readings/s`,
  ];
  if (s.replayFiles) lines.push(`  replay files     ${s.replayFiles.length}`);
  return lines.join('\n') + '\n';
}
