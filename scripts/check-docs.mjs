#!/usr/bin/env node
// Part of `npm test`: every reference to the spec in code and READMEs points at docs/ (never outside
// the repository) and every `docs/<file>.md#anchor` names a heading that exists (GitHub's slugs).
import { execSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const files = execSync('git ls-files --cached --others --exclude-standard', { cwd: root, encoding: 'utf8' })
  .split('\n')
  .filter((f) => /\.(ts|js|mjs|md|sh|json|ya?ml|conf)$/.test(f) && !f.startsWith('node_modules/') && f !== 'package-lock.json');

/** GitHub's heading slug: lower case, punctuation dropped (but - and _), spaces to dashes. */
const slug = (h) =>
  h
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
const anchors = new Map();
function anchorsOf(doc) {
  if (!anchors.has(doc)) {
    const seen = new Map();
    const set = new Set();
    for (const line of readFileSync(join(root, doc), 'utf8').split('\n')) {
      const m = line.match(/^#{1,6}\s+(.*)$/);
      if (!m) continue;
      const base = slug(m[1].replace(/`/g, ''));
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      set.add(n === 0 ? base : `${base}-${n}`);
    }
    anchors.set(doc, set);
  }
  return anchors.get(doc);
}

const problems = [];
for (const f of files) {
  if (!existsSync(join(root, f))) continue;
  const text = readFileSync(join(root, f), 'utf8');
  text.split('\n').forEach((line, i) => {
    if (/\.\.\/shared\//.test(line) && !f.startsWith('.ci/'))
      problems.push(`${f}:${i + 1}: refers outside the repository (../shared); point at docs/`);
    for (const m of line.matchAll(/docs\/([a-z-]+\.md)(#[\p{L}\p{N}_-]+)?/gu)) {
      const doc = `docs/${m[1]}`;
      if (!existsSync(join(root, doc))) {
        problems.push(`${f}:${i + 1}: ${doc} does not exist`);
        continue;
      }
      if (m[2] && !anchorsOf(doc).has(m[2].slice(1))) problems.push(`${f}:${i + 1}: ${doc}${m[2]}: no such heading`);
    }
  });
}
if (problems.length) {
  console.error(problems.join('\n'));
  console.error(`check-docs: ${problems.length} problem(s)`);
  process.exit(1);
}
console.log(`check-docs: ${files.length} files, every docs/ reference resolves`);
