// The package root, found from this module's location, so the same code works from
// the TypeScript sources (tests) and from dist/ (the bin).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// fs without its ES-module facade, which would load fs.promises and the file streams (~30 modules)
// in the agent, whose every module is memory (agent/README.md#resource-use).
const { existsSync, readFileSync } = createRequire(import.meta.url)('node:fs') as typeof import('node:fs');

function findRoot(start: string): string {
  let dir = start;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'odopulse') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`odopulse package root not found above ${start}`);
    dir = up;
  }
}

export const PACKAGE_ROOT = findRoot(dirname(fileURLToPath(import.meta.url)));
export const PACKAGE_VERSION: string = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')).version;

/** Path of a compiled module: dist/<rel>.js whether we run from sources or from dist. */
export function distModule(rel: string): string {
  return join(PACKAGE_ROOT, 'dist', rel);
}
