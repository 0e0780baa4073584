// The SQLite driver. better-sqlite3 12 (Node 20) wraps its objects with the raw node::ObjectWrap,
// which aborts the process on Node 24 when a statement is garbage-collected; better-sqlite3 13 is
// built on Node-API and fixes that, but needs Node >= 22. Same API, so: 13 (installed as the optional
// dependency `better-sqlite3-napi`) where the runtime allows it, 12 otherwise.
import type BetterSqlite3 from 'better-sqlite3';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

function load(): { Database: typeof BetterSqlite3; driver: string } {
  const major = Number(process.versions.node.split('.')[0]);
  if (major >= 22) {
    try {
      return { Database: require('better-sqlite3-napi'), driver: 'better-sqlite3@13 (Node-API)' };
    } catch (err) {
      if (major >= 24)
        throw new Error(
          `Node ${process.versions.node} needs better-sqlite3 13 (npm package alias better-sqlite3-napi); run npm ci under this Node: ${(err as Error).message}`,
        );
    }
  }
  return { Database: require('better-sqlite3'), driver: 'better-sqlite3@12' };
}

const loaded = load();
/** better-sqlite3's Database constructor, from the build that suits this Node. */
export const Database = loaded.Database;
export type Database = BetterSqlite3.Database;
export const SQLITE_DRIVER = loaded.driver;
