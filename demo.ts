// `npm start` / `odopulse demo`: the whole stack on one machine — InfluxDB (a local influxd is started
// when none answers), the embedded broker, ingest, rules, a simulated fleet and the advisor console.
import { join } from 'node:path';
import { loadIngestConfig } from './ingest/config.js';
import { startIngest } from './ingest/main.js';
import { startLocalInfluxd } from './tools/influxd-local.js';
import { runSimulate } from './simulator/main.js';
import { openSqliteBackend } from './ingest/store/index.js';
import { createApiKey } from './ingest/auth/keys.js';

async function reachable(url: string): Promise<boolean> {
  try {
    const r = await fetch(new URL('/ping', url), { signal: AbortSignal.timeout(1500) });
    return r.status === 204 || r.ok;
  } catch {
    return false;
  }
}

/** An InfluxDB 1.x already running here (e.g. Debian's service) may not have the database yet. */
async function ensureV1Database(url: string, bucket: string): Promise<void> {
  const db = bucket.split('/')[0];
  try {
    await fetch(new URL('/query', url), {
      method: 'POST',
      body: new URLSearchParams({ q: `CREATE DATABASE "${db.replace(/["\\]/g, '\\$&')}"` }),
      signal: AbortSignal.timeout(3000),
    });
  } catch {
    /* 2.x or unreachable: ingest reports what is wrong */
  }
}

/**
 * The demo's own keys, made fresh on every start (the old ones revoked): an operator key to sign in
 * to the console, printed below, and one for the simulator. Keys are stored hashed, so a key
 * printed by an earlier run cannot be shown again; nothing ships with a default password.
 */
function demoKeys(dataDir: string): { operator: string; simulator: string } {
  const backend = openSqliteBackend(dataDir);
  try {
    const now = Date.now();
    for (const k of backend.keys.list()) if (k.createdBy === 'demo' && k.revokedAt === null) backend.keys.revoke(k.id, now);
    const make = (name: string, permissions: Array<'location:read'>) =>
      createApiKey(backend.keys, { name, role: 'operator', dealers: [], permissions, expiresAt: null, createdBy: 'demo' }, now).token;
    return { operator: make('demo operator', ['location:read']), simulator: make('demo simulator', []) };
  } finally {
    backend.close();
  }
}

export async function runDemo(
  opts: { vehicles: string; speedup: string; seed: string },
  flags: Record<string, string | undefined>,
  onSignals: (stop: () => Promise<unknown>) => void,
): Promise<void> {
  // Accelerated time: the fleet clock follows the simulated readings, and sweeps run every 2 s.
  const env: NodeJS.ProcessEnv = { ODOPULSE_CLOCK: 'event', ODOPULSE_SWEEP_MS: '2000', ...process.env };
  let cfg = loadIngestConfig(env, flags);
  let influx: Awaited<ReturnType<typeof startLocalInfluxd>> | undefined;
  if (!env.INFLUX_URL && !flags.INFLUX_URL && !(await reachable(cfg.INFLUX_URL))) {
    influx = await startLocalInfluxd({ dataDir: join(cfg.ODOPULSE_DATA_DIR, 'influxdb'), database: cfg.INFLUX_BUCKET });
    process.stdout.write(`demo: started influxd at ${influx.url} (data in ${join(cfg.ODOPULSE_DATA_DIR, 'influxdb')})\n`);
    cfg = loadIngestConfig(env, { ...flags, INFLUX_URL: influx.url });
  } else if (!env.INFLUX_TOKEN) await ensureV1Database(cfg.INFLUX_URL, cfg.INFLUX_BUCKET);
  const keys = demoKeys(cfg.ODOPULSE_DATA_DIR);
  const ingest = await startIngest(cfg);
  const api = `http://127.0.0.1:${ingest.httpPort}`;
  process.stdout.write(
    `\nodopulse demo\n  console   http://localhost:${ingest.httpPort}/\n  sign in   ${keys.operator}\n            (an operator key, made for this run; more: odopulse keys create --role advisor --dealer DLR-SH-001)\n` +
      `  API       curl -H 'Authorization: Bearer <key>' ${api}/api/v1/prompts\n  OpenAPI   ${api}/openapi.json\n  MQTT      mqtt://localhost:${ingest.mqttPort}\n` +
      `  fleet     ${opts.vehicles} simulated vehicles, ${opts.speedup}x time\n  Ctrl-C to stop.\n\n`,
  );
  const ac = new AbortController();
  const sim = runSimulate({
    vehicles: Number(opts.vehicles),
    speedup: Number(opts.speedup),
    seed: Number(opts.seed),
    durationMs: 365 * 86_400_000,
    broker: `mqtt://127.0.0.1:${ingest.mqttPort}`,
    api,
    apiKey: keys.simulator,
    connections: 'per-vehicle',
    progress: false,
    signal: ac.signal,
  }).catch((err: unknown) => process.stderr.write(`demo: simulator stopped: ${(err as Error).message}\n`));
  onSignals(async () => {
    ac.abort();
    await sim;
    await ingest.stop();
    await influx?.stop();
  });
}
