// `odopulse backtest --audience`: which vehicles a campaign audience would have reached in a past
// window, and on which day (tools/backtest-audience.ts, docs/domain.md#campaign-targeting).
import { describe, expect, it } from 'vitest';
import { MemoryTelemetryStore } from '../../../ingest/store/memory/telemetry.js';
import { createMemoryStores } from '../../../ingest/stores.js';
import type { Reading } from '../../../proto/domain.js';
import { VSS } from '../../../proto/signals.js';
import { DEFAULT_RULES_CONFIG } from '../../../rules/config.js';
import { parseAudienceFile, runAudienceBacktest } from '../../../tools/backtest-audience.js';
import { DAY, HOUR, VIN_A, VIN_B, bev } from './harness.js';

const FROM = Date.parse('2026-02-01T00:00:00Z');
const TO = FROM + 60 * DAY;
const VIN_C = 'LSVAU2180N2183296';

/** Drives 40 km at 09:00 on each of `days`, and a parked reading every day at 20:00. */
function life(vin: string, driveDays: (d: number) => boolean): Reading[] {
  const out: Reading[] = [];
  let odo = 8000;
  for (let d = 0; d < 60; d++) {
    const t = FROM + d * DAY;
    if (driveDays(d)) {
      out.push({ vin, ts: t + 9 * HOUR, signals: { [VSS.odometer]: odo, [VSS.speed]: 50, [VSS.lowVoltageSystemState]: 'ON' } });
      odo += 40;
    }
    out.push({ vin, ts: t + 20 * HOUR, signals: { [VSS.odometer]: odo, [VSS.speed]: 0, [VSS.lowVoltageSystemState]: 'OFF' } });
  }
  return out;
}

describe('audience backtest', () => {
  it('reports when each vehicle first entered the audience, per UTC day', async () => {
    const telemetry = new MemoryTelemetryStore();
    const stores = createMemoryStores();
    for (const vin of [VIN_A, VIN_B, VIN_C]) await stores.vehicles.upsert(vin, bev({ deliveryDate: '2025-01-10' }), FROM);
    // A stops driving after day 5 (dormant 30 days later), B after day 20, C drives daily
    await telemetry.write([...life(VIN_A, (d) => d <= 5), ...life(VIN_B, (d) => d <= 20), ...life(VIN_C, () => true)], () => ({}));
    const run = await runAudienceBacktest(telemetry, stores, {
      rules: DEFAULT_RULES_CONFIG,
      audience: { activity: ['dormant'] },
      from: FROM,
      to: TO,
    });
    expect(run).toMatchObject({ vehicles: 3, withHistory: 3 });
    expect(run.reached.map((r) => r.vin)).toEqual([VIN_A, VIN_B]);
    // dormant = not driven for 30 days: A last drove on day 5 at 09:00, so from day 35 09:00, found at the reading or sweep after it
    const dayOf = (ms: number) => Math.floor((ms - FROM) / DAY);
    expect(dayOf(run.reached[0].at)).toBe(35);
    expect(dayOf(run.reached[1].at)).toBe(50);
    expect(run.reached[0].segments.activity).toBe('dormant');
    expect(run.byDay).toEqual([
      { day: '2026-03-08', firstReach: 1, cumulative: 1 },
      { day: '2026-03-23', firstReach: 1, cumulative: 2 },
    ]);
    // the profile part of the audience narrows it: none of them is commercial
    const none = await runAudienceBacktest(telemetry, stores, {
      rules: DEFAULT_RULES_CONFIG,
      audience: { activity: ['dormant'], vehicleType: ['commercial'] },
      from: FROM,
      to: TO,
    });
    expect(none.reached).toEqual([]);
  });

  it('reads a plain audience or a whole campaign body, and names a bad field', () => {
    expect(parseAudienceFile('{"activity": ["dormant"]}')).toEqual({ activity: ['dormant'] });
    expect(parseAudienceFile('{"name": "x", "audience": {"stage": ["new_owner"]}}')).toEqual({ stage: ['new_owner'] });
    expect(() => parseAudienceFile('{"activity": ["asleep"]}')).toThrow(/activity/);
  });
});
