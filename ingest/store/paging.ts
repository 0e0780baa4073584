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
