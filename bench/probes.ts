// Latency probes of the end-to-end and cluster benchmarks (bench/e2e.ts, bench/cluster.ts):
// publish -> HmiPrompt and -> SSE `created` event, per instance (one, or a cluster's), under a
// background load the caller runs. The benchmarks run them in a process of their own
// (bench/probe-process.ts), as a car's head unit is not the load generator.
import { decodeHmiPrompt } from '../proto/codec.js';
import type { Sample } from '../proto/domain.js';
import { readSseFrames } from '../tools/sse-frames.js';
import type { IngestProcess } from './ingest-process.js';
import { BENCH_T0, birth, closeAll, drivingSample, publishQos1, telemetryPayload } from './load.js';
import { percentiles, round } from './stats.js';
import { connectSpread, sleep } from './cluster-common.js';

/** What a probe needs of an instance: its API, its broker, an operator's credentials. */
export type ProbeTarget = Pick<IngestProcess, 'api' | 'mqttUrl' | 'auth'>;

interface CreatedEvent {
  vin: string;
  kind: string;
  promptId: string;
  /** The evidence's event time (the reading that opened it). */
  ts: number | undefined;
}

/** The SSE stream of one instance: calls onCreated per `created` event until closed. */
function readStream(ingest: ProbeTarget, onCreated: (e: CreatedEvent) => void): { ready: Promise<void>; close(): Promise<void> } {
  const ac = new AbortController();
  let opened!: () => void;
  const ready = new Promise<void>((r) => (opened = r));
  const done = (async () => {
    const res = await fetch(`${ingest.api}/api/v1/stream?dealerId=bench`, { signal: ac.signal, headers: ingest.auth });
    opened();
    await readSseFrames(res, (_event, data) => {
      const ev = JSON.parse(data);
      if (ev.step === 'created' && ev.prompt?.vin)
        onCreated({ vin: ev.prompt.vin, kind: ev.prompt.kind, promptId: ev.prompt.id, ts: Number(ev.prompt.evidence?.ts) || undefined });
    });
  })().catch(() => opened());
  return {
    ready,
    async close() {
      ac.abort();
      await done;
    },
  };
}

/**
 * Probe vehicles (fresh ones per call: their seqs and event times start anew), probe i on instance i mod n, its head unit subscribed there: alternate re-arm
 * (60 %, charging) and critical (5 %) SOC; time the publish -> HmiPrompt on the probe's instance,
 * and -> the `created` event on the SSE stream of the probe's instance (every instance streams
 * every prompt: also timed, the first instance to stream it, and the slowest). A cycle's prompts
 * are awaited (up to cycleTimeoutMs) before the next cycle, and each prompt is put to the cycle
 * whose reading opened it (the SSE event's evidence.ts; an HmiPrompt by its prompt id), so a slow
 * prompt is measured as slow, never against a later send.
 */
