// The Node flags ingest is meant to run with (ingest/node-flags.ts) are the ones the container image
// starts it with, and the ones Node accepts in NODE_OPTIONS (for starting `odopulse ingest` by hand).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { INGEST_NODE_FLAGS } from '../../ingest/node-flags.js';

describe('ingest node flags', () => {
  it('the Dockerfile starts node with them', () => {
    const entry = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8').match(/^ENTRYPOINT (\[.*\])$/m);
    expect(entry).not.toBeNull();
    const argv = JSON.parse(entry![1]) as string[];
    expect(argv[0]).toBe('node');
    expect(argv.slice(1, 1 + INGEST_NODE_FLAGS.length)).toEqual([...INGEST_NODE_FLAGS]);
  });

  it('node accepts them on the command line and in NODE_OPTIONS', () => {
    for (const env of [{}, { NODE_OPTIONS: INGEST_NODE_FLAGS.join(' ') }]) {
      const args = Object.keys(env).length ? ['-e', '0'] : [...INGEST_NODE_FLAGS, '-e', '0'];
      const r = spawnSync(process.execPath, args, { env: { ...process.env, ...env }, encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
    }
  });
});
