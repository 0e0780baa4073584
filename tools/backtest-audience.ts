// `odopulse backtest --audience FILE`: how many vehicles a campaign audience would have reached in a
// past window, and when (docs/domain.md#campaign-targeting). Stored history goes through the rule
// configuration in force exactly as tools/backtest.ts replays it; a vehicle is reached when its
// segments first match the audience (with its profile) inside the window. The first-reach counts per
// UTC day answer "how many last month, and when"; the frequency cap and HMI timing are not replayed.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { matchesAudience } from '../ingest/campaigns/targeting.js';
import type { IngestConfig } from '../ingest/config.js';
import { CampaignAudienceSchema } from '../ingest/http/campaign-schemas.js';
import { loadRulesConfigFile } from '../ingest/pipeline/rules-config.js';
import { createInfluxTelemetryStore } from '../ingest/store/influx/store.js';
import type { CampaignAudience, Stores, TelemetryStore } from '../ingest/store/ports.js';
import { openSqliteStores } from '../ingest/stores.js';
import type { RulesConfig } from '../rules/config.js';
import { createEngine } from '../rules/engine.js';
import type { Segments } from '../rules/types.js';
import { allVins, loadHistory, parseWindow, replayVehicle } from './backtest.js';

export interface AudienceReach {
  vin: string;
  /** When the vehicle first entered the audience in the window (epoch ms), and its segments then. */
  at: number;
  segments: Segments;
}

export interface AudienceBacktest {
  /** Vehicles looked at, and those with readings in the window. */
  vehicles: number;
  withHistory: number;
  reached: AudienceReach[];
  /** UTC day → vehicles first reached that day, and the running total, in day order (days without a first reach left out). */
  byDay: Array<{ day: string; firstReach: number; cumulative: number }>;
}

/** A file holds a plain audience or a whole campaign body (its `audience` is used). */
export function parseAudienceFile(text: string): CampaignAudience {
  const json: unknown = JSON.parse(text);
  const inner = typeof json === 'object' && json !== null && 'audience' in json ? (json as { audience: unknown }).audience : json;
  const r = CampaignAudienceSchema.safeParse(inner);
  if (!r.success) throw new Error(`audience: ${z.prettifyError(r.error)}`);
  return r.data;
}

export async function runAudienceBacktest(
  telemetry: TelemetryStore,
  stores: Pick<Stores, 'vehicles'>,
  opts: { rules: RulesConfig; audience: CampaignAudience; from: number; to: number; vin?: string },
): Promise<AudienceBacktest> {
  const engine = createEngine(opts.rules);
  const vins = opts.vin ? [opts.vin] : await allVins(stores.vehicles);
  const reached: AudienceReach[] = [];
  let withHistory = 0;
  for (const vin of vins) {
    const readings = await loadHistory(telemetry, vin, opts.from, opts.to);
    if (readings.length === 0) continue;
    withHistory++;
    const profile = await stores.vehicles.get(vin);
    const serviceRecords = await stores.vehicles.serviceRecords(vin);
    let first: AudienceReach | undefined;
    replayVehicle(engine, { vin, profile, readings, serviceRecords, to: opts.to }, (segments, at) => {
      if (!first && at >= opts.from && at < opts.to && matchesAudience(opts.audience, vin, profile, segments))
        first = { vin, at, segments };
    });
    if (first) reached.push(first);
  }
  reached.sort((a, b) => a.at - b.at || (a.vin < b.vin ? -1 : 1));
  const perDay = new Map<string, number>();
  for (const r of reached) {
    const day = new Date(r.at).toISOString().slice(0, 10);
    perDay.set(day, (perDay.get(day) ?? 0) + 1);
  }
  let cumulative = 0;
  const byDay = [...perDay.entries()].map(([day, firstReach]) => ({ day, firstReach, cumulative: (cumulative += firstReach) }));
  return { vehicles: vins.length, withHistory, reached, byDay };
}

export async function runAudienceBacktestCli(
  cfg: IngestConfig,
  o: { audience: string; from: string; to: string; vin?: string },
): Promise<number> {
  const opts = { ...o, ...parseWindow(o) };
  const audience = parseAudienceFile(readFileSync(opts.audience, 'utf8'));
  const stores = openSqliteStores(cfg.ODOPULSE_DATA_DIR);
  const telemetry = await createInfluxTelemetryStore({
    url: cfg.INFLUX_URL,
    token: cfg.INFLUX_TOKEN,
    org: cfg.INFLUX_ORG,
    bucket: cfg.INFLUX_BUCKET,
  });
  try {
    const run = await runAudienceBacktest(telemetry, stores, {
      rules: loadRulesConfigFile(cfg.ODOPULSE_RULES_CONFIG),
      audience,
      from: opts.from,
      to: opts.to,
      vin: opts.vin,
    });
    const result = {
      window: { from: new Date(opts.from).toISOString(), to: new Date(opts.to).toISOString() },
      audience,
      vehicles: run.vehicles,
      withHistory: run.withHistory,
      reached: run.reached.length,
      byDay: run.byDay,
      sample: run.reached.slice(0, 50).map((r) => ({ ...r, at: new Date(r.at).toISOString() })),
    };
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return 0;
  } finally {
    await telemetry.close();
    await stores.close();
  }
}
