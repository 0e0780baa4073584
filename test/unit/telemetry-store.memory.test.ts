import { describe, expect, it } from 'vitest';
import { MemoryTelemetryStore } from '../../ingest/store/memory/telemetry.js';
import { bucketStarts, quoteIdent, quoteString, sanitizeTagValue, toLines } from '../../ingest/store/influx/schema.js';
import { mapV1Path, splitBucket, v1AuthHeader } from '../../ingest/store/influx/transport.js';
import { VSS } from '../../proto/signals.js';
import { telemetryStoreSuite } from '../ports/telemetry-store.suite.js';

telemetryStoreSuite('memory', async () => {
  const store = new MemoryTelemetryStore();
  return { store, cleanup: () => store.close().catch(() => undefined) };
});

const VIN = 'LSVAU2180N2183294';

describe('MemoryTelemetryStore outage', () => {
  it('holds writes while unavailable: flush rejects, then succeeds once it is back', async () => {
    const store = new MemoryTelemetryStore();
    store.setAvailable(false);
    await store.write([{ vin: VIN, ts: 1_772_323_200_000, signals: { [VSS.speed]: 3 } }], () => ({}));
    await expect(store.flush()).rejects.toThrow(/did not confirm 1 lines/);
    expect(await store.ping()).toBe(false);
    await expect(store.latest(VIN)).rejects.toThrow(/unavailable/);
    store.setAvailable(true);
    await store.flush();
    expect((await store.latest(VIN))?.signals).toEqual({ [VSS.speed]: 3 });
  });
});

describe('InfluxQL quoting', () => {
  it('quotes identifiers and string literals so nothing can end them early', () => {
    expect(quoteIdent('Vehicle.Speed')).toBe('"Vehicle.Speed"');
    expect(quoteIdent('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(quoteString("it's")).toBe("'it\\'s'");
    expect(quoteString("x\\' OR 1=1")).toBe("'x\\\\\\' OR 1=1'");
    expect(quoteString('a\nb')).toBe("'a\\nb'");
  });
});

describe('line protocol', () => {
  it('keeps quotes, commas, equals and spaces in tag values, and cleans what line protocol cannot carry', () => {
    expect(sanitizeTagValue(`D'1" ,=x`)).toBe(`D'1" ,=x`);
    expect(sanitizeTagValue('a\\')).toBe('a/');
    expect(sanitizeTagValue('x\ny\tz\u0000')).toBe('x y z');
  });
  it('writes numbers as floats, booleans, enums and the DTC list as strings, ms timestamps, sorted tags', () => {
    const lines = toLines(
      [
        {
          vin: VIN,
          ts: 1_772_323_200_123,
          signals: { [VSS.speed]: 12, [VSS.isCharging]: true, [VSS.chargePortType]: 'AC' },
          dtcs: ['P0A80', 'U0100'],
        },
      ],
      () => ({ powertrain: 'BEV', model: 'Aion S', dealer: 'D 1' }),
    );
    expect(lines).toEqual([
      `telemetry,dealer=D\\ 1,model=Aion\\ S,powertrain=BEV,vin=${VIN} Vehicle.OBD.DTCList="P0A80,U0100",Vehicle.Powertrain.TractionBattery.Charging.ChargePortType="AC",Vehicle.Powertrain.TractionBattery.Charging.IsCharging=T,Vehicle.Speed=12 1772323200123`,
    ]);
    expect(toLines([{ vin: VIN, ts: 1, signals: {} }], () => ({}))).toEqual([]);
  });
});

describe('InfluxDB 1.x mapping', () => {
  it('maps the v2 write path to /write with db and rp', () => {
    expect(mapV1Path('/api/v2/write?org=odopulse&bucket=telemetry&precision=ms')).toBe('/write?db=telemetry&precision=ms');
    expect(mapV1Path('/api/v2/write?org=o&bucket=tele%2Fweek&precision=ms&consistency=one')).toBe(
      '/write?db=tele&rp=week&precision=ms&consistency=one',
    );
    expect(mapV1Path('/query?db=x&q=SELECT')).toBe('/query?db=x&q=SELECT');
    expect(() => mapV1Path('/api/v2/write?org=o&bucket=&precision=ms')).toThrow(/INFLUX_BUCKET/);
  });
  it('splits database/retention-policy buckets and refuses malformed ones', () => {
    expect(splitBucket('telemetry')).toEqual({ db: 'telemetry', rp: undefined });
    expect(splitBucket('telemetry/autogen')).toEqual({ db: 'telemetry', rp: 'autogen' });
    for (const b of ['', '/rp', 'db/', 'a/b/c']) expect(() => splitBucket(b)).toThrow(/INFLUX_BUCKET/);
  });
  it('turns user:password into Basic auth and refuses a bare v2 token', () => {
    expect(v1AuthHeader('')).toBeUndefined();
    expect(v1AuthHeader('ingest:s3cr:et')).toBe(`Basic ${Buffer.from('ingest:s3cr:et').toString('base64')}`);
    expect(() => v1AuthHeader('abcdef0123')).toThrow(/user:password/);
  });
  it('builds GROUP BY time buckets on the epoch grid over [from, to)', () => {
    expect(bucketStarts(15, 40, 10)).toEqual([10, 20, 30]);
    expect(bucketStarts(10, 40, 10)).toEqual([10, 20, 30]);
    expect(bucketStarts(10, 41, 10)).toEqual([10, 20, 30, 40]);
    expect(bucketStarts(10, 10, 10)).toEqual([]);
  });
});
