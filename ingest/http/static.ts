// The advisor console: a few static files plus uPlot's browser build. They are public (the
// sign-in page must load) and hold no data: everything shown comes from the authenticated API. Files are read once at
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
  'dom.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'i18n.js': 'text/javascript; charset=utf-8',
  'vehicle.js': 'text/javascript; charset=utf-8',
  'vehicle-charts.js': 'text/javascript; charset=utf-8',
  'signin.js': 'text/javascript; charset=utf-8',
  'alerts.js': 'text/javascript; charset=utf-8',
  'campaigns.js': 'text/javascript; charset=utf-8',
  'campaigns-i18n.js': 'text/javascript; charset=utf-8',
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

export interface ConsoleOptions {
  /** Sign-in with the OEM identity provider (authorization code + PKCE, a public client). */
  oidc?: { issuer: string; clientId: string };
}

/** The sign-in options go into the page itself, so no unauthenticated API route is needed for them. */
function withSignInOptions(html: Buffer, opts: ConsoleOptions): Buffer {
  const json = JSON.stringify({ oidc: opts.oidc ?? null })
    .replace(/&/g, '&amp;')
    .replace(/"/g, '&quot;')
    .replace(/</g, '&lt;');
  return Buffer.from(html.toString('utf8').replace('</head>', `  <meta name="odopulse-sign-in" content="${json}" />\n  </head>`));
}

export async function registerConsole(app: FastifyInstance, opts: ConsoleOptions = {}): Promise<void> {
  const index = withSignInOptions(await readFile(join(CONSOLE_DIR, 'index.html')), opts);
  const assets = await load(CONSOLE_DIR, CONSOLE_FILES);
  const vendor = await load(uplotDir(), UPLOT_FILES);

  const serve = (map: Map<string, Asset>) => async (req: { params: unknown }, reply: import('fastify').FastifyReply) => {
    const name = (req.params as { file: string }).file;
    const a = map.get(name);
    if (!a) return reply.callNotFound();
    return reply.type(a.type).header('cache-control', 'no-cache').send(a.body);
  };

  app.get('/', { schema: { hide: true }, config: { auth: 'public' } }, async (_req, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(index),
  );
  app.get('/console/:file', { schema: { hide: true }, config: { auth: 'public' } }, serve(assets));
  app.get('/vendor/uplot/:file', { schema: { hide: true }, config: { auth: 'public' } }, serve(vendor));
}
