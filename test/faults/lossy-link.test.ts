// The real agent (bin/odopulse.js agent, replaying a known file) behind a lossy link to ingest: an
// in-process TCP proxy that delays, pauses and cuts connections, and two restarts of ingest, whose
// embedded broker goes down with it. The agent spools through all of it and flushes in order: every
// sample it was given ends up in InfluxDB at its exact time, and the journal received each
// vehicle's batches in seq order, with no gap left.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeTelemetryBatch } from '../../proto/codec.js';
import { VSS } from '../../proto/signals.js';
import { Database } from '../../ingest/store/sqlite/driver.js';
import type { VehicleDetailJson } from '../support/api.js';
import { influxQuery, startInfluxd, type InfluxdHandle } from '../support/influxd.js';
import { apiGet, BIN, putVehicle, startIngestProcess, type IngestProcess } from '../support/ingest.js';
import { PROFILE, writeReplay, type ScenarioLine } from '../support/scenario.js';
import { waitFor } from '../support/wait.js';
import { LossyProxy } from './support/proxy.js';
import { recordFault } from './support/table.js';

const VINS = ['LLNKDRP0000000001', 'LLNKDRP0000000002'];
/** Samples per agent, 1 s apart in event time, replayed at SPEED x: about 75 s of replay. */
const SAMPLES = 3000;
const SPEED = 40;
const BATCH = 10;

interface Agent {
  vin: string;
  proc: ChildProcess;
  spool: string;
  output: () => string;
  exited: Promise<number | null>;
}

