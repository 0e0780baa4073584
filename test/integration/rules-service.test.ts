// Time-based rules in the running service (sweep against the event clock), service records through
// the API, and `odopulse backtest` against the stored history.
import mqtt from 'mqtt';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeTelemetryBatch } from '../../proto/codec.js';
import type { Sample } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';
import { startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import type { TelemetryJson, VehicleDetailJson } from '../support/api.js';
import { apiGet, apiRequest, promptsOf, putVehicle, runBin, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { PROFILE } from '../support/scenario.js';
import { waitFor } from '../support/wait.js';

const D = 'LSVAU2180N2183297';
const E = 'LSVAU2180N2183298';
/** Last driven two days after D: dormant (14 days) only once the fleet clock passes 03-17T12:00. */
const S = 'LSVAU2180N2183299';
let influx: InfluxdHandle;
let ingest: IngestProcess;
const seqs: Record<string, number> = {};

async function send(vin: string, samples: Sample[]) {
  seqs[vin] = (seqs[vin] ?? 0) + 1;
  const c = await mqtt.connectAsync(ingest.mqttUrl, { clientId: `t-${vin}`, username: vin });
  await c.publishAsync(
    `v1/vehicles/${vin}/telemetry`,
    Buffer.from(encodeTelemetryBatch({ vin, bootId: 't', seq: seqs[vin], dropped: 0, samples })),
    { qos: 1 },
  );
  await c.endAsync();
}

const parked = (iso: string, soc: number, odo: number): Sample => ({
  ts: Date.parse(iso),
  signals: {
    [VSS.soc]: soc,
    [VSS.odometer]: odo,
    [VSS.speed]: 0,
    [VSS.lowVoltageSystemState]: 'OFF',
    [VSS.isCharging]: false,
    [VSS.voltage12v]: 12.5,
  },
});
const driving = (iso: string, soc: number, odo: number): Sample => ({
  ts: Date.parse(iso),
  signals: {
    [VSS.soc]: soc,
    [VSS.odometer]: odo,
    [VSS.speed]: 60,
    [VSS.lowVoltageSystemState]: 'ON',
    [VSS.isCharging]: false,
    [VSS.voltage12v]: 13.9,
  },
});

async function kinds(vin: string): Promise<string[]> {
  return (await promptsOf(ingest, vin)).map((p) => p.kind);
}

beforeAll(async () => {
  influx = await startInfluxd({ database: 'rulesvc' });
  ingest = await startIngestProcess({
    INFLUX_URL: influx.url,
    INFLUX_BUCKET: 'rulesvc',
    ODOPULSE_CLOCK: 'event',
    ODOPULSE_SWEEP_MS: '300',
  });
  for (const vin of [D, E, S]) await putVehicle(ingest, vin, { ...PROFILE, deliveryDate: '2026-01-10' });
});

afterAll(async () => {
  await ingest?.stop();
  await influx?.stop();
});

describe('time-based rules in the service', () => {
  it('finds a dormant vehicle by the sweep as the fleet clock advances, and once only', async () => {
    await send(D, [driving('2026-03-01T08:00:00Z', 45, 1200), parked('2026-03-01T09:00:00Z', 40, 1230)]);
    await send(S, [driving('2026-03-03T12:00:00Z', 60, 500), parked('2026-03-03T13:00:00Z', 58, 530)]);
    // another vehicle's readings move the fleet clock 16 days on; D sends nothing
    await send(E, [driving('2026-03-17T08:00:00Z', 80, 900)]);
    const dormant = async (vin: string) => (await kinds(vin)).filter((k) => k === 'usage.dormant_vehicle').length;
    await waitFor(async () => (await dormant(D)) > 0, { what: 'dormant prompt from the sweep', intervalMs: 200 });
    expect(await dormant(S)).toBe(0); // 13.8 days: not yet
    await send(E, [driving('2026-03-18T08:00:00Z', 79, 950)]);
    // Positive marker: S turning dormant shows a sweep ran on the later clock; D still has one prompt.
    await waitFor(async () => (await dormant(S)) > 0, { what: 'a sweep at the later fleet clock (S dormant)', intervalMs: 200 });
    expect(await dormant(D)).toBe(1);
    // lifecycle segments are visible on the vehicle
    const v = await apiGet<VehicleDetailJson>(ingest, `/api/v1/vehicles/${D}`);
    expect(JSON.stringify(v)).toMatch(/"stage":"(new_owner|break_in|active_owner)"/);
  });

  it('a recorded service visit is followed by a follow-up a few days later', async () => {
    const r = await apiRequest(ingest, 'POST', `/api/v1/vehicles/${D}/service-records`, {
      date: '2026-03-18',
      odometer: 1240,
      items: ['inspection'],
    });
    expect(r.status).toBeLessThan(300);
    await send(E, [driving('2026-03-23T08:00:00Z', 78, 1000)]);
    await waitFor(async () => (await kinds(D)).includes('maintenance.followup'), { what: 'follow-up', intervalMs: 200 });
  });

  it('backtests the stored history through another configuration and reports the difference', async () => {
    // give D a low-ish parked charge that only a stricter configuration would flag
    await send(D, [driving('2026-03-24T08:00:00Z', 30, 1300), parked('2026-03-24T09:00:00Z', 24, 1330)]);
    const dir = mkdtempSync(join(tmpdir(), 'backtest-'));
    const cfg = join(dir, 'strict.json');
    writeFileSync(cfg, JSON.stringify({ defaults: { charging: { lowSocPct: 25, rearmSocPct: 35 } } }));
    // wait until InfluxDB has everything D sent
    await waitFor(
      async () => {
        const body = await apiGet<TelemetryJson>(
          ingest,
          `/api/v1/vehicles/${D}/telemetry?signal=${encodeURIComponent(VSS.soc)}&from=2026-02-01T00:00:00Z&to=2026-04-01T00:00:00Z`,
        );
        return body.points.some((p) => p.value === 24);
      },
      { what: 'history in InfluxDB', intervalMs: 200 },
    );
    const out = await runBin(['backtest', '--config', cfg, '--from', '2026-02-01T00:00:00Z', '--to', '2026-04-01T00:00:00Z', '--vin', D], {
      ...ingest.env,
      ODOPULSE_LOG_LEVEL: 'silent',
    });
    expect(out.code, out.stderr).toBe(0);
    const result = JSON.parse(out.stdout);
    expect(result.vehicles).toBe(1);
    expect(result.candidate.byKind['charging.low_soc']).toBe(1);
    expect(result.inForce.byKind['charging.low_soc'] ?? 0).toBe(0);
    expect(result.difference.perKind['charging.low_soc'].delta).toBe(1);
    expect(result.difference.sampleOfChangedVehicles[0]).toMatchObject({ vin: D, added: ['charging.low_soc'] });
  });

  it('backtest refuses an invalid configuration, naming the field', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'backtest-'));
    const cfg = join(dir, 'bad.json');
    writeFileSync(cfg, JSON.stringify({ defaults: { charging: { lowSocPct: -5 } } }));
    const code = await runBin(['backtest', '--config', cfg, '--from', '2026-02-01', '--to', '2026-04-01'], ingest.env);
    expect(code.code).not.toBe(0);
    expect(code.stderr).toMatch(/charging\.lowSocPct/);
  });
});
