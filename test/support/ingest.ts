// Test helpers around real processes: ingest and agent children, JSON fetches, polling.
import { spawn } from 'node:child_process';
import { BIN } from '../../bench/ingest-process.js';

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

export async function getJson<T = any>(url: string): Promise<T> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

/** Poll `fn` until it returns a truthy value (or throw after `ms`). Behaviour, not timing, is asserted. */
export async function eventually<T>(
  fn: () => Promise<T | undefined | false | null> | T | undefined | false | null,
  ms = 30_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
