// The agent as a real process against a real Mosquitto: SIGKILL mid-flush and restart, broker
// outage, username/password, TLS and mutual TLS, and the ACL that keeps a vehicle to its own VIN.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAgent, type AgentOptions } from '../../agent/main.js';
import { PACKAGE_ROOT } from '../../proto/paths.js';
import { canConnect, startMosquitto, type MosquittoHandle } from '../support/mosquitto.js';
import { waitFor } from '../support/wait.js';
import { VIN, VIN2, VIN3, collect, replayLine, expectedOdometers, odometers, writeReplay } from '../unit/agent/fixtures.js';

let dir: string;
let childScript: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'agent-mq-'));
  // dist/ is built by `npm test` before vitest runs; drive the compiled agent from a tiny child script.
  childScript = join(dir, 'agent-child.mjs');
  writeFileSync(
    childScript,
    [
      `import { runAgent } from ${JSON.stringify(join(PACKAGE_ROOT, 'dist/agent/main.js'))};`,
      `const ac = new AbortController();`,
      `process.on('SIGTERM', () => ac.abort());`,
      `process.exitCode = await runAgent(JSON.parse(process.argv[2]), ac.signal, { log: () => {} });`,
    ].join('\n'),
  );
}, 180_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function spawnAgent(opts: AgentOptions): { proc: ChildProcess; exit: Promise<number | null> } {
  const proc = spawn(process.execPath, [childScript, JSON.stringify(opts)], { stdio: 'ignore' });
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return { proc, exit };
}

const quiet = { log: () => {} };

