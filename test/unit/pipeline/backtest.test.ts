// `odopulse backtest` replays a vehicle's history as production applies it: the same per-vehicle
// sequence as the rules pool, the vehicle's service records at their dates, daily sweeps. A serviced
// vehicle then gets the maintenance prompts RulesRunner gave it in production.
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../../ingest/metrics.js';
import { RulesRunner } from '../../../ingest/pipeline/rules-runner.js';
import { MemoryTelemetryStore } from '../../../ingest/store/memory/telemetry.js';
import type { Stores } from '../../../ingest/store/ports.js';
import { createMemoryStores } from '../../../ingest/stores.js';
import type { Reading, Sample } from '../../../proto/domain.js';
import { VSS } from '../../../proto/signals.js';
import { DEFAULT_RULES_CONFIG } from '../../../rules/config.js';
import { createEngine } from '../../../rules/engine.js';
import type { Detector, ServiceRecord } from '../../../rules/types.js';
import { loadHistory, replayVehicle, runBacktest, type BacktestPrompt } from '../../../tools/backtest.js';
import { DAY, HOUR, MIN, VIN_A, bev, entry, memoryLog, rulesPoolFixture } from './harness.js';

const FROM = Date.parse('2026-02-01T00:00:00Z');
const DAYS = 80;
const TO = FROM + DAYS * DAY;
const SERVICE_DAY = 28; // 2026-03-01
const VISIT: ServiceRecord = { date: '2026-03-01', odometer: 4400, items: ['inspection', 'cabin_filter'] };

const fixture = rulesPoolFixture();

/**
 * 80 days of a BEV delivered on 2026-01-15 (first service at 5,000 km): 50 km a day from 3,000 km,
 * a drive at 09:00 and parked at 09:20; on the first day also a reading at 08:00 (so the daily
 * sweeps run at 08:00). The upcoming first service shows at 4,000 km (day 20); without the visit
 * on day 28 it would fall due at 5,000 km (day 40) and be overdue at 6,000 km (day 60).
 */
function day(d: number): Sample[] {
  const t = FROM + d * DAY;
  const odo = 3000 + 50 * d;
  const drive: Sample = {
    ts: t + 9 * HOUR,
    signals: { [VSS.odometer]: odo, [VSS.speed]: 40, [VSS.lowVoltageSystemState]: 'ON', [VSS.soc]: 70 },
  };
  const park: Sample = {
    ts: t + 9 * HOUR + 20 * MIN,
    signals: { [VSS.odometer]: odo + 10, [VSS.speed]: 0, [VSS.lowVoltageSystemState]: 'OFF', [VSS.soc]: 66, [VSS.isCharging]: false },
  };
  if (d > 0) return [drive, park];
  return [
    { ts: t + 8 * HOUR, signals: { [VSS.odometer]: odo - 5, [VSS.speed]: 0, [VSS.lowVoltageSystemState]: 'OFF', [VSS.soc]: 71 } },
    drive,
    park,
  ];
}

const asReadings = (vin: string, samples: Sample[]): Reading[] => samples.map((s) => ({ vin, ts: s.ts, signals: s.signals }));
const maintenance = (ps: { kind: string; dedupKey: string }[]) =>
  ps.filter((p) => p.kind.startsWith('maintenance.')).map((p) => `${p.kind} ${p.dedupKey}`);

/**
 * Production: the history through RulesRunner and the rules pool, as ingest applies it — a journal
 * entry per day, the visit posted on its day (06:00) when the advisor records it, a sweep every day
 * at 08:00 followed by prompt expiry (ingest/main.ts). Returns the stores; the history is also
 * written to `telemetry`, as the pipeline's InfluxDB loop would.
 */
async function production(telemetry: MemoryTelemetryStore): Promise<Stores> {
  const stores = createMemoryStores();
  await stores.vehicles.upsert(VIN_A, bev({ deliveryDate: '2026-01-15' }), FROM);
  let now = FROM;
  const clock = { mode: 'event' as const, observe: () => {}, horizon: () => Infinity, now: () => now };
  const rules = await RulesRunner.open({ pool: fixture.pool, stores, clock, metrics: createMetrics(), webhookUrls: [], log: memoryLog() });
  const tags = () => ({ model: 'Aurora', powertrain: 'BEV', dealer: 'D001' });
  for (let d = 0; d < DAYS; d++) {
    if (d === SERVICE_DAY) {
      now = FROM + d * DAY + 6 * HOUR;
      // production stores the visit and applies it in one transaction
      await rules.serviceRecord(VIN_A, VISIT);
    }
    if (d > 0) {
      now = FROM + d * DAY + 8 * HOUR;
      await rules.sweep();
      await stores.prompts.expire(now);
    }
    const samples = day(d);
    now = samples[samples.length - 1].ts;
    await rules.applyEntries([entry(d + 1, VIN_A, samples)]);
    await telemetry.write(asReadings(VIN_A, samples), tags);
  }
  await telemetry.flush();
  return stores;
}

