// The agent never loads protobufjs (nor long, nor the generated module on them): its wire codec is
// proto/agent-wire.ts and proto/agent-config-wire.ts. Checked twice: in the import graph of the
// sources (static imports, the way Node will load them; each source the agent may import() on
// demand separately), and by running the agent in this process (its own vitest fork, which imports
// nothing else that loads them) and looking at what Node loaded.
import { createRequire } from 'node:module';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import mqtt from 'mqtt';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { runAgent } from '../../../agent/main.js';
import type { PolicyStore } from '../../../agent/policy.js';
import { startAedes } from '../../support/aedes.js';
import { waitFor } from '../../support/wait.js';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '../../..');
const FORBIDDEN = [/^protobufjs(\/|$)/, /^long$/, /proto\/gen\//, /proto\/codec-core\.ts$/, /proto\/codec\.ts$/];

interface Graph {
  /** Every file and bare package a module loads when it is loaded, itself included. */
  eager: Set<string>;
  /** What it loads later with import(), not followed. */
  lazy: Set<string>;
}

/** The modules `entry` loads: static value imports and re-exports, followed; type-only ones are erased by tsc. */
function importGraph(entry: string): Graph {
  const eager = new Set<string>();
  const lazy = new Set<string>();
  const visit = (file: string) => {
    if (eager.has(file)) return;
    eager.add(file);
    const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
    const target = (spec: string) => {
      if (!spec.startsWith('.')) return spec;
      const js = resolve(dirname(file), spec);
      const source = js.replace(/\.js$/, '.ts');
      return existsSync(source) ? source : js; // a generated .js module (proto/gen/) is a leaf
    };
    const walk = (node: ts.Node) => {
      if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly) {
        const named = node.importClause?.namedBindings;
        const allTypes = named && ts.isNamedImports(named) && !node.importClause?.name && named.elements.every((e) => e.isTypeOnly);
        // `import { type A } from 'x'` keeps an import of 'x' under verbatimModuleSyntax, but not with tsc's default elision
        if (!allTypes || named.elements.length === 0) follow(target((node.moduleSpecifier as ts.StringLiteral).text));
      } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && !node.isTypeOnly) {
        follow(target((node.moduleSpecifier as ts.StringLiteral).text));
      } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
        const arg = node.arguments[0];
        if (arg && ts.isStringLiteral(arg)) lazy.add(target(arg.text));
      } else if (ts.isCallExpression(node) && /(^|\W)require$|^createRequire\(/.test(node.expression.getText(src))) {
        // require() through createRequire (mqtt's client, node:tls): counted as loaded, wherever it is called
        const arg = node.arguments[0];
        if (arg && ts.isStringLiteral(arg)) follow(target(arg.text));
      }
      ts.forEachChild(node, walk);
    };
    walk(src);
  };
  const follow = (t: string) => (t.endsWith('.ts') ? visit(t) : eager.add(t));
  visit(entry);
  return { eager, lazy };
}

const rel = (f: string) => (f.startsWith(ROOT) ? f.slice(ROOT.length + 1) : f);
const forbidden = (g: Set<string>) => [...g].map(rel).filter((f) => FORBIDDEN.some((re) => re.test(f)));

describe('the agent module graph has no protobufjs', () => {
  it('agent/main.ts and everything it imports', () => {
    // the entry loads only jit.ts before it turns the optimising compilers off, then the agent (run.ts)
    const entry = importGraph(join(ROOT, 'agent/main.ts'));
    expect([...entry.eager].map(rel).sort()).toEqual(['agent/jit.ts', 'agent/main.ts', 'node:module', 'node:v8']);
    expect([...entry.lazy].map(rel)).toEqual(['agent/run.ts']);
    const g = importGraph(join(ROOT, 'agent/run.ts'));
    expect(g.eager.size).toBeGreaterThan(10);
    expect([...g.eager].map(rel)).toContain('proto/agent-wire.ts');
    expect([...g.eager].map(rel)).toContain('proto/agent-config-wire.ts');
    expect([...g.eager].map(rel)).toContain('mqtt/lib/client'); // the graph is followed into what main loads
    expect(forbidden(g.eager)).toEqual([]);
  });

  it('the replay and simulated sources too (the Kuksa one talks gRPC: it loads protobufjs by design)', () => {
    const lazy = [...importGraph(join(ROOT, 'agent/run.ts')).lazy].map(rel).sort();
    expect(lazy).toEqual(['agent/sources/kuksa.ts', 'agent/sources/replay.ts', 'agent/sources/simulated.ts']);
    for (const source of ['agent/sources/replay.ts', 'agent/sources/simulated.ts'])
      expect(forbidden(importGraph(join(ROOT, source)).eager), source).toEqual([]);
    expect(forbidden(importGraph(join(ROOT, 'agent/sources/kuksa.ts')).eager)).not.toEqual([]); // the check sees it where it is
  });

  it('a running agent (simulated car, a policy from the config topic, batches sent) has not loaded it', async () => {
    const loaded = () => Object.keys(createRequire(import.meta.url).cache).filter((f) => /\/node_modules\/(protobufjs|long)\//.test(f));
    expect(loaded()).toEqual([]);
    const broker = await startAedes();
    const dir = mkdtempSync(join(tmpdir(), 'agent-modules-'));
    const vin = 'LSVAU2180N2183299';
    let published = 0;
    broker.broker.on('publish', (p) => void (p.topic === `v1/vehicles/${vin}/telemetry` && published++));
    const ac = new AbortController();
    let policy: PolicyStore | undefined;
    try {
      // AgentConfig { version: 3, signals: [{ path: 'Vehicle.Speed', periodMs: 1000 }], batchMaxSamples: 2 }, written by hand
      const path = Buffer.from('Vehicle.Speed');
      const signal = Buffer.from([0x0a, path.length, ...path, 0x10, 0xe8, 0x07]);
      const config = Buffer.from([0x08, 0x03, 0x12, signal.length, ...signal, 0x20, 0x02]);
      const cloud = await mqtt.connectAsync(broker.url, { clientId: 'cloud-modules' });
      await cloud.publishAsync(`v1/vehicles/${vin}/config`, config, { qos: 1, retain: true });
      await cloud.endAsync();
      const run = runAgent(
        { vin, broker: broker.url, simulate: true, simStepMs: 1000, speed: 0, spoolDir: join(dir, 'spool') },
        ac.signal,
        { log: () => {}, onReady: (a) => (policy = a.policy) },
      );
      await waitFor(() => policy?.policy.version === 3 && published >= 2, { what: 'policy 3 in force and 2 batches sent' });
      ac.abort();
      expect(await run).toBe(0);
      expect(policy!.policy.batchMaxSamples).toBe(2);
    } finally {
      ac.abort();
      await broker.stop();
      rmSync(dir, { recursive: true, force: true });
    }
    // and the check can see a CommonJS package that an ES module imported: mqtt's client was
    expect(Object.keys(createRequire(import.meta.url).cache).some((f) => f.includes('/node_modules/mqtt/'))).toBe(true);
    expect(loaded()).toEqual([]);
  });
});
