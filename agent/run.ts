// The in-vehicle agent (entry: main.ts), wired: source -> sampler (policy) -> spool (disk) -> uplink (MQTT QoS 1).
// runAgent returns the process exit code: in replay mode 0 once the file is read and every
// sample (incl. older spooled ones) has been acknowledged by the broker; non-zero otherwise.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fs } from './builtins.js';
import { encodeTelemetryBatch } from '../proto/agent-wire.js';
import { CodecError } from '../proto/codec-limits.js';
import type { Sample } from '../proto/domain.js';
import { PACKAGE_VERSION } from '../proto/paths.js';
import { AgentOptionsSchema, defaultSpoolDir, type AgentOptions, type ResolvedAgentOptions } from './options.js';
import { DEFAULT_POLICY, PolicyStore } from './policy.js';
import { ReplayCheckpoint } from './replay-checkpoint.js';
import { Sampler } from './sampler.js';
import type { ReplaySource } from './sources/replay.js';
import type { SignalSource } from './sources/source.js';
import { Spool } from './spool.js';
import { Uplink } from './uplink.js';

export { AgentOptionsSchema, defaultSpoolDir, type AgentOptions } from './options.js';

/** Split a batch until each part encodes within the telemetry size limit (a batch over it could never be sent). */
export function splitToFit(vin: string, samples: Sample[]): Sample[][] {
  try {
    encodeTelemetryBatch({ vin, bootId: '00000000-0000-0000-0000-000000000000', seq: Number.MAX_SAFE_INTEGER, samples, dropped: 2 ** 31 });
    return [samples];
  } catch (err) {
    if (!(err instanceof CodecError) || err.failure !== 'oversized' || samples.length < 2) throw err;
    const mid = Math.ceil(samples.length / 2);
    return [...splitToFit(vin, samples.slice(0, mid)), ...splitToFit(vin, samples.slice(mid))];
  }
}

export interface AgentDeps {
  log?: (msg: string) => void;
  /** Called once the agent is running (tests and the bench inspect it). */
  onReady?: (agent: { spool: Spool; uplink: Uplink; policy: PolicyStore; sampler: Sampler; bootId: string }) => void;
}

/**
 * A random (version 4) UUID for this boot, from /dev/urandom where there is one: `crypto.randomUUID`
 * would load Node's crypto binding and modules (~3 MB of RSS on Node 24) for 16 random bytes.
 */
