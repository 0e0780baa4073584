// `odopulse keys create|list|revoke`: API keys in the data dir's store, usable at once by a
// running ingest (it reads keys per request). The new key is printed once, as the last line.
import { createApiKey, KeyRequestError } from '../ingest/auth/keys.js';
import { openPostgresBackend, openSqliteBackend } from '../ingest/store/index.js';
import { PERMISSIONS, ROLES, type Permission, type Role } from '../ingest/store/ports.js';

export interface KeysCreateOptions {
  role: string;
  dealer?: string[];
  name?: string;
  expires?: string;
  permission?: string[];
}

export class KeysCliError extends Error {}

/** Where the keys are: the data dir's SQLite file, or the cluster's PostgreSQL (ODOPULSE_DATABASE_URL). */
export type KeysTarget = string | { dataDir?: string; databaseUrl?: string };

async function openKeys(target: KeysTarget) {
  const t = typeof target === 'string' ? { dataDir: target } : target;
  const backend = t.databaseUrl
    ? await openPostgresBackend(t.databaseUrl, { instanceId: `keys-cli-${process.pid}`, poolSize: 1 })
    : openSqliteBackend(t.dataDir ?? './data');
  return { keys: backend.keys, audit: backend.audit, close: () => backend.close() };
}

/** Returns the lines to print; the key itself is the last one. */
export async function keysCreate(dataDir: KeysTarget, o: KeysCreateOptions, now = Date.now()): Promise<string[]> {
  if (!(ROLES as readonly string[]).includes(o.role)) throw new KeysCliError(`--role must be one of ${ROLES.join(', ')}`);
  const permissions = o.permission ?? [];
  for (const p of permissions)
    if (!(PERMISSIONS as readonly string[]).includes(p)) throw new KeysCliError(`--permission must be one of ${PERMISSIONS.join(', ')}`);
  let expiresAt: number | null = null;
  if (o.expires !== undefined) {
    expiresAt = Date.parse(o.expires);
    if (!Number.isFinite(expiresAt)) throw new KeysCliError('--expires must be an ISO 8601 time');
  }
  const s = await openKeys(dataDir);
  try {
    const { record, token } = await createApiKey(
      s.keys,
      {
        name: o.name ?? `${o.role} key`,
        role: o.role as Role,
        dealers: o.dealer ?? [],
        permissions: permissions as Permission[],
        expiresAt,
        createdBy: 'cli',
      },
      now,
    );
    await s.audit.record({
      at: now,
      principal: 'cli',
      action: 'key.created',
      vin: null,
      requestId: 'cli',
      detail: { keyId: record.id, role: record.role, dealers: record.dealers, permissions: record.permissions },
    });
    return [
      `created key ${record.id} (${record.role}${record.dealers.length ? `, dealers ${record.dealers.join(',')}` : ''}${record.permissions.length ? `, ${record.permissions.join(',')}` : ''}${record.expiresAt ? `, expires ${record.expiresAt}` : ''})`,
      'the key is shown once; keep it secret:',
      token,
    ];
  } catch (err) {
    if (err instanceof KeyRequestError) throw new KeysCliError(err.message);
    throw err;
  } finally {
    await s.close();
  }
}

export async function keysList(dataDir: KeysTarget): Promise<string[]> {
  const s = await openKeys(dataDir);
  try {
    return (await s.keys.list()).map((k) =>
      [
        k.id,
        k.role,
        k.dealers.join(',') || '-',
        k.permissions.join(',') || '-',
        k.revokedAt ? `revoked ${k.revokedAt}` : k.expiresAt ? `expires ${k.expiresAt}` : 'active',
        JSON.stringify(k.name),
      ].join('\t'),
    );
  } finally {
    await s.close();
  }
}

export async function keysRevoke(dataDir: KeysTarget, id: string, now = Date.now()): Promise<string[]> {
  const s = await openKeys(dataDir);
  try {
    if (!(await s.keys.revoke(id, now))) throw new KeysCliError(`no active key ${id}`);
    await s.audit.record({ at: now, principal: 'cli', action: 'key.revoked', vin: null, requestId: 'cli', detail: { keyId: id } });
    return [`revoked key ${id}`];
  } finally {
    await s.close();
  }
}