describe('backtest', () => {
  it('gives a serviced vehicle the maintenance prompts production gave it, which it would not without the visit', async () => {
    const telemetry = new MemoryTelemetryStore();
    const stores = await production(telemetry);
    const inProduction = (await stores.prompts.list({ vin: VIN_A, limit: 100 })).items.sort((a, b) =>
      a.createdAt.localeCompare(b.createdAt),
    );
    expect(maintenance(inProduction)).toEqual([
      `maintenance.upcoming ${VIN_A}:maintenance.upcoming:c0`,
      `maintenance.followup ${VIN_A}:maintenance.followup:c1`,
    ]);

    const run = await runBacktest(telemetry, stores, {
      candidate: DEFAULT_RULES_CONFIG,
      inForce: DEFAULT_RULES_CONFIG,
      from: FROM,
      to: TO,
    });
    expect(run.vehicles).toBe(1);
    expect(maintenance(run.candidate)).toEqual(maintenance(inProduction));
    expect(maintenance(run.inForce)).toEqual(maintenance(inProduction));
    // and so are the other families' prompts: the same sequence of steps as in production
    expect(run.candidate.map((p) => `${p.kind} ${p.dedupKey}`)).toEqual(inProduction.map((p) => `${p.kind} ${p.dedupKey}`));
    // the follow-up comes with the first sweep after the visit + 3 days, as in production
    const followup = run.candidate.find((p) => p.kind === 'maintenance.followup')!;
    expect(new Date(followup.ts).toISOString()).toBe('2026-03-04T08:00:00.000Z');

    // the same history without the visit: the first service falls due and is overdue
    const readings = await loadHistory(telemetry, VIN_A, FROM, TO);
    expect(readings).toHaveLength(DAYS * 2 + 1);
    const unserviced = replayVehicle(createEngine(DEFAULT_RULES_CONFIG), {
      vin: VIN_A,
      profile: await stores.vehicles.get(VIN_A),
      readings,
      to: TO,
    });
    expect(maintenance(unserviced)).toEqual([
      `maintenance.upcoming ${VIN_A}:maintenance.upcoming:c0`,
      `maintenance.due ${VIN_A}:maintenance.due:c0`,
      `maintenance.overdue ${VIN_A}:maintenance.overdue:c0`,
    ]);
    expect(maintenance(unserviced)).not.toEqual(maintenance(inProduction));
  });

  it('applies a visit dated before the window first: the window starts in the cycle production was in', async () => {
    const telemetry = new MemoryTelemetryStore();
    const stores = await production(telemetry);
    const from = FROM + 37 * DAY; // 2026-03-10, 4,850 km: past the visit, before 5,000 km
    const run = await runBacktest(telemetry, stores, {
      candidate: DEFAULT_RULES_CONFIG,
      inForce: DEFAULT_RULES_CONFIG,
      from,
      to: TO,
      vin: VIN_A,
    });
    expect(maintenance(run.candidate)).toEqual([`maintenance.followup ${VIN_A}:maintenance.followup:c1`]);

    const readings = await loadHistory(telemetry, VIN_A, from, TO);
    const unserviced = replayVehicle(createEngine(DEFAULT_RULES_CONFIG), {
      vin: VIN_A,
      profile: await stores.vehicles.get(VIN_A),
      readings,
      to: TO,
    });
    expect(maintenance(unserviced)).toEqual([
      `maintenance.upcoming ${VIN_A}:maintenance.upcoming:c0`,
      `maintenance.due ${VIN_A}:maintenance.due:c0`,
      `maintenance.overdue ${VIN_A}:maintenance.overdue:c0`,
    ]);
  });

  it('counts an open once while its situation is open, as the prompt store does', () => {
    // opens "k" on every reading, resolves it on a reading at 0 % SOC
    const echo: Detector<null> = {
      family: 'charging',
      initial: () => null,
      onReading: (s, r) => ({
        state: s,
        events:
          r.signals[VSS.soc] === 0
            ? [{ type: 'resolve', dedupKey: 'k', ts: r.ts, reason: 'test' }]
            : [
                {
                  type: 'open',
                  prompt: {
                    kind: 'charging.low_soc',
                    dedupKey: 'k',
                    severity: 'info',
                    audience: ['hmi'],
                    urgent: false,
                    ts: r.ts,
                    evidence: {},
                    params: {},
                  },
                },
              ],
      }),
    };
    const socs = [10, 10, 10, 0, 10, 10];
    const readings = socs.map((soc, i) => ({ vin: VIN_A, ts: FROM + i * MIN, signals: { [VSS.soc]: soc } }));
    const got: BacktestPrompt[] = replayVehicle(createEngine(DEFAULT_RULES_CONFIG, [echo]), {
      vin: VIN_A,
      profile: undefined,
      readings,
      to: FROM + HOUR,
    });
    expect(got.map((p) => p.ts)).toEqual([FROM, FROM + 4 * MIN]);
  });
});
