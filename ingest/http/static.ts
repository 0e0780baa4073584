// The advisor console: a few static files plus uPlot's browser build. Files are read once at
// start-up and served from a fixed whitelist, so no request path ever reaches the file system.
import type { FastifyInstance } from 'fastify';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { PACKAGE_ROOT } from '../../proto/paths.js';

interface Asset {
  type: string;
  body: Buffer;
}

const CONSOLE_FILES: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'i18n.js': 'text/javascript; charset=utf-8',
  'vehicle.js': 'text/javascript; charset=utf-8',
};
const UPLOT_FILES: Record<string, string> = {
  'uPlot.iife.min.js': 'text/javascript; charset=utf-8',
  'uPlot.min.css': 'text/css; charset=utf-8',
};

export const CONSOLE_DIR = join(PACKAGE_ROOT, 'ingest', 'console', 'static');

function uplotDir(): string {
  // uplot has no "exports" map, so its main entry resolves to dist/uPlot.cjs.js.
  return dirname(createRequire(import.meta.url).resolve('uplot'));
}

async function load(dir: string, files: Record<string, string>): Promise<Map<string, Asset>> {
  const out = new Map<string, Asset>();
  for (const [name, type] of Object.entries(files)) out.set(name, { type, body: await readFile(join(dir, name)) });
  return out;
}

export async function registerConsole(app: FastifyInstance): Promise<void> {
  const index = await readFile(join(CONSOLE_DIR, 'index.html'));
  const assets = await load(CONSOLE_DIR, CONSOLE_FILES);
  const vendor = await load(uplotDir(), UPLOT_FILES);

  const serve = (map: Map<string, Asset>) => async (req: { params: unknown }, reply: import('fastify').FastifyReply) => {
    const name = (req.params as { file: string }).file;
    const a = map.get(name);
    if (!a) return reply.callNotFound();
    return reply.type(a.type).header('cache-control', 'no-cache').send(a.body);
  };

  app.get('/', { schema: { hide: true } }, async (_req, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(index),
  );
  app.get('/console/:file', { schema: { hide: true } }, serve(assets));
  app.get('/vendor/uplot/:file', { schema: { hide: true } }, serve(vendor));
}
