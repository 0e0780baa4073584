// Through the real ingest process, its embedded broker and a real influxd: a head unit re-installed
// (new boot id, seq back at 1 after 500) is stored, not dropped as duplicates, and its readings are
// queryable; its sequence shows on the vehicle; a sample from 2099 is dead-lettered and counted while
// the good one in the same batch is kept.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Sample } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';
import type { TelemetryJson, VehicleDetailJson } from '../support/api.js';
import { influxNumber, startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { apiGet, metric, publishBatch, putVehicle, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { PROFILE } from '../support/scenario.js';
import { waitFor } from '../support/wait.js';

const VIN = 'LSVAU2180N2183311';
let influx: InfluxdHandle;
let ingest: IngestProcess;

beforeAll(async () => {
  influx = await startInfluxd({ database: 'boots' });
  ingest = await startIngestProcess({ INFLUX_URL: influx.url, INFLUX_BUCKET: 'boots' }); // wall clock
  await putVehicle(ingest, VIN, PROFILE);
}, 120_000);

afterAll(async () => {
  await ingest?.stop();
  await influx?.stop();
});

const send = (seq: number, bootId: string, samples: Sample[]) =>
  publishBatch(ingest.mqttUrl, VIN, samples, { seq, bootId, client: { clientId: `${VIN}:t${seq}${bootId}` } });
const socCount = () => influxNumber(influx.url, 'boots', `SELECT count("${VSS.soc}") FROM "telemetry" WHERE "vin" = '${VIN}'`);

describe('agent re-install and hostile timestamps, end to end', () => {
  it('stores seq 1 of a new boot after seq 500 of the old one, and its readings are queryable', async () => {
    const now = Date.now();
    await send(500, 'boot-old', [{ ts: now - 60_000, signals: { [VSS.soc]: 60 } }]);
    await send(1, 'boot-new', [{ ts: now - 30_000, signals: { [VSS.soc]: 59 } }]);
    await send(1, 'boot-new', [{ ts: now - 30_000, signals: { [VSS.soc]: 59 } }]); // resent: a duplicate
    await waitFor(async () => (await socCount()) === 2, { what: 'both boots in InfluxDB', intervalMs: 200 });
    const t = await apiGet<TelemetryJson>(
      ingest,
      `/api/v1/vehicles/${VIN}/telemetry?signal=${encodeURIComponent(VSS.soc)}&from=${now - 120_000}&to=${now + 1}`,
    );
    expect(t.points.map((p) => p.value)).toEqual([60, 59]);
    expect(await metric(ingest, 'odopulse_telemetry_batches_total{result="duplicate"}')).toBe(1);
    const v = await waitFor(
      async () => {
        const d = await apiGet<VehicleDetailJson>(ingest, `/api/v1/vehicles/${VIN}`);
        return d.sequence?.bootId === 'boot-new' ? d : undefined;
      },
      { what: "the vehicle's sequence view", intervalMs: 200 },
    );
    expect(v!.sequence).toEqual({ bootId: 'boot-new', lastSeq: 1, gaps: 0 });
  });

  it('dead-letters a sample from 2099 and keeps the good one of the same batch', async () => {
    const now = Date.now();
    await send(2, 'boot-new', [
      { ts: now - 10_000, signals: { [VSS.soc]: 58 } },
      { ts: Date.parse('2099-01-01T00:00:00Z'), signals: { [VSS.soc]: 1 } },
    ]);
    await waitFor(async () => (await socCount()) === 3, { what: 'the good sample in InfluxDB', intervalMs: 200 });
    expect(await metric(ingest, 'odopulse_dead_letters_total{reason="future_timestamp"}')).toBe(1);
  });
});