export async function latencyProbes(ingests: ProbeTarget[], probes: string[], cycles: number, gapMs: number, cycleTimeoutMs: number) {
  const n = ingests.length;
  const instanceOf = (vin: string) => probes.indexOf(vin) % n;
  /** `${vin}|${cycle}` -> publish time of the critical reading */
  const sentAt = new Map<string, number>();
  const cycleOfTs = new Map<number, number>();
  const cycleOfPrompt = new Map<string, number>();
  const currentCycle = new Map<string, number>();
  const hmi = new Map<string, number>();
  const sseOwn = new Map<string, number>();
  const sseAll = new Map<string, number[]>();
  const clients = await connectSpread(ingests, probes);
  for (let i = 0; i < probes.length; i++) {
    const c = clients[i];
    const vin = probes[i];
    await new Promise<void>((res, rej) => c.subscribe(`v1/vehicles/${vin}/prompts`, { qos: 1 }, (e) => (e ? rej(e) : res())));
    c.on('message', (_t, payload) => {
      const p = decodeHmiPrompt(payload);
      if (p.kind !== 'charging.critical_soc' || p.withdrawn) return;
      const cycle = cycleOfPrompt.get(p.promptId) ?? currentCycle.get(vin);
      const key = `${vin}|${cycle}`;
      const t0 = sentAt.get(key);
      if (t0 !== undefined && !hmi.has(key)) hmi.set(key, performance.now() - t0);
    });
    await publishQos1(c, `v1/vehicles/${vin}/status`, birth(vin));
  }
  const streams = ingests.map((ing, k) =>
    readStream(ing, (e) => {
      if (e.kind !== 'charging.critical_soc') return;
      const cycle = (e.ts !== undefined ? cycleOfTs.get(e.ts) : undefined) ?? currentCycle.get(e.vin);
      if (cycle === undefined) return;
      cycleOfPrompt.set(e.promptId, cycle);
      const key = `${e.vin}|${cycle}`;
      const t0 = sentAt.get(key);
      if (t0 === undefined) return;
      const ms = performance.now() - t0;
      if (instanceOf(e.vin) === k && !sseOwn.has(key)) sseOwn.set(key, ms);
      const all = sseAll.get(key) ?? [];
      if (all.length < n) all.push(ms);
      sseAll.set(key, all);
    }),
  );
  await Promise.all(streams.map((s) => s.ready));
  await sleep(500);
  const perCycle: Array<{ at: number; hmiMaxMs: number; hmiMinMs: number }> = [];
  const t00 = performance.now();
  let seq = 1_000_000;
  let ts = BENCH_T0 + 400 * 86_400_000;
  let timedOutCycles = 0;
  for (let cycle = 0; cycle < cycles; cycle++) {
    const lowTs = ts + 1000;
    cycleOfTs.set(lowTs, cycle);
    await Promise.all(
      probes.map(async (vin, i) => {
        const base = drivingSample(ts, 0, 60);
        const charged: Sample = {
          ...base,
          signals: {
            ...base.signals,
            'Vehicle.Powertrain.TractionBattery.Charging.IsCharging': true,
            'Vehicle.LowVoltageSystemState': 'OFF',
            'Vehicle.Speed': 0,
          },
        };
        await publishQos1(clients[i], `v1/vehicles/${vin}/telemetry`, telemetryPayload(vin, seq, [charged]));
        const low = {
          ts: lowTs,
          signals: {
            ...charged.signals,
            'Vehicle.Powertrain.TractionBattery.StateOfCharge.Displayed': 5,
            'Vehicle.Powertrain.TractionBattery.Charging.IsCharging': false,
          },
        };
        currentCycle.set(vin, cycle);
        sentAt.set(`${vin}|${cycle}`, performance.now());
        await publishQos1(clients[i], `v1/vehicles/${vin}/telemetry`, telemetryPayload(vin, seq + 1, [low]));
      }),
    );
    const until = performance.now() + cycleTimeoutMs;
    const complete = () =>
      probes.every((vin) => {
        const key = `${vin}|${cycle}`;
        return hmi.has(key) && (sseAll.get(key)?.length ?? 0) === n;
      });
    while (!complete() && performance.now() < until) await sleep(20);
    if (!complete()) timedOutCycles++;
    const these = probes.map((vin) => hmi.get(`${vin}|${cycle}`) ?? Infinity);
    perCycle.push({
      at: round((performance.now() - t00) / 1000, 1),
      hmiMaxMs: round(Math.max(...these)),
      hmiMinMs: round(Math.min(...these)),
    });
    seq += 2;
    ts += 3_600_000;
    await sleep(gapMs);
  }
  await Promise.all(streams.map((s) => s.close()));
  await closeAll(clients);
  const all = [...sseAll.values()];
  return {
    hmiMs: percentiles([...hmi.values()]),
    sseMs: percentiles([...sseOwn.values()]),
    sseFirstInstanceMs: percentiles(all.map((v) => Math.min(...v))),
    sseLastInstanceMs: percentiles(all.filter((v) => v.length === n).map((v) => Math.max(...v))),
    expected: probes.length * cycles,
    /** Readings the probes published (two per probe and cycle), for a caller counting them in InfluxDB. */
    readingsPublished: probes.length * cycles * 2,
    /** Critical-SOC prompts not seen within the cycle's bound (or at all). */
    missingHmi: probes.length * cycles - hmi.size,
    missingSse: probes.length * cycles - sseOwn.size,
    timedOutCycles,
    cycleTimeoutMs,
    perCycle,
    probesPerInstance: ingests.map((_, k) => probes.filter((v) => instanceOf(v) === k).length),
  };
}
