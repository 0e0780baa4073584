// The Kuksa source against a tiny in-process gRPC server implementing kuksa.val.v2 VAL/Subscribe
// from the same .proto, and the agent end to end with it (policy sampling) into aedes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAgent } from '../../agent/main.js';
import { KuksaSource, loadKuksaPackage } from '../../agent/sources/kuksa.js';
import type { Sample } from '../../proto/domain.js';
import { VSS } from '../../proto/signals.js';
import { startAedes } from '../support/aedes.js';
import { makeCerts } from '../support/mosquitto.js';
import { VIN, collect } from '../unit/agent/fixtures.js';
import { waitFor } from '../support/wait.js';

const TS = { seconds: String(Date.parse('2026-03-01T08:00:00Z') / 1000), nanos: 0 };
const dp = (value: Record<string, unknown>) => ({ timestamp: TS, value });

interface FakeBroker {
  address: string;
  subscribeCalls: string[][];
  push(entries: Record<string, unknown>): void;
  stop(): Promise<void>;
}

/** A databroker that knows `known` paths: NOT_FOUND for a subscription naming any other one. */
async function startFakeDatabroker(known: Set<string>, secure?: { creds: grpc.ServerCredentials; token: string }): Promise<FakeBroker> {
  const pkg = loadKuksaPackage() as unknown as { kuksa: { val: { v2: { VAL: grpc.ServiceClientConstructor } } } };
  const server = new grpc.Server();
  const streams: Array<{ call: grpc.ServerWritableStream<{ signalPaths: string[] }, unknown>; paths: string[] }> = [];
  const subscribeCalls: string[][] = [];
  server.addService(pkg.kuksa.val.v2.VAL.service, {
    Subscribe(call: grpc.ServerWritableStream<{ signalPaths: string[] }, unknown>) {
      const paths = call.request.signalPaths;
      subscribeCalls.push(paths);
      if (secure && call.metadata.get('authorization')[0] !== `Bearer ${secure.token}`) {
        return call.emit('error', { code: grpc.status.UNAUTHENTICATED, details: 'bad token' });
      }
      const unknown = paths.filter((p) => !known.has(p));
      if (unknown.length) return call.emit('error', { code: grpc.status.NOT_FOUND, details: `unknown: ${unknown.join(',')}` });
      streams.push({ call, paths });
      // Current values first, as the databroker does.
      const initial: Record<string, unknown> = {};
      if (paths.includes(VSS.odometer)) initial[VSS.odometer] = dp({ float: 4210.5 });
      if (paths.includes(VSS.lowVoltageSystemState)) initial[VSS.lowVoltageSystemState] = dp({ string: 'ON' });
      if (paths.includes(VSS.soc)) initial[VSS.soc] = dp({ uint32: 25 });
      if (Object.keys(initial).length) call.write({ entries: initial });
    },
    GetValue(_call: unknown, cb: grpc.sendUnaryData<unknown>) {
      cb({ code: grpc.status.UNIMPLEMENTED });
    },
    GetServerInfo(_call: unknown, cb: grpc.sendUnaryData<unknown>) {
      cb(null, { name: 'fake', version: '0' });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', secure?.creds ?? grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    address: `127.0.0.1:${port}`,
    subscribeCalls,
    push(entries) {
      for (const s of streams) {
        const mine = Object.fromEntries(Object.entries(entries).filter(([k]) => s.paths.includes(k)));
        if (Object.keys(mine).length) s.call.write({ entries: mine });
      }
    },
    async stop() {
      for (const s of streams) s.call.end();
      await new Promise<void>((r) => server.tryShutdown(() => r()));
    },
  };
}

describe('KuksaSource', () => {
  it('subscribes to the VSS paths and turns datapoints into samples (values checked against the VSS table)', async () => {
    const fake = await startFakeDatabroker(new Set([VSS.odometer, VSS.lowVoltageSystemState, VSS.soc, VSS.speed, VSS.dtcList]));
    const got: Sample[] = [];
    const logs: string[] = [];
    const src = new KuksaSource({
      address: fake.address,
      paths: [VSS.odometer, VSS.lowVoltageSystemState, VSS.soc, VSS.speed, VSS.dtcList],
      log: (m) => logs.push(m),
    });
    try {
      await src.start((s) => got.push(s));
      await waitFor(() => got.length >= 1, { what: 'the first sample' });
      expect(got[0]).toEqual({
        ts: Date.parse('2026-03-01T08:00:00Z'),
        signals: { [VSS.odometer]: 4210.5, [VSS.lowVoltageSystemState]: 'ON', [VSS.soc]: 25 },
      });
      fake.push({ [VSS.speed]: dp({ float: 999 }), [VSS.dtcList]: dp({ stringArray: { values: ['P0A80', 'not-a-dtc'] } }) });
      await waitFor(() => got.length >= 2, { what: 'the second sample' });
      expect(got[1].signals).toEqual({});
      expect(got[1].dtcs).toEqual(['P0A80']);
      expect(logs.join('\n')).toMatch(/Vehicle.Speed: value 999 rejected/);
      expect(logs.join('\n')).toMatch(/not-a-dtc/);
    } finally {
      await src.stop();
      await fake.stop();
    }
  });

  it('falls back to one subscription per path when the databroker lacks some paths', async () => {
    const fake = await startFakeDatabroker(new Set([VSS.odometer, VSS.soc]));
    const got: Sample[] = [];
    const logs: string[] = [];
    const src = new KuksaSource({ address: fake.address, paths: [VSS.odometer, VSS.soc, VSS.fuelLevel], log: (m) => logs.push(m) });
    try {
      await src.start((s) => got.push(s));
      await waitFor(() => got.length >= 2, { what: 'a sample per subscription' });
      const merged = Object.assign({}, ...got.map((s) => s.signals));
      expect(merged).toEqual({ [VSS.odometer]: 4210.5, [VSS.soc]: 25 });
      await waitFor(() => logs.some((l) => /Vehicle.Powertrain.FuelSystem.RelativeLevel not provided/.test(l)), {
        what: 'the missing path logged',
      });
      expect(fake.subscribeCalls[0]).toHaveLength(3);
    } finally {
      await src.stop();
      await fake.stop();
    }
  });
});

describe('KuksaSource over TLS with a token', () => {
  it('connects with the CA and sends the bearer token; a wrong token is refused and retried', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kuksa-tls-'));
    const c = makeCerts(dir);
    const creds = grpc.ServerCredentials.createSsl(
      readFileSync(c.ca),
      [{ private_key: readFileSync(c.serverKey), cert_chain: readFileSync(c.serverCert) }],
      false,
    );
    const fake = await startFakeDatabroker(new Set([VSS.odometer]), { creds, token: 'tok-123' });
    const got: Sample[] = [];
    const logs: string[] = [];
    const good = new KuksaSource({ address: fake.address, paths: [VSS.odometer], ca: readFileSync(c.ca), token: 'tok-123' });
    const bad = new KuksaSource({
      address: fake.address,
      paths: [VSS.odometer],
      ca: readFileSync(c.ca),
      token: 'wrong',
      retryMinMs: 50,
      log: (m) => logs.push(m),
    });
    try {
      await good.start((s) => got.push(s));
      await bad.start(() => {});
      await waitFor(() => got.length >= 1 && logs.some((l) => /UNAUTHENTICATED/.test(l)), {
        what: 'a sample (good token) and a refusal (bad token)',
      });
      expect(got[0].signals).toEqual({ [VSS.odometer]: 4210.5 });
    } finally {
      await good.stop();
      await bad.stop();
      await fake.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('agent with a Kuksa source', () => {
  let broker: Awaited<ReturnType<typeof startAedes>>;
  let dir: string;
  beforeAll(async () => {
    broker = await startAedes();
    dir = mkdtempSync(join(tmpdir(), 'agent-kuksa-'));
  });
  afterAll(async () => {
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('samples by policy and flushes at once on a trigger (new DTC)', async () => {
    const fake = await startFakeDatabroker(new Set([VSS.odometer, VSS.lowVoltageSystemState, VSS.soc, VSS.dtcList]));
    const sub = await collect(broker.url);
    const ac = new AbortController();
    // A long batch delay: only the trigger can make the batch leave early.
    const run = runAgent(
      { vin: VIN, broker: broker.url, kuksa: fake.address, spoolDir: join(dir, 'spool'), batchMaxDelayMs: 600_000 },
      ac.signal,
      { log: () => {} },
    );
    try {
      await waitFor(() => fake.subscribeCalls.length > 0 && sub.statuses.some((s) => s.online), {
        what: 'the agent subscribed and online',
      });
      fake.push({ [VSS.dtcList]: dp({ stringArray: { values: ['P0A80'] } }) });
      await waitFor(() => sub.batches.length >= 1, { what: 'the batch flushed by the trigger' });
      const samples = sub.batches.flatMap((b) => b.samples);
      // The fake lacks some default paths, so values come per path: merge what arrived.
      expect(Object.assign({}, ...samples.map((x) => x.signals))).toMatchObject({
        [VSS.odometer]: 4210.5,
        [VSS.soc]: 25,
        [VSS.lowVoltageSystemState]: 'ON',
      });
      expect(samples.at(-1)!.dtcs).toEqual(['P0A80']);
    } finally {
      ac.abort();
      expect(await run).toBe(0);
      await sub.close();
      await fake.stop();
    }
  });
});
