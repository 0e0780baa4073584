// Row helpers every backend shares: ISO times and opaque keyset cursors with bounded pages.
export const iso = (ms: number): string => new Date(ms).toISOString();

/** A bad cursor is the client's mistake: the HTTP layer maps this to a 400. */
export class InvalidCursorError extends Error {
  constructor() {
    super('invalid cursor: pass back the nextCursor of a previous page unchanged');
    this.name = 'InvalidCursorError';
  }
}

/** Keyset cursor over (createdAt desc, id desc), opaque to clients. */
export function encodeCursor(createdMs: number, id: string): string {
  return Buffer.from(JSON.stringify([createdMs, id])).toString('base64url');
}

export function decodeCursor(cursor: string): { createdMs: number; id: string } {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 2 && Number.isFinite(v[0]) && typeof v[1] === 'string')
      return { createdMs: v[0] as number, id: v[1] };
  } catch {
    // fall through to the error below
  }
  throw new InvalidCursorError();
}

/** Same idea for lists keyed by a single string (vehicles by VIN). */
export function encodeKeyCursor(key: string): string {
  return Buffer.from(JSON.stringify([key])).toString('base64url');
}

export function decodeKeyCursor(cursor: string): string {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === 1 && typeof v[0] === 'string') return v[0];
  } catch {
    // fall through
  }
  throw new InvalidCursorError();
}

/** Page sizes are bounded whatever the caller asks for. */
export const clampLimit = (n: number): number => Math.max(1, Math.min(1000, Math.floor(Number.isFinite(n) ? n : 50)));

/** Outbox rows are keyed (createdAt, id, url): the order of listings and their keyset cursor. */
interface OutboxKey {
  createdAt: number;
  id: string;
  url: string;
}

export const byKey = (a: OutboxKey, b: OutboxKey): number =>
  a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) || (a.url < b.url ? -1 : a.url > b.url ? 1 : 0);

/** An event id holds no newline (a URL cannot either), so id and URL share the cursor's string part. */
export function encodeOutboxCursor(k: OutboxKey): string {
  return encodeCursor(k.createdAt, `${k.id}\n${k.url}`);
}

export function decodeOutboxCursor(cursor: string): { createdMs: number; id: string; url: string } {
  const { createdMs, id } = decodeCursor(cursor);
  const cut = id.indexOf('\n');
  if (cut < 0) throw new InvalidCursorError();
  return { createdMs, id: id.slice(0, cut), url: id.slice(cut + 1) };
}

/** A page from `limit + 1` rows in key order: the extra row only says that there is a next page. */
export function pageOf<T extends OutboxKey>(rows: T[], limit: number): { items: T[]; nextCursor: string | null } {
  const items = rows.slice(0, limit);
  return { items, nextCursor: rows.length > limit ? encodeOutboxCursor(items[items.length - 1]) : null };
}
