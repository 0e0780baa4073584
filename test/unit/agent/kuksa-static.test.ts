// The Kuksa source's client (de)serialises with the static module generated from proto/kuksa/val/v2/;
// it must give byte for byte and object for object what @grpc/proto-loader gives for the same .proto.
import type * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { KuksaValClient, loadKuksaPackage } from '../../../agent/sources/kuksa.js';
import { VSS } from '../../../proto/signals.js';

const pkg = loadKuksaPackage() as unknown as { kuksa: { val: { v2: { VAL: grpc.ServiceClientConstructor } } } };
const viaLoader = pkg.kuksa.val.v2.VAL.service.Subscribe;
const viaStatic = KuksaValClient.service.Subscribe;
const ts = { seconds: '1772352000', nanos: 250_000_000 };

const responses: Record<string, unknown>[] = [
  { entries: {} },
  {
    entries: {
      [VSS.odometer]: { timestamp: ts, value: { float: 4210.5 } },
      [VSS.speed]: { value: { double: 88.25 } },
      [VSS.soc]: { timestamp: ts, value: { uint32: 25 } },
      [VSS.lowVoltageSystemState]: { value: { string: 'ON' } },
      [VSS.isCharging]: { value: { bool: false } },
      [VSS.dtcList]: { value: { stringArray: { values: ['P0A80', 'U0100'] } } },
      'Vehicle.Int64': { value: { int64: '-9007199254740993' } },
      'Vehicle.Uint64': { value: { uint64: '18446744073709551615' } },
      'Vehicle.Int32': { value: { int32: -5 } },
      'Vehicle.None': { timestamp: ts },
      'Vehicle.Arrays': { value: { int64Array: { values: ['1', '-2'] } } },
    },
  },
];
const requests: Record<string, unknown>[] = [{ signalPaths: [VSS.speed, VSS.soc], bufferSize: 100 }, { signalPaths: [] }];

describe('Kuksa static client = proto-loader', () => {
  it.each(responses.map((r) => [r]))('SubscribeResponse %j', (obj) => {
    const bytes = viaLoader.responseSerialize(obj);
    expect(Buffer.from(viaStatic.responseSerialize(obj))).toEqual(Buffer.from(bytes));
    expect(viaStatic.responseDeserialize(bytes)).toEqual(viaLoader.responseDeserialize(bytes));
  });

  it.each(requests.map((r) => [r]))('SubscribeRequest %j', (obj) => {
    const bytes = viaLoader.requestSerialize(obj);
    expect(Buffer.from(viaStatic.requestSerialize(obj))).toEqual(Buffer.from(bytes));
    expect(viaStatic.requestDeserialize(bytes)).toEqual(viaLoader.requestDeserialize(bytes));
  });
});
