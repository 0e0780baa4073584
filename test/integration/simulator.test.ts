// The simulator against a real in-process MQTT broker (aedes) and a recording HTTP endpoint
// standing in for the ingest API (the test checks what the simulator sends, not what ingest does).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import http from 'node:http';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Aedes } from 'aedes';
import { decodeAgentStatus, decodeTelemetryBatch } from '../../proto/codec.js';
import { VehicleProfileSchema, parseReplayLine, type TelemetryBatch } from '../../proto/domain.js';
import { runSimulate, simulateToReplay } from '../../simulator/main.js';
import { runSimulateCli } from '../../simulator/cli.js';
import { isValidVin } from '../../simulator/vin.js';
import { waitFor } from '../support/wait.js';

const START = Date.UTC(2026, 2, 2);

interface Received {
  topic: string;
  clientId: string | undefined;
  payload: Buffer;
}

let broker: Aedes;
let server: net.Server;
let brokerUrl: string;
let received: Received[] = [];
let api: http.Server;
let apiUrl: string;
let requests: { method: string; url: string; body: unknown }[] = [];
let tmp: string;

beforeAll(async () => {
  broker = await Aedes.createBroker();
  broker.on('publish', (packet, client) => {
    if (client) received.push({ topic: packet.topic, clientId: client.id, payload: Buffer.from(packet.payload as Buffer) });
  });
  server = net.createServer(broker.handle as never);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  brokerUrl = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  api = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      requests.push({ method: req.method!, url: req.url!, body: JSON.parse(body || 'null') });
      res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  apiUrl = `http://127.0.0.1:${(api.address() as net.AddressInfo).port}`;
  tmp = await mkdtemp(join(tmpdir(), 'odopulse-sim-'));
});

afterAll(async () => {
  await new Promise<void>((r) => broker.close(() => r()));
  await new Promise<void>((r) => server.close(() => r()));
  await new Promise<void>((r) => api.close(() => r()));
  await rm(tmp, { recursive: true, force: true });
});

function telemetryByVin(): Map<string, TelemetryBatch[]> {
  const byVin = new Map<string, TelemetryBatch[]>();
  for (const m of received) {
    const t = /^v1\/vehicles\/([^/]+)\/telemetry$/.exec(m.topic);
    if (!t) continue;
    const batch = decodeTelemetryBatch(m.payload); // throws if anything does not decode or validate
    expect(batch.vin).toBe(t[1]);
    if (!byVin.has(batch.vin)) byVin.set(batch.vin, []);
    byVin.get(batch.vin)!.push(batch);
  }
  return byVin;
}

function expectOrderedPerVin(byVin: Map<string, TelemetryBatch[]>): void {
  for (const [vin, batches] of byVin) {
    const bootIds = new Set(batches.map((b) => b.bootId));
    expect(bootIds.size, vin).toBe(1);
    const seqs = batches.map((b) => b.seq);
    for (let i = 1; i < seqs.length; i++) expect(seqs[i], `${vin} seq`).toBeGreaterThan(seqs[i - 1]);
    const ts = batches.flatMap((b) => b.samples.map((s) => s.ts));
    for (let i = 1; i < ts.length; i++) expect(ts[i], `${vin} ts`).toBeGreaterThan(ts[i - 1]);
  }
}