describe('agent process against Mosquitto', () => {
  let mq: MosquittoHandle;
  beforeAll(async () => {
    mq = await startMosquitto();
  });
  afterAll(async () => mq?.dispose());

  it('SIGKILL mid-flush, twice: every sample arrives, exactly once after dedup by seq, in order', async () => {
    const sub = await collect(mq.url);
    try {
      const file = join(dir, 'kill.jsonl');
      const n = 1200;
      writeReplay(file, n);
      const opts: AgentOptions = {
        vin: VIN,
        broker: mq.url,
        replay: file,
        speed: 0,
        spoolDir: join(dir, 'spool-kill'),
        batchMaxSamples: 4,
        flushRateLimit: 100,
      };
      for (const killAt of [40, 150]) {
        const a = spawnAgent(opts);
        await waitFor(() => sub.batches.length >= killAt || a.proc.exitCode !== null, {
          timeoutMs: 60_000,
          what: `${killAt} batches before the kill`,
        });
        a.proc.kill('SIGKILL');
        expect(await a.exit).toBeNull(); // it was killed, not finished
      }
      const last = spawnAgent(opts);
      expect(await last.exit).toBe(0);
      await waitFor(() => odometers(sub.bySeq()).length >= n, { timeoutMs: 60_000, what: `all ${n} samples` });
      const unique = sub.bySeq();
      expect(odometers(unique)).toEqual(expectedOdometers(n));
      // seq increases without reuse across the three processes; several boot ids were used.
      expect(new Set(unique.map((b) => b.bootId)).size).toBeGreaterThanOrEqual(2);
      const seqs = unique.map((b) => b.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    } finally {
      await sub.close();
    }
  });

  it('broker down for a while, then back: the spool is flushed in order', async () => {
    const sub = await collect(mq.url);
    try {
      const file = join(dir, 'outage.jsonl');
      const n = 300;
      writeReplay(file, n, { vin: VIN3 });
      let uplink: { connects: number } | undefined;
      const logs: string[] = [];
      const run = runAgent(
        {
          vin: VIN3,
          broker: mq.url,
          replay: file,
          speed: 0,
          spoolDir: join(dir, 'spool-outage'),
          batchMaxSamples: 2,
          flushRateLimit: 40,
          reconnectMinMs: 100,
          reconnectMaxMs: 800,
        },
        undefined,
        { log: (m) => logs.push(m), onReady: (a) => void (uplink = a.uplink) },
      );
      await waitFor(() => sub.bySeq(VIN3).length >= 20, { what: '20 batches before the outage' });
      await mq.stop();
      // The outage lasts until the agent has seen its reconnects refused twice (it cannot send).
      const refused = () => logs.filter((l) => /^uplink: .*ECONNREFUSED/.test(l)).length;
      await waitFor(() => refused() >= 2, { what: 'two refused reconnects during the outage' });
      await mq.start();
      expect(await run).toBe(0);
      await waitFor(() => odometers(sub.bySeq(VIN3)).length >= n, { timeoutMs: 60_000, what: `all ${n} samples after the outage` });
      expect(odometers(sub.bySeq(VIN3))).toEqual(expectedOdometers(n));
      // Ordered flush: the first arrival of each seq comes in seq order.
      const firstSeen: number[] = [];
      for (const b of sub.batches) if (b.vin === VIN3 && !firstSeen.includes(b.seq)) firstSeen.push(b.seq);
      expect(firstSeen).toEqual([...firstSeen].sort((x, y) => x - y));
      expect(uplink!.connects).toBeGreaterThanOrEqual(2); // it did reconnect
    } finally {
      await sub.close();
    }
  });

  it('spool full while the broker is down: fault samples all kept, every drop counted and reported', async () => {
    const vin = 'LSVAU2180N2183297';
    const file = join(dir, 'full.jsonl');
    const n = 400;
    const lines: string[] = [];
    for (let i = 0; i < n; i++) lines.push(replayLine(i, vin, 10));
    writeFileSync(file, lines.join('\n') + '\n');
    const sub = await collect(mq.url);
    await mq.stop();
    try {
      let sampler: { samplesIn: number; backlog: number } | undefined;
      const run = runAgent(
        {
          vin,
          broker: mq.url,
          replay: file,
          speed: 0,
          spoolDir: join(dir, 'spool-full'),
          batchMaxSamples: 5,
          spoolMaxBytes: 8192,
          reconnectMinMs: 100,
          reconnectMaxMs: 400,
        },
        undefined,
        { log: () => {}, onReady: (a) => void (sampler = a.sampler) },
      );
      await waitFor(() => !!sampler && sampler.samplesIn === n && sampler.backlog === 0, { what: 'every sample through the sampler' });
      await mq.start();
      expect(await run).toBe(0);
      await waitFor(() => sub.statuses.some((st) => st.vin === vin && !st.online), { what: 'the death status' });
      const got = sub.bySeq(vin);
      const samples = got.flatMap((b) => b.samples);
      const dropped = got.reduce((t, b) => t + b.dropped, 0);
      expect(dropped).toBeGreaterThan(0);
      expect(samples.filter((x) => x.dtcs?.length)).toHaveLength(n / 10);
      // Every drop is counted: the status carries the total, the batches the drops made before them.
      const lastStatus = sub.statuses.filter((st) => st.vin === vin).at(-1)!;
      expect(samples.length + lastStatus.spoolDropped).toBe(n);
      expect(dropped).toBeLessThanOrEqual(lastStatus.spoolDropped);
    } finally {
      if (!(await canConnect(mq.port))) await mq.start();
      await sub.close();
    }
  });
});

/** The uplink's error lines ("uplink: Connection refused: Not authorized", TLS errors): failed connection attempts. */
const refusals = (logs: string[]) => logs.filter((l) => l.startsWith('uplink: ') && !l.startsWith('uplink: connected'));

describe('Mosquitto security: passwords, ACL, TLS', () => {
  let mq: MosquittoHandle;
  const pw = (name: string, value: string) => {
    const p = join(dir, `${name}.pw`);
    writeFileSync(p, `${value}\n`);
    return p;
  };
  beforeAll(async () => {
    mq = await startMosquitto({
      acl: true,
      tls: true,
      passwords: { [VIN]: 'vin1-secret', [VIN2]: 'vin2-secret', ingest: 'ingest-secret' },
    });
  });
  afterAll(async () => mq?.dispose());

  it('a vehicle delivers with its own credentials over TLS; wrong password or no CA never connects', async () => {
    const sub = await collect(mq.url, { username: 'ingest', password: 'ingest-secret' });
    try {
      const file = join(dir, 'tls.jsonl');
      writeReplay(file, 20);
      const ok = await runAgent(
        {
          vin: VIN,
          broker: mq.tlsUrl!,
          caFile: mq.ca,
          passwordFile: pw('vin1', 'vin1-secret'),
          replay: file,
          speed: 0,
          spoolDir: join(dir, 'spool-tls'),
        },
        undefined,
        quiet,
      );
      expect(ok).toBe(0);
      await waitFor(() => odometers(sub.bySeq(VIN)).length >= 20, { what: '20 samples over TLS' });
      expect(odometers(sub.bySeq(VIN))).toEqual(expectedOdometers(20));

      for (const bad of [
        { passwordFile: pw('wrong', 'nope'), caFile: mq.ca },
        { passwordFile: pw('vin1b', 'vin1-secret') }, // server certificate not trusted without the CA
      ]) {
        const ac = new AbortController();
        let uplink: { connects: number } | undefined;
        const logs: string[] = [];
        const run = runAgent(
          {
            vin: VIN,
            broker: mq.tlsUrl!,
            replay: file,
            speed: 0,
            spoolDir: join(dir, `spool-bad-${Math.random()}`),
            reconnectMinMs: 100,
            ...bad,
          },
          ac.signal,
          { log: (m) => logs.push(m), onReady: (a) => void (uplink = a.uplink) },
        );
        // Positive marker: a connection attempt was made and refused, then stop.
        await waitFor(() => refusals(logs).length >= 1, { what: 'a refused connection attempt' });
        ac.abort();
        expect(await run).toBe(1);
        expect(uplink!.connects).toBe(0);
        expect(logs.some((l) => l.startsWith('uplink: connected'))).toBe(false);
      }
    } finally {
      await sub.close();
    }
  });

  it("a second vehicle's credentials cannot publish under another VIN (ACL)", async () => {
    const sub = await collect(mq.url, { username: 'ingest', password: 'ingest-secret' });
    try {
      const before = sub.bySeq(VIN).length;
      const file = join(dir, 'spoof.jsonl');
      writeReplay(file, 10); // lines for VIN, sent with VIN2's credentials
      // Mosquitto acknowledges a denied QoS 1 publish (MQTT 3.1.1) but drops it: nothing may arrive.
      const code = await runAgent(
        {
          vin: VIN,
          username: VIN2,
          broker: mq.url,
          passwordFile: pw('vin2', 'vin2-secret'),
          replay: file,
          speed: 0,
          spoolDir: join(dir, 'spool-spoof'),
        },
        undefined,
        quiet,
      );
      expect(code).toBe(0);
      // Control: the honest VIN2 agent publishing under its own VIN does arrive (so the subscriber works).
      const own = join(dir, 'own.jsonl');
      writeReplay(own, 5, { vin: VIN2 });
      expect(
        await runAgent(
          { vin: VIN2, broker: mq.url, passwordFile: pw('vin2', 'vin2-secret'), replay: own, speed: 0, spoolDir: join(dir, 'spool-own') },
          undefined,
          quiet,
        ),
      ).toBe(0);
      await waitFor(() => odometers(sub.bySeq(VIN2)).length >= 5, { what: 'the control samples of VIN2' });
      expect(sub.bySeq(VIN).length).toBe(before);
      expect(sub.statuses.filter((st) => st.vin === VIN && st.bootId && st.online).length).toBe(0);
    } finally {
      await sub.close();
    }
  });

  it('mutual TLS: a client certificate is required and accepted', async () => {
    const m = await startMosquitto({ mtls: true });
    try {
      const sub = await collect(m.url);
      const file = join(dir, 'mtls.jsonl');
      writeReplay(file, 5);
      const base = { vin: VIN, broker: m.tlsUrl!, caFile: m.ca, replay: file, speed: 0 };
      expect(
        await runAgent({ ...base, certFile: m.clientCert, keyFile: m.clientKey, spoolDir: join(dir, 'spool-mtls') }, undefined, quiet),
      ).toBe(0);
      await waitFor(() => odometers(sub.bySeq(VIN)).length >= 5, { what: '5 samples over mutual TLS' });
      const ac = new AbortController();
      const logs: string[] = [];
      let uplink: { connects: number } | undefined;
      const run = runAgent({ ...base, spoolDir: join(dir, 'spool-mtls-nocert'), reconnectMinMs: 100 }, ac.signal, {
        log: (m) => logs.push(m),
        onReady: (a) => void (uplink = a.uplink),
      });
      // Positive marker: a connection attempt without a client certificate was refused, then stop.
      await waitFor(() => refusals(logs).length >= 1, { what: 'a refused connection attempt' });
      ac.abort();
      expect(await run).toBe(1);
      expect(uplink!.connects).toBe(0);
      await sub.close();
    } finally {
      await m.dispose();
    }
  });
});
