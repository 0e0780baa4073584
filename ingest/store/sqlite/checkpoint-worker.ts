// The WAL checkpointer's thread (checkpointer.ts): its own connection to one database, a PASSIVE
// checkpoint every `everyMs` and whenever asked. Nothing else: it never writes a row.
import { parentPort, workerData } from 'node:worker_threads';
import { Database } from './driver.js';

export interface CheckpointerData {
  path: string;
  everyMs: number;
}

/** The answer to a `checkpoint` request: pages in the WAL and pages of it now in the database. */
export interface CheckpointResult {
  log: number;
  checkpointed: number;
}

const port = parentPort!;
const { path, everyMs } = workerData as CheckpointerData;
const db = new Database(path);
// the checkpoint's own fsyncs (the WAL before copying, the database after) follow this setting
db.pragma('synchronous = FULL');

function checkpoint(): CheckpointResult {
  // PASSIVE: takes no lock a writer or reader needs; a frame in use by a reader waits for the next run
  const [r] = db.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
  return { log: r.log, checkpointed: r.checkpointed };
}

/** Failing since the last run that worked: told once, not every everyMs (a full disk lasts). */
let failing = false;

function run(): CheckpointResult | undefined {
  try {
    const r = checkpoint();
    failing = false;
    return r;
  } catch (err) {
    if (!failing) port.postMessage({ type: 'error', message: (err as Error).message });
    failing = true;
    return undefined;
  }
}

const timer = setInterval(run, everyMs);
port.on('message', (m: { type: 'checkpoint'; id: number } | { type: 'close' }) => {
  if (m.type === 'checkpoint') port.postMessage({ type: 'checkpointed', id: m.id, result: run() });
  else {
    clearInterval(timer);
    // a last checkpoint: this connection may close after the owner's, and the last one to close
    // removes the WAL only if it has the WAL open (a connection opens it with its first access)
    run();
    db.close();
    port.close();
  }
});
