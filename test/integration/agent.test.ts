// The agent end to end against an in-process aedes broker: replay delivery, seq across
// restarts, birth/death status, policy updates over the retained config topic.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { runAgent } from '../../agent/main.js';
import type { PolicyStore } from '../../agent/policy.js';
import { DEFAULT_POLICY } from '../../agent/policy.js';
import { encodeAgentConfig } from '../../proto/codec.js';
import type { Spool } from '../../agent/spool.js';
import { startAedes } from '../support/aedes.js';
import { waitFor } from '../support/wait.js';
import { VIN, collect, expectedOdometers, odometers, writeReplay, type Collector } from '../unit/agent/fixtures.js';

let broker: Awaited<ReturnType<typeof startAedes>>;
let dir: string;
let sub: Collector;

beforeAll(async () => {
  broker = await startAedes();
  dir = mkdtempSync(join(tmpdir(), 'agent-it-'));
  sub = await collect(broker.url);
});
afterAll(async () => {
  await sub?.close();
  await broker?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('agent (replay) against aedes', () => {
  it('delivers every replayed sample in order, skips bad lines with their line numbers, exits 0', async () => {
    const file = join(dir, 'a.jsonl');
    writeReplay(file, 120, { badLines: true });
    const logs: string[] = [];
    const code = await runAgent(
      { vin: VIN, broker: broker.url, replay: file, speed: 0, spoolDir: join(dir, 'spool'), batchMaxSamples: 7 },
      undefined,
      { log: (m) => logs.push(m) },
    );
    expect(code).toBe(0);
    await waitFor(() => sub.bySeq().reduce((n, b) => n + b.samples.length, 0) >= 120, { what: '120 samples received' });
    const got = sub.bySeq();
    expect(odometers(got)).toEqual(expectedOdometers(120));
    expect(got.every((b) => b.vin === VIN && b.samples.length <= 7)).toBe(true);
    expect(got.map((b) => b.seq)).toEqual(got.map((_, i) => i + 1));
    // Lines 5, 6 and 7 of the file are the invalid ones.
    const skipped = logs.filter((l) => /skipped/.test(l)).join('\n');
    expect(skipped).toMatch(/:5: skipped/);
    expect(skipped).toMatch(/:6: skipped: VIN LSVAU2180N2183295/);
    expect(skipped).toMatch(/:7: skipped/);
    // Birth then death (graceful stop) on the retained status topic.
    await waitFor(() => sub.statuses.some((s) => !s.online), { what: 'the death status' });
    expect(sub.statuses.find((s) => s.online)).toMatchObject({ vin: VIN, configVersion: 0, spoolDropped: 0 });
    expect(sub.statuses.at(-1)?.online).toBe(false);
  });

  it('keeps seq increasing across restarts, with a new boot id per start', async () => {
    const before = sub.bySeq();
    const lastSeq = before.at(-1)!.seq;
    const file = join(dir, 'b.jsonl');
    writeReplay(file, 10);
    expect(
      await runAgent(
        { vin: VIN, broker: broker.url, replay: file, speed: 0, spoolDir: join(dir, 'spool'), batchMaxSamples: 5 },
        undefined,
        { log: () => {} },
      ),
    ).toBe(0);
    await waitFor(() => sub.bySeq().length >= before.length + 2, { what: 'two more batches' });
    const fresh = sub.bySeq().filter((b) => b.seq > lastSeq);
    expect(fresh.map((b) => b.seq)).toEqual([lastSeq + 1, lastSeq + 2]);
    expect(fresh[0].bootId).not.toBe(before[0].bootId);
  });

  it('returns non-zero when stopped before everything is acknowledged (broker unreachable)', async () => {
    const file = join(dir, 'c.jsonl');
    writeReplay(file, 5);
    const ac = new AbortController();
    const spoolDir = join(dir, 'spool-unreachable');
    let spool: Spool | undefined;
    const run = runAgent({ vin: VIN, broker: 'mqtt://127.0.0.1:1', replay: file, speed: 0, spoolDir, reconnectMinMs: 50 }, ac.signal, {
      log: () => {},
      onReady: (a) => (spool = a.spool),
    });
    // Stop once the whole file waits in the spool: with no broker, nothing can be acknowledged.
    await waitFor(() => spool?.stats().pendingSamples === 5, { what: 'the 5 samples spooled' });
    ac.abort();
    expect(await run).toBe(1);
    // ...and the samples wait in the spool for the next start, which delivers them.
    expect(await runAgent({ vin: VIN, broker: broker.url, replay: file, speed: 0, spoolDir }, undefined, { log: () => {} })).toBe(0);
  });

  it('flushes the spool no faster than flushRateLimit', async () => {
    const vin = 'LSVAU2180N2183299';
    const file = join(dir, 'rate.jsonl');
    writeReplay(file, 30, { vin });
    const t0 = Date.now();
    // 30 one-sample batches at 10/s with a bucket of 10: at least 2 s, however fast the machine.
    const code = await runAgent(
      { vin, broker: broker.url, replay: file, speed: 0, spoolDir: join(dir, 'spool-rate'), batchMaxSamples: 1, flushRateLimit: 10 },
      undefined,
      { log: () => {} },
    );
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
    await waitFor(() => sub.bySeq(vin).length >= 30, { what: '30 rate-limited batches' });
  });

  it('rejects bad options with exit code 2 and a message', async () => {
    const logs: string[] = [];
    expect(await runAgent({ vin: 'NOT-A-VIN', broker: broker.url, replay: 'x' }, undefined, { log: (m) => logs.push(m) })).toBe(2);
    expect(await runAgent({ vin: VIN, broker: broker.url }, undefined, { log: (m) => logs.push(m) })).toBe(2);
    expect(logs.join('\n')).toMatch(/VIN must be 17 characters/);
    expect(logs.join('\n')).toMatch(/exactly one source/);
  });
});

describe('sampling policy over the retained config topic', () => {
  it('applies a new policy without restart, reports its version, keeps it when an invalid one arrives', async () => {
    const file = join(dir, 'slow.jsonl');
    writeReplay(file, 600);
    const ac = new AbortController();
    let policy: PolicyStore | undefined;
    const logs: string[] = [];
    const run = runAgent({ vin: VIN, broker: broker.url, replay: file, speed: 20, spoolDir: join(dir, 'spool-policy') }, ac.signal, {
      log: (m) => logs.push(m),
      onReady: (a) => (policy = a.policy),
    });
    const pub = await mqtt.connectAsync(broker.url, { clientId: 'cloud-config' });
    try {
      await waitFor(() => sub.statuses.some((s) => s.online && s.configVersion === 0 && policy !== undefined), {
        what: 'online on policy 0',
      });
      const v5 = { ...DEFAULT_POLICY, version: 5, batchMaxSamples: 3 };
      await pub.publishAsync(`v1/vehicles/${VIN}/config`, Buffer.from(encodeAgentConfig(v5)), { qos: 1, retain: true });
      await waitFor(() => sub.statuses.some((s) => s.online && s.configVersion === 5), { what: 'online on policy 5' });
      expect(policy!.policy.version).toBe(5);
      // Garbage, then a structurally valid protobuf whose policy fails validation (batchMaxSamples 0).
      await pub.publishAsync(`v1/vehicles/${VIN}/config`, Buffer.from([0xff, 0xff, 0x01]), { qos: 1 });
      await pub.publishAsync(`v1/vehicles/${VIN}/config`, Buffer.from(encodeAgentConfig({ ...v5, version: 6, batchMaxSamples: 0 })), {
        qos: 1,
      });
      await waitFor(() => policy!.rejected >= 2, { what: 'two invalid policies rejected' });
      expect(policy!.policy.version).toBe(5);
      expect(logs.join('\n')).toMatch(/rejected invalid sampling policy \(keeping version 5\)/);
    } finally {
      ac.abort();
      await run;
      await pub.publishAsync(`v1/vehicles/${VIN}/config`, Buffer.alloc(0), { qos: 1, retain: true }); // clear retained
      await pub.endAsync();
    }
  });
});

describe('agent with the simulated vehicle', () => {
  it('samples the model by the default policy: no position (privacy), valid batches, clean stop', async () => {
    const vin = 'LSVAU2180N2183298';
    const ac = new AbortController();
    const run = runAgent(
      {
        vin,
        broker: broker.url,
        simulate: true,
        seed: 3,
        powertrain: 'PHEV',
        simStartTs: Date.parse('2026-03-02T06:00:00Z'),
        simStepMs: 60_000,
        speed: 0,
        spoolDir: join(dir, 'spool-sim'),
        batchMaxSamples: 20,
      },
      ac.signal,
      { log: () => {} },
    );
    try {
      await waitFor(() => sub.bySeq(vin).length >= 3, { what: '3 simulated batches' });
    } finally {
      ac.abort();
    }
    expect(await run).toBe(0);
    const samples = sub.bySeq(vin).flatMap((b) => b.samples);
    expect(samples.length).toBeGreaterThan(20);
    expect(samples.some((x) => 'Vehicle.CurrentLocation.Latitude' in x.signals)).toBe(false);
    expect(samples.some((x) => 'Vehicle.TraveledDistance' in x.signals)).toBe(true);
    const ts = samples.map((x) => x.ts);
    expect(ts).toEqual([...ts].sort((a, b) => a - b));
  });
});