export function newBootId(): string {
  const b = Buffer.alloc(16);
  try {
    const fd = fs.openSync('/dev/urandom', 'r');
    try {
      if (fs.readSync(fd, b, 0, 16, null) !== 16) throw new Error('short read');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return (createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto')).randomUUID();
  }
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 9562 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

const EXIT_OK = 0;
const EXIT_UNDELIVERED = 1;
const EXIT_BAD_CONFIG = 2;

function readSecret(path: string | undefined, what: string): Buffer | undefined {
  if (!path) return undefined;
  try {
    return fs.readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read ${what} file ${path}: ${(err as Error).message}`);
  }
}

// Each source is loaded only when used: Kuksa brings gRPC (~15 MB of RSS in a process that targets
// < 60 MB), the replay reader zod (the replay-line schema), the simulated one the vehicle model.
type Source = SignalSource & { lineOf?: ReplaySource['lineOf'] };
async function makeSource(
  o: ResolvedAgentOptions,
  sampler: () => Sampler,
  log: (m: string) => void,
  resumeAfterLine: number,
): Promise<Source> {
  if (o.replay !== undefined) {
    const { ReplaySource } = await import('./sources/replay.js');
    if (resumeAfterLine > 0) log(`replay: resuming ${o.replay} after line ${resumeAfterLine} (earlier lines are already spooled)`);
    return new ReplaySource({
      file: o.replay,
      vin: o.vin,
      speed: o.speed,
      resumeAfterLine,
      onIssue: (i) => log(`replay: ${o.replay}:${i.line ?? '?'}: skipped: ${i.reason}`),
      backpressure: () => sampler().waitBacklog(8),
    });
  }
  if (o.kuksa !== undefined) {
    const { KuksaSource } = await import('./sources/kuksa.js');
    return new KuksaSource({
      address: o.kuksa,
      ca: readSecret(o.kuksaCaFile, 'Kuksa CA'),
      token: o.kuksaTokenFile ? readSecret(o.kuksaTokenFile, 'Kuksa token')!.toString('utf8').trim() : undefined,
      log,
    });
  }
  const { SimulatedSource } = await import('./sources/simulated.js');
  return new SimulatedSource({
    vin: o.vin,
    seed: o.seed,
    powertrain: o.powertrain,
    startTs: o.simStartTs ?? Date.now(),
    stepMs: o.simStepMs,
    speed: o.speed,
  });
}

export async function runAgent(input: AgentOptions, signal?: AbortSignal, deps: AgentDeps = {}): Promise<number> {
  const parsed = AgentOptionsSchema.safeParse(input);
  const log = deps.log ?? ((m: string) => process.stderr.write(`[agent ${input?.vin ?? '?'}] ${m}\n`));
  if (!parsed.success) {
    log(`invalid options: ${parsed.error.message}`);
    return EXIT_BAD_CONFIG;
  }
  const o = parsed.data;
  let password: string | undefined;
  let tls: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  try {
    password = o.passwordFile ? readSecret(o.passwordFile, 'password')!.toString('utf8').trim() : undefined;
    tls = { ca: readSecret(o.caFile, 'CA'), cert: readSecret(o.certFile, 'certificate'), key: readSecret(o.keyFile, 'key') };
  } catch (err) {
    log((err as Error).message);
    return EXIT_BAD_CONFIG;
  }

  const bootId = newBootId();
  const spoolDir = o.spoolDir ?? defaultSpoolDir(o.vin);
  let spool: Spool | undefined;
  let checkpoint: ReplayCheckpoint | undefined;
  let resumeAfterLine = 0;
  try {
    spool = await Spool.open({ dir: spoolDir, maxBytes: o.spoolMaxBytes, maxAgeMs: o.spoolMaxAgeMs, log });
    if (o.replay !== undefined) {
      checkpoint = new ReplayCheckpoint(spoolDir, o.replay);
      const saved = checkpoint.load();
      if (saved === undefined) {
        // A different file (or a finished one): start at its first line.
        spool.resetSourceLine();
        checkpoint.save(0);
        resumeAfterLine = 0;
      } else resumeAfterLine = Math.max(saved, spool.sourceLine);
    }
  } catch (err) {
    log(`cannot start: ${(err as Error).message}`);
    await spool?.close();
    return EXIT_BAD_CONFIG;
  }
  const policy = new PolicyStore(DEFAULT_POLICY, log, join(spoolDir, 'policy.json'));
  const replay = o.replay !== undefined;
  const mode = o.sampling === 'auto' ? (replay ? 'passthrough' : 'policy') : o.sampling;
  log(
    `starting: boot ${bootId}, source ${replay ? `replay ${o.replay}` : o.kuksa ? `kuksa ${o.kuksa}` : 'simulated'}, sampling ${mode}, spool ${spool.dir} (${spool.stats().pendingRecords} batches pending)`,
  );

  let reportedDrops = spool.stats().droppedTotal;
  const uplink = new Uplink({
    vin: o.vin,
    brokerUrl: o.broker,
    topicPrefix: o.topicPrefix,
    bootId,
    spool,
    username: o.username ?? o.vin,
    password,
    ...tls,
    flushRateLimit: o.flushRateLimit,
    reconnectMinMs: o.reconnectMinMs,
    reconnectMaxMs: o.reconnectMaxMs,
    status: () => {
      const st = spool.stats();
      return {
        vin: o.vin,
        agentVersion: PACKAGE_VERSION,
        configVersion: policy.policy.version,
        bootId,
        ts: Date.now(),
        spoolDropped: st.droppedTotal,
        spoolPending: st.pendingSamples,
      };
    },
    onConfig: (payload) => policy.applyPayload(payload),
    log,
  });
  policy.onChange(() => uplink.publishStatus());

  let storeFailed = false;
  let statusTimer: NodeJS.Timeout | undefined;
  let source: Source | undefined;
  const sampler = new Sampler({
    mode,
    policy,
    batchMaxSamples: o.batchMaxSamples,
    batchMaxDelayMs: o.batchMaxDelayMs,
    onBatch: async (batch: Sample[]) => {
      for (const samples of splitToFit(o.vin, batch)) {
        const line = source?.lineOf?.get(samples[samples.length - 1]);
        await spool.append(bootId, samples, line);
      }
      const drops = spool.stats().droppedTotal;
      if (drops !== reportedDrops) {
        reportedDrops = drops;
        // Tell the cloud about drops, at most once a second (they come in bursts when full).
        statusTimer ??= setTimeout(() => {
          statusTimer = undefined;
          uplink.publishStatus();
        }, 1000).unref();
      }
      uplink.kick();
    },
    onError: (err) => {
      storeFailed = true;
      log(`spool append failed, batch lost: ${err.message}`);
    },
  });

  try {
    source = await makeSource(o, () => sampler, log, resumeAfterLine);
  } catch (err) {
    log((err as Error).message);
    await spool.close();
    return EXIT_BAD_CONFIG;
  }
  uplink.start();
  deps.onReady?.({ spool, uplink, policy, sampler, bootId });

  const aborted = new Promise<void>((resolve) => {
    if (signal?.aborted) resolve();
    signal?.addEventListener('abort', () => resolve(), { once: true });
  });

  let code = EXIT_OK;
  let replayFinished = false;
  try {
    await source.start((s) => sampler.push(s));
    if (replay) {
      const finished = await Promise.race([source.done.then(() => 'done' as const), aborted.then(() => 'aborted' as const)]);
      await source.stop();
      await sampler.drain();
      replayFinished = finished === 'done';
      if (finished === 'done') {
        log('replay file read; waiting until every batch is acknowledged');
        await Promise.race([uplink.idle(), aborted]);
      }
    } else {
      await Promise.race([source.done, aborted]);
      await source.stop();
      await sampler.drain();
      // Give the broker a moment to take what is buffered; the spool keeps the rest for the next start.
      await Promise.race([uplink.idle(), new Promise((r) => setTimeout(r, 2000).unref())]);
    }
  } catch (err) {
    log(`source failed: ${(err as Error).message}`);
    code = EXIT_UNDELIVERED;
    await source.stop().catch(() => {});
    await sampler.drain();
  }
  if (statusTimer) clearTimeout(statusTimer);
  const st = spool.stats();
  await uplink.stop();
  await spool.close();
  if (replay && (st.pendingRecords > 0 || storeFailed)) {
    log(`not delivered: ${st.pendingSamples} samples in ${st.pendingRecords} batches remain in the spool`);
    code = EXIT_UNDELIVERED;
  } else if (replay && !replayFinished) {
    log('stopped before the replay file was read to its end');
    code = EXIT_UNDELIVERED;
  } else if (storeFailed) code = EXIT_UNDELIVERED;
  if (replay && code === EXIT_OK && replayFinished) checkpoint?.clear();
  log(`stopped (exit ${code}); sent ${uplink.sent}, acknowledged ${uplink.acked}, spool dropped ${st.droppedTotal} samples in total`);
  return code;
}