describe('runSimulate', () => {
  it('registers profiles and publishes decodable batches over one connection per vehicle', async () => {
    received = [];
    requests = [];
    const s = await runSimulate({
      vehicles: 6,
      speedup: 36_000,
      seed: 3,
      durationMs: 1500,
      broker: brokerUrl,
      api: apiUrl,
      connections: 'per-vehicle',
      sampleEveryMs: 300_000,
      start: START,
      quiet: true,
    });
    expect(s.vehicles).toBe(6);
    expect(s.errors).toBe(0);
    expect(s.registered).toBe(6);
    expect(s.readings).toBeGreaterThan(6);
    expect(s.batches).toBeGreaterThan(0);
    expect(s.simulatedSpanMs).toBeGreaterThan(0);

    const byVin = telemetryByVin();
    expect(byVin.size).toBe(6);
    expectOrderedPerVin(byVin);
    const published = [...byVin.values()].flat();
    expect(published.length).toBe(s.batches);
    expect(published.reduce((n, b) => n + b.samples.length, 0)).toBe(s.readings);
    for (const m of received.filter((x) => x.topic.endsWith('/telemetry'))) expect(m.clientId).toBe(m.topic.split('/')[2]); // clientId = VIN

    const statuses = received.filter((m) => m.topic.endsWith('/status')).map((m) => decodeAgentStatus(m.payload));
    expect(statuses.filter((x) => x.online).length).toBe(6);
    expect(statuses.filter((x) => !x.online).length).toBe(6); // goodbye on a clean stop

    const puts = requests.filter((r) => r.method === 'PUT');
    expect(puts.length).toBe(6);
    for (const p of puts) {
      const vin = p.url.split('/').pop()!;
      expect(p.url).toBe(`/api/v1/vehicles/${vin}`);
      expect(isValidVin(vin)).toBe(true);
      expect(VehicleProfileSchema.safeParse(p.body).success).toBe(true);
    }
    const posts = requests.filter((r) => r.method === 'POST');
    expect(posts.length).toBe(s.serviceRecords);
    for (const p of posts) {
      expect(p.url).toMatch(/^\/api\/v1\/vehicles\/[A-Z0-9]{17}\/service-records$/);
      expect(p.body).toMatchObject({ date: expect.any(String), odometer: expect.any(Number), items: expect.any(Array) });
    }
  });

  it('multiplexes many vehicles over a few connections and writes replay files as well', async () => {
    received = [];
    const dir = join(tmp, 'run-replay');
    const s = await runSimulate({
      vehicles: 40,
      speedup: 36_000,
      seed: 4,
      durationMs: 1500,
      broker: brokerUrl,
      connections: 'multiplex',
      multiplexConnections: 3,
      sampleEveryMs: 300_000,
      start: START,
      quiet: true,
      writeReplayDir: dir,
      progress: true,
    });
    expect(s.errors).toBe(0);
    expect(s.connections).toBe('multiplex');
    const byVin = telemetryByVin();
    expect(byVin.size).toBeGreaterThan(30); // lost vehicles may fall silent early
    expectOrderedPerVin(byVin);
    expect(new Set(received.filter((m) => m.topic.endsWith('/telemetry')).map((m) => m.clientId)).size).toBeLessThanOrEqual(3);
    expect(s.replayFiles?.length).toBe(40);
    let lines = 0;
    for (const f of s.replayFiles!) {
      const text = await readFile(f, 'utf8');
      for (const line of text.split('\n').filter(Boolean)) {
        parseReplayLine(line);
        lines++;
      }
    }
    expect(lines).toBe(s.readings);
  });

  it('stops promptly when aborted and rejects bad options with a clear message', async () => {
    const ac = new AbortController();
    const before = received.length;
    const run = runSimulate({
      vehicles: 3,
      speedup: 3600,
      seed: 1,
      durationMs: 60_000,
      broker: brokerUrl,
      connections: 'per-vehicle',
      quiet: true,
      signal: ac.signal,
      start: START,
    });
    // Abort mid-run, once it is publishing (a 60 s run), instead of after a blind delay.
    await waitFor(() => received.length > before, { what: 'the simulator publishing' });
    ac.abort();
    const s = await run;
    expect(s.wallMs).toBeLessThan(30_000);
    await expect(
      runSimulate({ vehicles: 0, speedup: 1, seed: 1, durationMs: 1, broker: brokerUrl, connections: 'multiplex' }),
    ).rejects.toThrow(/vehicles/);
    await expect(
      runSimulate({
        vehicles: 2,
        speedup: 1,
        seed: 1,
        durationMs: 1,
        broker: 'mqtt://127.0.0.1:9',
        connections: 'per-vehicle',
        quiet: true,
      }),
    ).rejects.toThrow(/cannot connect to the broker at mqtt:\/\/127.0.0.1:9/);
    await expect(
      runSimulate({
        vehicles: 1,
        speedup: 1,
        seed: 1,
        durationMs: 1,
        broker: brokerUrl,
        connections: 'multiplex',
        api: 'http://127.0.0.1:9',
        quiet: true,
      }),
    ).rejects.toThrow(/cannot register vehicles at http:\/\/127.0.0.1:9/);
    await expect(
      runSimulate({ vehicles: 1, speedup: -1, seed: 1, durationMs: 1, broker: brokerUrl, connections: 'multiplex' }),
    ).rejects.toThrow(/speedup/);
  });
});

