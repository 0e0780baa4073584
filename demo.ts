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
async function demoKeys(dataDir: string): Promise<{ operator: string; simulator: string; lifecycle: string }> {
  const backend = openSqliteBackend(dataDir);
  try {
    const now = Date.now();
    for (const k of await backend.keys.list()) if (k.createdBy === 'demo' && k.revokedAt === null) await backend.keys.revoke(k.id, now);
    const make = async (name: string, permissions: Array<'location:read'>, role: 'operator' | 'lifecycle' = 'operator') =>
      (await createApiKey(backend.keys, { name, role, dealers: [], permissions, expiresAt: null, createdBy: 'demo' }, now)).token;
    return {
      operator: await make('demo operator', ['location:read']),
      simulator: await make('demo simulator', []),
      lifecycle: await make('demo CRM', [], 'lifecycle'),
    };
  } finally {
    await backend.close();
  }
}

const DAY = 86_400_000;

/**
 * The two example campaigns of the seeds' playbook (docs/domain.md#campaigns), created by the CRM's
 * key as the lifecycle system would: a new-owner camp for novices and a wake-up for dormant owners.
 * They run a simulated year from now; the fleet's head units answer them (simulator/hmi.ts).
 */
async function demoCampaigns(api: string, key: string): Promise<string[]> {
  const now = Date.now();
  const window = { startsAt: new Date(now - DAY).toISOString(), endsAt: new Date(now + 400 * DAY).toISOString() };
  const campaigns = [
    {
      name: 'New-owner camp',
      audience: { stage: ['new_owner', 'break_in'], maturity: ['novice'] },
      message: {
        'zh-CN': { title: '新车主训练营', body: '本周六上午在您的经销店：用车、充电与智能功能一次讲清，还有免费检测。' },
        en: {
          title: 'New-owner camp',
          body: 'Saturday morning at your dealer: driving, charging and smart features explained, with a free check.',
        },
      },
      actions: [{ id: 'join', label: { 'zh-CN': '报名参加', en: 'Sign up' } }],
      priority: 6,
      ...window,
    },
    {
      name: 'Dormant-owner wake-up',
      audience: { activity: ['dormant'] },
      message: {
        'zh-CN': { title: '好久不见', body: '您的爱车已经休息一段时间了。预约一次免费检测，12V 蓄电池和轮胎一起查。' },
        en: { title: 'We miss you', body: 'Your car has been resting for a while. Book a free check: 12 V battery and tyres included.' },
      },
      actions: [{ id: 'book_service', label: { 'zh-CN': '预约检测', en: 'Book a check' } }],
      priority: 4,
      frequencyCap: { perVehicle: 2, perDays: 30 },
      ...window,
    },
  ];
  const headers = { authorization: `Bearer ${key}` };
  // a data dir kept from an earlier run has them already (running or paused): not twice
  const listed = await fetch(`${api}/api/v1/campaigns?limit=500`, { headers });
  const existing = listed.ok ? ((await listed.json()) as { items: Array<{ name: string; status: string }> }).items : [];
  const live = new Set(existing.filter((c) => !['cancelled', 'ended'].includes(c.status)).map((c) => c.name));
  const made: string[] = [];
  for (const c of campaigns) {
    if (live.has(c.name)) {
      made.push(c.name);
      continue;
    }
    const r = await fetch(`${api}/api/v1/campaigns`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(c),
    });
    if (r.ok) made.push(c.name);
    else process.stderr.write(`demo: campaign ${c.name} refused: ${r.status} ${await r.text()}\n`);
  }
  return made;
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
  const keys = await demoKeys(cfg.ODOPULSE_DATA_DIR);
  const ingest = await startIngest(cfg);
  const api = `http://127.0.0.1:${ingest.httpPort}`;
  const campaigns = await demoCampaigns(api, keys.lifecycle);
  process.stdout.write(
    `\nodopulse demo\n  console   http://localhost:${ingest.httpPort}/\n  sign in   ${keys.operator}\n            (an operator key, made for this run; more: odopulse keys create --role advisor --dealer DLR-SH-001)\n` +
      `  API       curl -H 'Authorization: Bearer <key>' ${api}/api/v1/prompts\n  OpenAPI   ${api}/openapi.json\n  MQTT      mqtt://localhost:${ingest.mqttPort}\n` +
      `  fleet     ${opts.vehicles} simulated vehicles, ${opts.speedup}x time, head units answering campaign messages\n` +
      `  campaigns ${campaigns.join(', ') || 'none'} (console: Campaigns; CRM key ${keys.lifecycle})\n  Ctrl-C to stop.\n\n`,
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
    hmi: true,
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