function startAgent(vin: string, broker: string, replay: string, spool: string): Agent {
  const args = ['agent', '--vin', vin, '--broker', broker, '--replay', replay, '--speed', String(SPEED), '--spool', spool];
  const proc = spawn(process.execPath, [BIN, ...args, '--batch-max-samples', String(BATCH)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  return { vin, proc, spool, output: () => out, exited };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('lossy link and broker restarts between the agent and ingest', () => {
  const env: Record<string, string> = {};
  let influx: InfluxdHandle;
  let ingest: IngestProcess;
  let proxy: LossyProxy;
  let dir: string;
  const agents: Agent[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'odopulse-lossy-'));
    influx = await startInfluxd({ database: 'lossy' });
    Object.assign(env, { INFLUX_URL: influx.url, INFLUX_BUCKET: 'lossy' });
    ingest = await startIngestProcess(env);
    for (const vin of VINS) await putVehicle(ingest, vin, PROFILE);
    proxy = new LossyProxy({ target: () => ({ host: '127.0.0.1', port: ingest.mqttPort }) });
    await proxy.listen();
  });
  afterAll(async () => {
    for (const a of agents) if (a.proc.exitCode === null) a.proc.kill('SIGKILL');
    await proxy?.close();
    await ingest?.stop('SIGKILL');
    await influx?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('delivers every sample the agent was given, exactly, journalled in seq order', async () => {
    const t0 = Math.floor((Date.now() - 6 * 3600_000) / 1000) * 1000;
    const expected = Array.from({ length: SAMPLES }, (_, i) => t0 + i * 1000);
    for (const vin of VINS) {
      const lines: ScenarioLine[] = expected.map((ts, i) => ({
        ts: new Date(ts).toISOString(),
        vin,
        signals: { [VSS.odometer]: 1000 + i / 10, [VSS.soc]: 90 - (i % 700) / 10, [VSS.speed]: i % 120, [VSS.lowVoltageSystemState]: 'ON' },
      }));
      writeReplay(join(dir, `${vin}.jsonl`), lines);
    }
    const started = Date.now();
    for (const vin of VINS) agents.push(startAgent(vin, proxy.url, join(dir, `${vin}.jsonl`), join(dir, `spool-${vin}`)));
    const running = () => agents.every((a) => a.proc.exitCode === null);

    /** Batches journalled so far, from the vehicles' sequence view (kept across ingest restarts). */
    const journalled = async () => {
      let n = 0;
      for (const vin of VINS) n += (await apiGet<VehicleDetailJson>(ingest, `/api/v1/vehicles/${vin}`)).sequence?.lastSeq ?? 0;
      return n;
    };
    const restart = async (downMs: number) => {
      expect(await ingest.stop('SIGTERM')).toBe(0);
      await sleep(downMs); // the outage: the agents keep replaying into their spools
      ingest = await startIngestProcess(env, {
        dataDir: ingest.dataDir,
        httpPort: ingest.httpPort,
        mqttPort: ingest.mqttPort,
        token: ingest.token,
      });
    };
    const cutsFor = async (ms: number) => {
      for (const end = Date.now() + ms; Date.now() < end;) {
        proxy.cutOne();
        await sleep(300 + Math.random() * 500);
      }
    };
    const steps: Array<[string, () => unknown]> = [
      ['delay 150 ms ± 100 ms', () => ((proxy.delayMs = 150), (proxy.jitterMs = 100))],
      ['cut every connection', () => proxy.cutAll()],
      ['pause the link 3 s', async () => (proxy.pause(), await sleep(3000), proxy.resume())],
      ['cut every connection', () => proxy.cutAll()],
      ['ingest SIGTERM, 5 s down, restart', () => restart(5000)],
      ['cut one connection', () => proxy.cutOne()],
      ['a cut every 300-800 ms for 6 s', () => cutsFor(6000)],
      ['delay 400 ms ± 200 ms', () => ((proxy.delayMs = 400), (proxy.jitterMs = 200))],
      ['cut every connection', () => proxy.cutAll()],
      ['ingest SIGTERM, restart at once', () => restart(0)],
      ['cut every connection', () => proxy.cutAll()],
      ['pause the link 2 s', async () => (proxy.pause(), await sleep(2000), proxy.resume())],
    ];
    const done: string[] = [];
    for (const [what, act] of steps) {
      // a positive marker between faults: the journal took more of the agents' batches since the last one
      const before = await journalled();
      await waitFor(async () => (await journalled()) >= before + 6 || !running(), {
        what: `6 more batches journalled before "${what}"`,
        timeoutMs: 60_000,
        intervalMs: 200,
      });
      if (!running()) break;
      await act();
      done.push(what);
    }
    expect(done, 'every fault happened while both agents were still replaying').toEqual(steps.map(([w]) => w));
    proxy.delayMs = 0;
    proxy.jitterMs = 0;

    // replay mode exits 0 only once every sample is acknowledged
    const codes = await waitFor(async () => Promise.all(agents.map((a) => a.exited)), { what: 'both agents done', timeoutMs: 180_000 });
    expect(codes, agents.map((a) => a.output().slice(-2000)).join('\n---\n')).toEqual(VINS.map(() => 0));
    const agentMs = Date.now() - started;

    const lastSeqs = new Map(
      agents.map((a) => [a.vin, (JSON.parse(readFileSync(join(a.spool, 'state.json'), 'utf8')) as { lastSeq: number }).lastSeq]),
    );
    const storedBy = new Map<string, number[]>();
    for (const vin of VINS) {
      // InfluxDB: each sample at its exact time, nothing missing, nothing extra
      const times = await waitFor(
        async () => {
          const res = await influxQuery(
            influx.url,
            'lossy',
            `SELECT "${VSS.soc}" FROM "telemetry" WHERE "vin" = '${vin}' AND time >= ${t0}ms`,
          );
          const ts = (res.results?.[0]?.series?.[0]?.values ?? []).map(([t]) => Number(t));
          return ts.length >= SAMPLES ? ts : undefined;
        },
        { what: `${SAMPLES} samples of ${vin} in InfluxDB`, timeoutMs: 90_000, intervalMs: 500 },
      );
      storedBy.set(vin, times);
      expect(times.length).toBe(SAMPLES);
      expect(times).toEqual(expected);

      // the sequence view: the agent's last seq, no gap
      const seqView = await waitFor(
        async () => {
          const s = (await apiGet<VehicleDetailJson>(ingest, `/api/v1/vehicles/${vin}`)).sequence;
          return s?.lastSeq === lastSeqs.get(vin) ? s : undefined;
        },
        { what: `the sequence view of ${vin} at seq ${lastSeqs.get(vin)}` },
      );
      expect(seqView.gaps).toBe(0);
    }

    // the journal: each vehicle's batches first arrived in seq order 1, 2, 3, ... under one boot id,
    // and together they hold exactly the samples given
    const db = new Database(join(ingest.dataDir, 'journal.db'), { readonly: true });
    try {
      for (const vin of VINS) {
        const rows = db
          .prepare(
            "SELECT boot_id, seq, coalesce(payload, x'') AS payload FROM entries LEFT JOIN payloads USING (id) WHERE vin = ? ORDER BY id",
          )
          .all(vin) as Array<{
          boot_id: string;
          seq: number;
          payload: Buffer;
        }>;
        expect(new Set(rows.map((r) => r.boot_id)).size).toBe(1);
        expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: lastSeqs.get(vin)! }, (_, i) => i + 1));
        const ts = rows.flatMap((r) => decodeTelemetryBatch(r.payload).samples.map((s) => s.ts));
        expect(ts).toEqual(expected);
      }
    } finally {
      db.close();
    }

    const stored = [...storedBy.values()].reduce((n, t) => n + new Set(t).size, 0);
    const reconnects = agents.reduce((n, a) => n + (a.output().match(/uplink: connected/g)?.length ?? 0), 0);
    recordFault({
      fault: 'lossy link (delay, pauses, cuts) and ingest/broker restart ×2, real agent',
      load: `${VINS.length} agents replaying ${SAMPLES} samples each at ${SPEED}×, ${BATCH} per batch, through a TCP proxy`,
      produced: SAMPLES * VINS.length,
      stored,
      lost: SAMPLES * VINS.length - stored,
      promptsDuplicated: 0,
      notes:
        `${done.length} faults: ${proxy.stats.cut} connections cut, ${proxy.stats.droppedChunks} chunks dropped on the wire, ` +
        `${proxy.stats.refused} connects refused while ingest was down, 2 ingest restarts (SIGTERM, 5 s and 0 s down); ` +
        `agents connected ${reconnects} times, ${[...lastSeqs.values()].join(' + ')} batches, journal in seq order, 0 gaps; ` +
        `agents done after ${(agentMs / 1000).toFixed(0)} s`,
    });
  });
});