describe('runSimulate against a broker with a per-VIN ACL', () => {
  it('connects per vehicle; multiplexing falls back to per-vehicle connections', async () => {
    // Like ingest's embedded broker: the username must be a VIN and may publish only under it.
    const acl = await Aedes.createBroker({
      authenticate: (_c, username, _p, done) => {
        if (isValidVin(username ?? '')) return done(null, true);
        done(Object.assign(new Error('bad username or password'), { returnCode: 4 }) as never, false);
      },
      authorizePublish: (client, packet, cb) =>
        cb(client && packet.topic.split('/')[2] !== (client as unknown as { id: string }).id ? new Error('not yours') : null),
    });
    let telemetry = 0;
    acl.on('publish', (p, c) => {
      if (c && p.topic.endsWith('/telemetry')) telemetry++;
    });
    const srv = net.createServer(acl.handle as never);
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const url = `mqtt://127.0.0.1:${(srv.address() as net.AddressInfo).port}`;
    try {
      const s = await runSimulate({
        vehicles: 4,
        speedup: 36_000,
        seed: 8,
        durationMs: 800,
        broker: url,
        connections: 'per-vehicle',
        quiet: true,
        start: START,
      });
      expect(s.errors).toBe(0);
      expect(s.batches).toBeGreaterThan(0);
      expect(telemetry).toBe(s.batches);
      expect(s.connections).toBe('per-vehicle');
      telemetry = 0;
      const m = await runSimulate({
        vehicles: 4,
        speedup: 36_000,
        seed: 8,
        durationMs: 800,
        broker: url,
        connections: 'multiplex',
        quiet: true,
        start: START,
      });
      expect(m.connections).toBe('per-vehicle'); // refused as a shared identity, so one connection per VIN
      expect(m.errors).toBe(0);
      expect(m.batches).toBeGreaterThan(0);
      expect(telemetry).toBe(m.batches);
    } finally {
      await new Promise<void>((r) => acl.close(() => r()));
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});

describe('runSimulate without a broker', () => {
  it('only writes replay files', async () => {
    const dir = join(tmp, 'replay-only');
    const s = await runSimulate({
      vehicles: 3,
      speedup: 36_000,
      seed: 6,
      durationMs: 500,
      broker: '',
      connections: 'per-vehicle',
      writeReplayDir: dir,
      start: START,
      quiet: true,
    });
    expect(s.batches).toBe(0);
    expect(s.readings).toBeGreaterThan(0);
    const lines = (await Promise.all(s.replayFiles!.map((f) => readFile(f, 'utf8')))).flatMap((t) => t.split('\n').filter(Boolean));
    expect(lines.map(parseReplayLine)).toHaveLength(s.readings);
  });
});

describe('runSimulateCli', () => {
  it('runs from command-line strings and exits 0', async () => {
    received = [];
    const code = await runSimulateCli({
      vehicles: '3',
      speedup: '36000',
      seed: '5',
      duration: '700ms',
      broker: brokerUrl,
      api: '',
      connections: 'per-vehicle',
      sampleEvery: '600000',
      progress: false,
      start: '2026-03-02T00:00:00Z',
    });
    expect(code).toBe(0);
    const batches = received.filter((m) => m.topic.endsWith('/telemetry')).map((m) => decodeTelemetryBatch(m.payload));
    expect(new Set(batches.map((b) => b.vin)).size).toBe(3);
    expect(Math.min(...batches.flatMap((b) => b.samples.map((x) => x.ts)))).toBeGreaterThanOrEqual(START);
  });
});

describe('simulateToReplay', () => {
  it('writes one parseable replay file per VIN, the same for the same seed', async () => {
    const opts = { vehicles: 4, seed: 9, from: START, to: START + 3 * 86_400_000, sampleEveryMs: 600_000 };
    const a = await simulateToReplay({ ...opts, outDir: join(tmp, 'a') });
    const b = await simulateToReplay({ ...opts, outDir: join(tmp, 'b') });
    expect(a.length).toBe(4);
    expect((await readdir(join(tmp, 'a'))).sort()).toEqual([...a.map((p) => p.split('/').pop()), 'vehicles.json'].sort());
    for (let i = 0; i < a.length; i++) {
      const text = await readFile(a[i], 'utf8');
      expect(await readFile(b[i], 'utf8')).toBe(text);
      const readings = text.split('\n').filter(Boolean).map(parseReplayLine);
      expect(readings.length).toBeGreaterThan(10);
      expect(a[i].endsWith(`${readings[0].vin}.jsonl`)).toBe(true);
      expect(readings[0].ts).toBe(START);
    }
    const profiles = JSON.parse(await readFile(join(tmp, 'a', 'vehicles.json'), 'utf8'));
    expect(profiles).toHaveLength(4);
  });
});
