// Opens the one SQLite file of ingest's durable local state and brings its schema up to date.
// Migrations are append-only; PRAGMA user_version records how many have run.
import { Database } from './driver.js';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type Db = Database;

const MIGRATIONS: string[] = [
  // 1: prompts and their path, vehicles, rule states, dead letters, outbox.
  `
  CREATE TABLE prompts (
    id TEXT PRIMARY KEY,
    vin TEXT NOT NULL,
    kind TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    status TEXT NOT NULL,
    hmi_state TEXT NOT NULL,
    audience TEXT NOT NULL,
    dealer_id TEXT,
    urgent INTEGER NOT NULL,
    value REAL NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    data TEXT NOT NULL
  );
  -- One open prompt per situation; resolved/expired ones leave room for the next occurrence.
  CREATE UNIQUE INDEX prompts_open_dedup ON prompts (vin, dedup_key) WHERE status NOT IN ('resolved', 'expired');
  CREATE INDEX prompts_created ON prompts (created_ms DESC, id DESC);
  CREATE INDEX prompts_vin_created ON prompts (vin, created_ms DESC, id DESC);
  CREATE INDEX prompts_hmi_pending ON prompts (vin) WHERE hmi_state = 'pending';
  CREATE INDEX prompts_expiring ON prompts (expires_ms) WHERE expires_ms IS NOT NULL AND status NOT IN ('resolved', 'expired');
  CREATE INDEX prompts_terminal_updated ON prompts (updated_ms) WHERE status IN ('resolved', 'expired');

  CREATE TABLE prompt_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id TEXT NOT NULL,
    vin TEXT NOT NULL,
    dealer_id TEXT,
    kind TEXT NOT NULL,
    step TEXT NOT NULL,
    outcome TEXT,
    at_ms INTEGER NOT NULL,
    by TEXT,
    prompt TEXT NOT NULL
  );
  CREATE INDEX prompt_changes_at ON prompt_changes (at_ms);
  CREATE INDEX prompt_changes_prompt ON prompt_changes (prompt_id);
  CREATE INDEX prompt_changes_dealer ON prompt_changes (dealer_id, seq);

  CREATE TABLE vehicles (
    vin TEXT PRIMARY KEY,
    dealer_id TEXT NOT NULL,
    profile TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
  );
  CREATE INDEX vehicles_dealer ON vehicles (dealer_id, vin);
  CREATE TABLE vehicle_status (
    vin TEXT PRIMARY KEY,
    online INTEGER NOT NULL,
    since_ms INTEGER,
    agent_version TEXT,
    config_version INTEGER
  );
  CREATE TABLE vehicle_segments (
    vin TEXT PRIMARY KEY,
    segments TEXT NOT NULL,
    at_ms INTEGER NOT NULL
  );
  CREATE TABLE service_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    vin TEXT NOT NULL,
    date TEXT NOT NULL,
    odometer REAL NOT NULL,
    items TEXT NOT NULL,
    created_ms INTEGER NOT NULL
  );
  CREATE INDEX service_records_vin ON service_records (vin, date, id);
  CREATE TABLE charging_sessions (
    vin TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    start_soc REAL NOT NULL,
    end_soc REAL NOT NULL,
    energy_kwh REAL NOT NULL,
    type TEXT NOT NULL,
    PRIMARY KEY (vin, start_ms)
  );

  CREATE TABLE rule_states (
    vin TEXT PRIMARY KEY,
    state TEXT NOT NULL
  );

  CREATE TABLE dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    client_id TEXT,
    reason TEXT NOT NULL,
    payload BLOB NOT NULL
  );
  CREATE INDEX dead_letters_at ON dead_letters (at_ms);

  CREATE TABLE outbox (
    id TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    delivered_ms INTEGER,
    last_error TEXT,
    PRIMARY KEY (id, url)
  );
  CREATE INDEX outbox_due ON outbox (next_attempt_ms) WHERE delivered_ms IS NULL;
  CREATE INDEX outbox_order ON outbox (created_ms) WHERE delivered_ms IS NULL;
  CREATE INDEX outbox_delivered ON outbox (delivered_ms) WHERE delivered_ms IS NOT NULL;
  `,
  // 2: access control (docs/contract.md#access-control): API keys (hashed), console sessions, audit.
  `
  CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    dealers TEXT NOT NULL,
    permissions TEXT NOT NULL,
    salt BLOB NOT NULL,
    hash BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    created_by TEXT,
    expires_ms INTEGER,
    revoked_ms INTEGER
  );
  CREATE TABLE console_sessions (
    id_hash BLOB PRIMARY KEY,
    key_id TEXT,
    principal TEXT,
    csrf TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
  );
  CREATE INDEX console_sessions_expiry ON console_sessions (expires_ms);
  CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    principal TEXT NOT NULL,
    action TEXT NOT NULL,
    vin TEXT,
    request_id TEXT NOT NULL,
    detail TEXT
  );
  CREATE INDEX audit_at ON audit (at_ms);
  CREATE INDEX audit_vin ON audit (vin, id);
  CREATE INDEX audit_principal ON audit (principal, id);
  `,
  // 3: telemetry sequence per vehicle (boot id, last seq, missing seqs), a view of journal.db's.
  `
  CREATE TABLE vehicle_sequences (
    vin TEXT PRIMARY KEY,
    boot_id TEXT NOT NULL,
    last_seq INTEGER NOT NULL,
    gaps INTEGER NOT NULL,
    at_ms INTEGER NOT NULL
  );
  `,
  // 4: outbox states (docs/contract.md#retries): pending, dead (given up, kept until retried),
  // delivered; the start of the give-up window and the time of death; one index by state.
  `
  ALTER TABLE outbox ADD COLUMN state TEXT NOT NULL DEFAULT 'pending';
  ALTER TABLE outbox ADD COLUMN first_failed_ms INTEGER;
  ALTER TABLE outbox ADD COLUMN dead_ms INTEGER;
  UPDATE outbox SET state = 'delivered' WHERE delivered_ms IS NOT NULL;
  DROP INDEX outbox_due;
  DROP INDEX outbox_order;
  -- due (pending, oldest first), listings and counts by state; dead rows never slow down due.
  CREATE INDEX outbox_state_list ON outbox (state, created_ms, id, url);
  `,
  // 5: lifecycle campaigns (docs/domain.md#campaigns) and one delivery row per (campaign, vehicle,
  // occurrence): the frequency cap and the funnel, durable across restarts.
  `
  CREATE TABLE campaigns (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    data TEXT NOT NULL
  );
  CREATE INDEX campaigns_created ON campaigns (created_ms DESC, id DESC);
  CREATE INDEX campaigns_state ON campaigns (state, created_ms);
  CREATE TABLE campaign_deliveries (
    campaign_id TEXT NOT NULL,
    vin TEXT NOT NULL,
    occurrence INTEGER NOT NULL,
    prompt_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (campaign_id, vin, occurrence)
  );
  CREATE INDEX campaign_deliveries_live ON campaign_deliveries (campaign_id) WHERE state IN ('targeted', 'delivered');
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

export function openDb(dataDir: string): Db {
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(join(dataDir, 'odopulse.db'));
  try {
    // WAL: readers do not block the writer; FULL: a committed batch survives a power cut.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('busy_timeout = 5000');
    migrate(db);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `odopulse.db has schema version ${current}, newer than this build knows (${MIGRATIONS.length}); upgrade odopulse or use another ODOPULSE_DATA_DIR`,
    );
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
