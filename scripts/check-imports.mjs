#!/usr/bin/env node
// Import graph check, part of `npm test` (docs/architecture.md#import-rules):
// 1. no import cycles between source files, type-only imports included;
// 2. no cycles between ingest/ folders (each folder is one responsibility; arrows run one way);
// 3. lower layers never import higher ones (proto <- rules <- ingest; nothing imports test/).
import ts from 'typescript';
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const SOURCE_DIRS = ['agent', 'ingest', 'proto', 'rules', 'simulator', 'bench', 'tools', 'test'];
const SKIP = new Set(['node_modules', 'dist', 'static', 'vendor']);

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}
const files = [join(root, 'cli.ts'), join(root, 'demo.ts')];
for (const d of SOURCE_DIRS) if (existsSync(join(root, d))) walk(join(root, d), files);

/** @type {Map<string, string[]>} */
const graph = new Map();
for (const f of files) {
  const info = ts.preProcessFile(readFileSync(f, 'utf8'), true, true);
  const deps = [];
  for (const imp of info.importedFiles) {
    if (!imp.fileName.startsWith('.')) continue;
    const target = resolve(dirname(f), imp.fileName).replace(/\.js$/, '.ts');
    if (existsSync(target)) deps.push(target);
  }
  graph.set(f, deps);
}
const rel = (f) => relative(root, f);
const problems = [];

// 1. file cycles (Tarjan's strongly connected components)
function sccs(g) {
  let index = 0;
  const idx = new Map(),
    low = new Map(),
    stack = [],
    on = new Set(),
    out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const c = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        c.push(w);
      } while (w !== v);
      if (c.length > 1 || (g.get(v) ?? []).includes(v)) out.push(c);
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}
for (const c of sccs(graph)) problems.push(`import cycle between files: ${c.map(rel).join(' <-> ')}`);

// 2. folder cycles inside ingest/ (a file directly in ingest/ is its own unit)
const unitOf = (f) => {
  const r = rel(f).split('/');
  if (r[0] !== 'ingest') return null;
  return r.length > 2 ? `ingest/${r[1]}/` : rel(f);
};
const folders = new Map();
const why = new Map();
for (const [f, deps] of graph) {
  const a = unitOf(f);
  if (!a) continue;
  for (const d of deps) {
    const b = unitOf(d);
    if (!b || a === b) continue;
    if (!folders.has(a)) folders.set(a, new Set());
    folders.get(a).add(b);
    why.set(`${a}>${b}`, `${rel(f)} -> ${rel(d)}`);
  }
}
const fg = new Map([...folders].map(([k, v]) => [k, [...v]]));
for (const c of sccs(fg)) {
  const edges = [];
  for (const a of c) for (const b of fg.get(a) ?? []) if (c.includes(b)) edges.push(why.get(`${a}>${b}`));
  problems.push(`import cycle between ingest folders ${c.join(', ')}:\n    ${edges.join('\n    ')}`);
}

// 3. layers: a top-level folder may import only the ones listed
const LAYERS = {
  proto: ['proto'],
  rules: ['proto', 'rules'],
  // the agent's simulated source drives the simulator's vehicle model
  agent: ['proto', 'agent', 'simulator'],
  simulator: ['proto', 'rules', 'simulator'],
  ingest: ['proto', 'rules', 'ingest'],
  tools: ['proto', 'rules', 'ingest', 'tools'],
};
for (const [f, deps] of graph) {
  const top = rel(f).split('/')[0];
  const allowed = LAYERS[top];
  if (!allowed) continue;
  for (const d of deps) {
    const t = rel(d).split('/')[0];
    if (!allowed.includes(t)) problems.push(`layer: ${rel(f)} imports ${rel(d)} (${top}/ may import only ${allowed.join(', ')})`);
  }
}

if (process.argv.includes('--graph')) {
  for (const [a, bs] of [...fg].sort()) console.log(`${a} -> ${[...bs].sort().join(', ')}`);
}

if (problems.length) {
  console.error(problems.join('\n'));
  console.error(`check-imports: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`check-imports: ${graph.size} files, no cycles, layers respected`);
