// HTTP side of the simulator: registers fleet profiles (PUT /api/v1/vehicles/{vin}) and records
// service visits (POST .../service-records), with bounded concurrency and a few retries. It needs
// an operator API key (docs/contract.md#access-control).
import type { VehicleProfile } from '../proto/domain.js';
import type { ServiceVisit } from './history.js';

export interface ApiClient {
  putProfile(vin: string, profile: VehicleProfile): Promise<void>;
  postServiceRecord(vin: string, visit: ServiceVisit): Promise<void>;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function createApiClient(base: string, opts: { timeoutMs?: number; retries?: number; token?: string } = {}): ApiClient {
  let root: URL;
  try {
    root = new URL(base);
  } catch {
    throw new ApiError(`not a valid API base URL: ${JSON.stringify(base)}`);
  }
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const retries = opts.retries ?? 3;
  const send = async (method: string, path: string, body: unknown): Promise<void> => {
    const url = new URL(path, root);
    let lastErr: Error = new ApiError(`${method} ${url.pathname} not attempted`);
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 200 * 2 ** attempt));
      try {
        const res = await fetch(url, {
          method,
          headers: { 'content-type': 'application/json', ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) },
          body: JSON.stringify(body),
          signal: AbortSignal.timeout(timeoutMs),
        });
        if (res.ok) {
          await res.arrayBuffer();
          return;
        }
        const text = (await res.text()).slice(0, 300);
        lastErr = new ApiError(`${method} ${url.pathname}: HTTP ${res.status} ${text}`, res.status);
        if (res.status < 500 && res.status !== 429) break; // our request is wrong: retrying will not help
      } catch (err) {
        lastErr = new ApiError(`${method} ${url.pathname}: ${(err as Error).message}`);
      }
    }
    throw lastErr;
  };
  return {
    putProfile: (vin, profile) => send('PUT', `api/v1/vehicles/${vin}`, profile),
    postServiceRecord: (vin, visit) => send('POST', `api/v1/vehicles/${vin}/service-records`, visit),
  };
}

/** Run tasks with at most `limit` at once; returns how many failed (each failure reported). */
export async function runBounded<T>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<void>,
  onError: (err: Error, item: T) => void,
  signal?: AbortSignal,
): Promise<number> {
  if (items.length === 0) return 0;
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < items.length && !signal?.aborted) {
      const item = items[next++];
      try {
        await task(item);
      } catch (err) {
        failed++;
        onError(err as Error, item);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return failed;
}
