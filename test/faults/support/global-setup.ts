// Collects the rows every fault case records (table.ts) and prints the table when the suite ends;
// also written to ODOPULSE_FAULTS_REPORT (default: fault-results.md in the working directory),
// from where the README's table is copied.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { renderTable, type FaultRow } from './table.js';

export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'odopulse-faults-'));
  const file = join(dir, 'rows.jsonl');
  writeFileSync(file, '');
  project.provide('faultRowsFile', file);
  return () => {
    const rows = existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as FaultRow)
      : [];
    rows.sort((a, b) => a.fault.localeCompare(b.fault));
    const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
    const md = `Fault suite (\`npm run test:faults\`), ${machine}\n\n${renderTable(rows)}\n`;
    process.stdout.write(`\n${md}\n`);
    writeFileSync(process.env.ODOPULSE_FAULTS_REPORT ?? 'fault-results.md', md);
    rmSync(dir, { recursive: true, force: true });
  };
}
