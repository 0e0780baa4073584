// `odopulse bench [all|rules|agent|e2e|cluster] [--quick]`: prints one JSON result. `cluster` (a
// 3-node NATS cluster, PostgreSQL, influxd and 1..3 ingest instances, ~7 minutes) is not part of `all`.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { machine } from './stats.js';

export async function runBenchCli(
  which: string,
  opts: { quick?: boolean; soak?: string; out?: string; profile?: boolean },
): Promise<number> {
  const quick = Boolean(opts.quick);
  const known = ['all', 'rules', 'agent', 'e2e', 'cluster'];
  if (!known.includes(which)) throw new Error(`unknown benchmark ${JSON.stringify(which)}: one of ${known.join(', ')}`);
  const at = new Date().toISOString();
  const result: Record<string, unknown> = { machine: machine(), quick, at };
  // e2e writes its CPU profiles there, and every run with e2e its result (result.json)
  const out = which === 'all' || which === 'e2e' ? (opts.out ?? join('bench-results', at.replace(/[:.]/g, '-'))) : undefined;
  if (out) mkdirSync(out, { recursive: true });
  if (which === 'all' || which === 'rules') {
    const { benchRules } = await import('./rules.js');
    result.rules = await benchRules(
      quick ? { vehicles: 200, readingsPerVehicle: 500, threads: 2 } : { vehicles: 2000, readingsPerVehicle: 600, threads: 2 },
    );
  }
  if (which === 'all' || which === 'agent') {
    const { benchAgent } = await import('./agent.js');
    result.agent = await benchAgent({ quick });
  }
  if (which === 'all' || which === 'e2e') {
    const { benchE2E } = await import('./e2e.js');
    result.e2e = await benchE2E({
      quick,
      soakSeconds: opts.soak ? Number(opts.soak) : undefined,
      profileDir: opts.profile === false ? undefined : join(out!, 'cpu-profile'),
    });
  }
  if (which === 'cluster') {
    const { benchCluster } = await import('./cluster.js');
    result.cluster = await benchCluster({ quick });
  }
  const text = JSON.stringify(result, null, 2) + '\n';
  if (out) writeFileSync(join(out, 'result.json'), text);
  process.stdout.write(text);
  return 0;
}
