// Node's built-in modules for the agent without their ES-module facades. `import ... from 'node:fs'`
// builds one, which reads every export, and fs's lazy ones (fs.promises, the file streams, ...)
// then load some 30 modules the agent never uses (fs/promises, readline, the REPL history, os,
// watchers, ...): ~2.5 MB of RSS on Node 22 and 24, in a process that targets < 60 MB
// (README.md#resource-use). require returns the CommonJS exports as they are (and, unlike
// process.getBuiltinModule, exists on every Node 20 release).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const fs = require('node:fs') as typeof import('node:fs');

/** zlib's crc32 (Node >= 20.15, package.json engines: >= 20.19), node:zlib loaded on the first call. */
export function zlibCrc32(): (data: Uint8Array) => number {
  return (require('node:zlib') as typeof import('node:zlib')).crc32;
}
