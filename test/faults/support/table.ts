// The fault suite's result table (docs/architecture.md#fault-suite): each case records one row;
// the global teardown (global-setup.ts) prints them as a Markdown table and writes it to a file.
// Rows go through a JSON-lines file because each test file runs in its own worker process.
import { appendFileSync } from 'node:fs';
import { inject } from 'vitest';

export interface FaultRow {
  /** The fault injected, e.g. "ingest kill -9 ×20". */
  fault: string;
  /** The load held while it happened, e.g. "40 vehicles, QoS 1, 8 in flight". */
  load: string;
  /** Readings the vehicles produced (and got a PUBACK for, or spooled). */
  produced: number;
  /** Distinct readings found in InfluxDB afterwards. */
  stored: number;
  /** Produced but never stored: must be 0. */
  lost: number;
  /** Prompts (by dedup key) found more than once, or delivered to the HMI more than once: must be 0. */
  promptsDuplicated: number;
  /** Anything else worth a column: dead letters, restarts, time to drain, ... */
  notes?: string;
}

export function recordFault(row: FaultRow): void {
  const file = inject('faultRowsFile');
  appendFileSync(file, `${JSON.stringify({ ...row, at: new Date().toISOString() })}\n`);
}

export function renderTable(rows: FaultRow[]): string {
  const head = '| fault | load held | readings produced | stored | lost | prompts duplicated | notes |';
  const rule = '|---|---|---:|---:|---:|---:|---|';
  const body = rows.map(
    (r) => `| ${r.fault} | ${r.load} | ${r.produced} | ${r.stored} | ${r.lost} | ${r.promptsDuplicated} | ${r.notes ?? ''} |`,
  );
  return [head, rule, ...body].join('\n');
}

declare module 'vitest' {
  export interface ProvidedContext {
    faultRowsFile: string;
  }
}
