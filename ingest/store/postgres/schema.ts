// The PostgreSQL schema of ingest's shared state: the SQLite schema (sqlite/db.ts) as it is after
// its migrations, in PostgreSQL's types. Migrations are append-only; schema_version holds one row per
// migration run (db.ts migrate()).
//
// Choices that keep the semantics of the SQLite backend:
//  - times are bigint epoch ms (read back as numbers: db.ts), as SQLite's integers;
//  - the keys that are ordered or compared by range (ids, VINs, URLs, dealers, dates) are
//    COLLATE "C": byte order, as SQLite's BINARY, whatever the database's locale;
//  - JSON documents are text, as on SQLite: they come back exactly as written (jsonb would refuse a
//    \u0000 or a lone surrogate escape that JSON.stringify writes and SQLite keeps);
//  - sequences (identity columns) have no cache, so values are handed out in increasing order across
//    sessions; prompt_changes.seq is also taken under the prompt write lock (db.ts);
//  - the outbox keeps an insertion order (`ord`, SQLite's rowid) for ties of created_ms in due(),
//    and the claim of the instance dispatching a row (misc.ts).
export const MIGRATIONS: readonly string[] = [
  // 1: everything of SQLite's migrations 1-5.
  `
  -- Never written: LOCK TABLE on it is the prompt write lock (db.ts).
  CREATE TABLE prompt_write_lock (id integer PRIMARY KEY);

  CREATE TABLE prompts (
    id text COLLATE "C" PRIMARY KEY,
    vin text COLLATE "C" NOT NULL,
    kind text NOT NULL,
    dedup_key text COLLATE "C" NOT NULL,
    status text NOT NULL,
    hmi_state text NOT NULL,
    audience text[] NOT NULL,
    dealer_id text COLLATE "C",
    urgent boolean NOT NULL,
    value double precision NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL,
    expires_ms bigint,
    data text NOT NULL
  );
  -- One open prompt per situation; resolved/expired ones leave room for the next occurrence.
  CREATE UNIQUE INDEX prompts_open_dedup ON prompts (vin, dedup_key) WHERE status NOT IN ('resolved', 'expired');
  CREATE INDEX prompts_created ON prompts (created_ms DESC, id DESC);
  CREATE INDEX prompts_vin_created ON prompts (vin, created_ms DESC, id DESC);
  CREATE INDEX prompts_hmi ON prompts (vin) WHERE hmi_state IN ('pending', 'sent');
  CREATE INDEX prompts_expiring ON prompts (expires_ms) WHERE expires_ms IS NOT NULL AND status NOT IN ('resolved', 'expired');
  CREATE INDEX prompts_terminal_updated ON prompts (updated_ms) WHERE status IN ('resolved', 'expired');

  CREATE TABLE prompt_changes (
    seq bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    prompt_id text COLLATE "C" NOT NULL,
    vin text COLLATE "C" NOT NULL,
    dealer_id text COLLATE "C",
    kind text NOT NULL,
    step text NOT NULL,
    outcome text,
    at_ms bigint NOT NULL,
    by text,
    prompt text NOT NULL
  );
  CREATE INDEX prompt_changes_at ON prompt_changes (at_ms);
  CREATE INDEX prompt_changes_prompt ON prompt_changes (prompt_id);
  CREATE INDEX prompt_changes_dealer ON prompt_changes (dealer_id, seq);

  CREATE TABLE vehicles (
    vin text COLLATE "C" PRIMARY KEY,
    dealer_id text COLLATE "C" NOT NULL,
    profile text NOT NULL,
    created_ms bigint NOT NULL,
    updated_ms bigint NOT NULL
  );
  CREATE INDEX vehicles_dealer ON vehicles (dealer_id, vin);
  CREATE TABLE vehicle_status (
    vin text COLLATE "C" PRIMARY KEY,
    online boolean NOT NULL,
    since_ms bigint,
    agent_version text,
    config_version bigint
  );
  CREATE INDEX vehicle_status_online ON vehicle_status (vin) WHERE online;
  CREATE TABLE vehicle_segments (
    vin text COLLATE "C" PRIMARY KEY,
    segments text NOT NULL,
    at_ms bigint NOT NULL
  );
  CREATE TABLE service_records (
    id bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    vin text COLLATE "C" NOT NULL,
    date text COLLATE "C" NOT NULL,
    odometer double precision NOT NULL,
    items text NOT NULL,
    created_ms bigint NOT NULL
  );
  CREATE INDEX service_records_vin ON service_records (vin, date, id);
  CREATE TABLE charging_sessions (
    vin text COLLATE "C" NOT NULL,
    start_ms bigint NOT NULL,
    end_ms bigint NOT NULL,
    start_soc double precision NOT NULL,
    end_soc double precision NOT NULL,
    energy_kwh double precision NOT NULL,
    type text NOT NULL,
    PRIMARY KEY (vin, start_ms)
  );
  CREATE TABLE vehicle_sequences (
    vin text COLLATE "C" PRIMARY KEY,
    boot_id text NOT NULL,
    last_seq bigint NOT NULL,
    gaps bigint NOT NULL,
    at_ms bigint NOT NULL
  );

  CREATE TABLE rule_states (
    vin text COLLATE "C" PRIMARY KEY,
    state text NOT NULL
  );

  CREATE TABLE dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    at_ms bigint NOT NULL,
    topic text NOT NULL,
    client_id text,
    reason text NOT NULL,
    payload bytea NOT NULL
  );
  CREATE INDEX dead_letters_at ON dead_letters (at_ms);

  CREATE TABLE outbox (
    id text COLLATE "C" NOT NULL,
    url text COLLATE "C" NOT NULL,
    body text NOT NULL,
    state text NOT NULL DEFAULT 'pending',
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_ms bigint NOT NULL,
    created_ms bigint NOT NULL,
    delivered_ms bigint,
    last_error text,
    first_failed_ms bigint,
    dead_ms bigint,
    ord bigint GENERATED ALWAYS AS IDENTITY (CACHE 1),
    -- the instance dispatching it, and until when (the database's clock, epoch ms)
    claimed_by text,
    claimed_until_ms bigint,
    PRIMARY KEY (id, url)
  );
  -- due (pending, oldest first, ties in insertion order); listings and counts by state.
  CREATE INDEX outbox_due ON outbox (created_ms, ord) WHERE state = 'pending';
  CREATE INDEX outbox_state_list ON outbox (state, created_ms, id, url);
  CREATE INDEX outbox_delivered ON outbox (delivered_ms) WHERE state = 'delivered';

  CREATE TABLE api_keys (
    id text COLLATE "C" PRIMARY KEY,
    name text NOT NULL,
    role text NOT NULL,
    dealers text NOT NULL,
    permissions text NOT NULL,
    salt bytea NOT NULL,
    hash bytea NOT NULL,
    created_ms bigint NOT NULL,
    created_by text,
    expires_ms bigint,
    revoked_ms bigint
  );
  CREATE TABLE console_sessions (
    id_hash bytea PRIMARY KEY,
    key_id text,
    principal text,
    csrf text NOT NULL,
    created_ms bigint NOT NULL,
    expires_ms bigint NOT NULL
  );
  CREATE INDEX console_sessions_expiry ON console_sessions (expires_ms);
  CREATE TABLE audit (
    id bigint GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    at_ms bigint NOT NULL,
    principal text COLLATE "C" NOT NULL,
    action text NOT NULL,
    vin text COLLATE "C",
    request_id text NOT NULL,
    detail text
  );
  CREATE INDEX audit_at ON audit (at_ms);
  CREATE INDEX audit_vin ON audit (vin, id);
  CREATE INDEX audit_principal ON audit (principal, id);

  CREATE TABLE campaigns (
    id text COLLATE "C" PRIMARY KEY,
    state text NOT NULL,
    created_ms bigint NOT NULL,
    data text NOT NULL
  );
  CREATE INDEX campaigns_created ON campaigns (created_ms DESC, id DESC);
  CREATE INDEX campaigns_state ON campaigns (state, created_ms, id);
  CREATE TABLE campaign_deliveries (
    campaign_id text COLLATE "C" NOT NULL,
    vin text COLLATE "C" NOT NULL,
    occurrence integer NOT NULL,
    prompt_id text COLLATE "C" NOT NULL UNIQUE,
    state text NOT NULL,
    data text NOT NULL,
    PRIMARY KEY (campaign_id, vin, occurrence)
  );
  CREATE INDEX campaign_deliveries_live ON campaign_deliveries (campaign_id) WHERE state IN ('targeted', 'delivered');
  `,
];

export const PG_SCHEMA_VERSION = MIGRATIONS.length;
