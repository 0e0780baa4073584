// Test helpers around real processes: ingest and agent children, JSON fetches, sentinel batches.
// Polling is test/support/wait.ts.
import { spawn } from 'node:child_process';
import mqtt, { type IClientOptions } from 'mqtt';
import { BIN } from '../../bench/ingest-process.js';
import { encodeTelemetryBatch } from '../../proto/codec.js';
import type { Sample } from '../../proto/domain.js';
import type { PromptJson, PromptPageJson } from './api.js';
import { waitFor } from './wait.js';

export { BIN, startIngestProcess, type IngestProcess } from '../../bench/ingest-process.js';

/** Run `odopulse agent ...` to completion; resolves with its exit code and output. */
export async function runAgentProcess(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; output: string }> {
  const r = await runBin(['agent', ...args], env);
  return { code: r.code, output: r.stdout + r.stderr };
}

/** Run `odopulse <args>` to completion. */
export function runBin(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    proc.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Where a running ingest answers, and the credentials its API wants: every route but GET /healthz
 * needs a principal (startIngestProcess makes an operator key and gives its `auth` header).
 */
export interface IngestApi {
  api: string;
  auth: Record<string, string>;
}

export async function getJson<T>(url: string, headers: Record<string, string> = {}): Promise<T> {
  const r = await fetch(url, { headers });
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

/** GET `path` (e.g. /api/v1/prompts/ID) from ingest's API as JSON. */
export function apiGet<T>(ingest: IngestApi, path: string): Promise<T> {
  return getJson<T>(`${ingest.api}${path}`, ingest.auth);
}

/**
 * A request to ingest's API with its credentials; `json`, when given, is the body (as JSON). Resolves
 * with the response whatever its status: the caller asserts it.
 */
export function apiRequest(ingest: IngestApi, method: string, path: string, json?: unknown): Promise<Response> {
  return fetch(`${ingest.api}${path}`, {
    method,
    headers: { ...ingest.auth, ...(json === undefined ? {} : { 'content-type': 'application/json' }) },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
}

/** Register (PUT) the profile of vehicle `vin`; throws unless the API answers 2xx. */
export async function putVehicle(ingest: IngestApi, vin: string, profile: unknown): Promise<void> {
  const r = await apiRequest(ingest, 'PUT', `/api/v1/vehicles/${vin}`, profile);
  if (!r.ok) throw new Error(`PUT /api/v1/vehicles/${vin}: ${r.status} ${await r.text()}`);
}

/** The prompts of one vehicle, from the advisor API. */
export async function promptsOf(ingest: IngestApi, vin: string): Promise<PromptJson[]> {
  return (await apiGet<PromptPageJson>(ingest, `/api/v1/prompts?vin=${vin}&limit=500`)).items;
}

/** A counter or gauge from ingest's /metrics (0 when absent); `series` is the name with its labels. */
export async function metric(ingest: IngestApi, series: string): Promise<number> {
  const r = await fetch(`${ingest.api}/metrics`, { headers: ingest.auth });
  if (!r.ok) throw new Error(`/metrics: ${r.status} ${await r.text()}`);
  for (const line of (await r.text()).split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return 0;
}

/** Publish one telemetry batch as the vehicle `vin` (QoS 1; resolves after the broker's PUBACK). */
export async function publishBatch(
  mqttUrl: string,
  vin: string,
  samples: Sample[],
  o: { seq: number; bootId?: string; client?: IClientOptions },
): Promise<void> {
  const c = await mqtt.connectAsync(mqttUrl, { clientId: `test-${vin}-${o.seq}`, username: vin, reconnectPeriod: 0, ...o.client });
  try {
    const batch = encodeTelemetryBatch({ vin, bootId: o.bootId ?? 'test-sentinel', seq: o.seq, dropped: 0, samples });
    await c.publishAsync(`v1/vehicles/${vin}/telemetry`, Buffer.from(batch), { qos: 1 });
  } finally {
    await c.endAsync();
  }
}

/**
 * A positive marker that the rules have caught up: journal a batch with a DTC new to the
 * (registered) vehicle `vin` and wait until its fault.dtc prompt is listed. The rules apply the
 * journal in order, so every batch journalled before it has been applied too.
 */
export async function rulesSentinel(
  ingest: IngestApi & { mqttUrl: string },
  vin: string,
  o: { ts: number; seq: number; dtc?: string },
): Promise<void> {
  const before = (await promptsOf(ingest, vin)).filter((p) => p.kind === 'fault.dtc').length;
  await publishBatch(ingest.mqttUrl, vin, [{ ts: o.ts, signals: {}, dtcs: [o.dtc ?? 'P0300'] }], { seq: o.seq });
  await waitFor(async () => (await promptsOf(ingest, vin)).filter((p) => p.kind === 'fault.dtc').length > before, {
    what: `the sentinel fault prompt of ${vin} (rules caught up)`,
    intervalMs: 200,
  });
}
