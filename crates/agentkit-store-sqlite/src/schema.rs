//! The schema, its migrations and the connection settings.
//!
//! Migration `i` (0-based) of [`MIGRATIONS`] brings the database to schema version `i + 1`; the
//! version is kept in `PRAGMA user_version`. Migrations only ever get appended: a released one is
//! never edited.

use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::SCHEMA_VERSION;
use crate::error::OpenError;

/// How long a connection waits for another process's lock before giving up with a retryable
/// error.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection (every statement the store issues fits).
pub(crate) const STATEMENT_CACHE: usize = 128;

/// The schema, one migration per version.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// Version 1: every table of the store contracts.
///
/// Conventions: every table starts with `tenant` and every key includes it; timestamps are
/// integer microseconds since the Unix epoch (UTC); the columns queries filter or sort on are
/// columns, the rest of a record is one JSON text column (`body`, `message`, `config`, `value`).
const V1: &str = r#"
CREATE TABLE sessions (
    tenant      TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    metadata    TEXT    NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT, WITHOUT ROWID;

-- Messages as deltas. The primary key index (tenant, session, seq) serves every window:
-- Last(n) walks it backwards with LIMIT n, After(s) seeks to s.
CREATE TABLE messages (
    tenant      TEXT    NOT NULL,
    session     TEXT    NOT NULL,
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    run         TEXT,
    created_at  INTEGER NOT NULL,
    message     TEXT    NOT NULL,
    PRIMARY KEY (tenant, session, seq),
    FOREIGN KEY (tenant, session) REFERENCES sessions (tenant, id)
) STRICT;

CREATE TABLE agent_configs (
    tenant      TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    status      TEXT    NOT NULL,
    config      TEXT    NOT NULL,
    PRIMARY KEY (tenant, agent, version)
) STRICT;

CREATE TRIGGER agent_configs_final_no_update BEFORE UPDATE ON agent_configs
WHEN OLD.status = 'final'
BEGIN
    SELECT RAISE(ABORT, 'agentkit: a final agent config version is immutable');
END;

CREATE TRIGGER agent_configs_final_no_delete BEFORE DELETE ON agent_configs
WHEN OLD.status = 'final'
BEGIN
    SELECT RAISE(ABORT, 'agentkit: a final agent config version is immutable');
END;

CREATE TABLE runs (
    tenant      TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    session     TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    body        TEXT    NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, session) REFERENCES sessions (tenant, id)
) STRICT;

CREATE TABLE approvals (
    tenant      TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    agent       TEXT    NOT NULL,
    session     TEXT    NOT NULL,
    run         TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    priority    INTEGER NOT NULL,
    deadline    INTEGER,
    created_at  INTEGER NOT NULL,
    decided_at  INTEGER,
    body        TEXT    NOT NULL,
    PRIMARY KEY (tenant, id),
    FOREIGN KEY (tenant, run) REFERENCES runs (tenant, id)
) STRICT;

-- The review queue, in exactly the order list_pending_approvals returns.
CREATE INDEX approvals_pending_queue
    ON approvals (tenant, priority DESC, deadline IS NULL, deadline, created_at, id)
    WHERE status = 'pending';

-- Upserted by idempotency key; the rowid keeps the order of first recording.
CREATE TABLE tool_executions (
    tenant           TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL,
    agent            TEXT    NOT NULL,
    session          TEXT    NOT NULL,
    run              TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    started_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    body             TEXT    NOT NULL,
    PRIMARY KEY (tenant, idempotency_key)
) STRICT;

CREATE INDEX tool_executions_by_run ON tool_executions (tenant, run);

CREATE TRIGGER tool_executions_succeeded_no_update BEFORE UPDATE ON tool_executions
WHEN OLD.status = 'succeeded'
BEGIN
    SELECT RAISE(ABORT, 'agentkit: a succeeded tool execution is final');
END;

-- Append-only: the triggers below refuse UPDATE, DELETE and INSERT OR REPLACE (whose implicit
-- delete fires no delete trigger unless recursive_triggers is on).
CREATE TABLE usage_events (
    tenant         TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    agent          TEXT    NOT NULL,
    session        TEXT,
    run            TEXT,
    kind           TEXT    NOT NULL,
    resource       TEXT,
    quantity       INTEGER NOT NULL CHECK (quantity >= 0),
    cost_nanos     INTEGER,
    price_version  TEXT,
    at             INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT;

CREATE INDEX usage_events_by_time ON usage_events (tenant, at);
CREATE INDEX usage_events_by_run ON usage_events (tenant, run, at) WHERE run IS NOT NULL;

CREATE TRIGGER usage_events_no_update BEFORE UPDATE ON usage_events
BEGIN
    SELECT RAISE(ABORT, 'agentkit: usage events are append-only');
END;

CREATE TRIGGER usage_events_no_delete BEFORE DELETE ON usage_events
BEGIN
    SELECT RAISE(ABORT, 'agentkit: usage events are append-only');
END;

CREATE TRIGGER usage_events_no_replace BEFORE INSERT ON usage_events
WHEN EXISTS (SELECT 1 FROM usage_events WHERE tenant = NEW.tenant AND id = NEW.id)
BEGIN
    SELECT RAISE(ABORT, 'agentkit: usage events are append-only');
END;

-- Append-only and chained per tenant: besides refusing UPDATE and DELETE, an insert must be the
-- next sequence number and carry the previous entry's hash (which also refuses REPLACE).
CREATE TABLE audit_entries (
    tenant     TEXT    NOT NULL,
    seq        INTEGER NOT NULL CHECK (seq >= 1),
    kind       TEXT    NOT NULL,
    agent      TEXT,
    session    TEXT,
    run        TEXT,
    at         INTEGER NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    PRIMARY KEY (tenant, seq)
) STRICT;

CREATE INDEX audit_entries_by_run ON audit_entries (tenant, run, seq) WHERE run IS NOT NULL;

CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'agentkit: audit entries are append-only');
END;

CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'agentkit: audit entries are append-only');
END;

CREATE TRIGGER audit_entries_chained BEFORE INSERT ON audit_entries
WHEN NEW.seq IS NOT (1 + COALESCE(
        (SELECT MAX(seq) FROM audit_entries WHERE tenant = NEW.tenant), 0))
  OR NEW.prev_hash IS NOT COALESCE(
        (SELECT hash FROM audit_entries WHERE tenant = NEW.tenant AND seq = NEW.seq - 1),
        '0000000000000000000000000000000000000000000000000000000000000000')
BEGIN
    SELECT RAISE(ABORT, 'agentkit: audit entries are append-only and chained');
END;

CREATE TABLE counters (
    tenant  TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    value   INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE memories (
    tenant      TEXT    NOT NULL,
    scope       TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, scope, key)
) STRICT;
"#;

/// Settings every connection gets.
pub(crate) fn configure_common(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

/// Settings of the writer connection: WAL (persistent in the file), `synchronous=NORMAL`.
pub(crate) fn configure_writer(conn: &Connection, file: bool) -> Result<(), OpenError> {
    configure_common(conn).map_err(OpenError::database)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))
        .map_err(OpenError::database)?;
    if file && !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Database {
            message: format!("could not switch the database to WAL (journal_mode is {mode})"),
            retryable: false,
            source: None,
        });
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(OpenError::database)?;
    Ok(())
}

/// Version 2: retracted messages (a failed run's messages stay stored, windows skip them).
const V2: &str = r#"
ALTER TABLE messages ADD COLUMN retracted INTEGER NOT NULL DEFAULT 0 CHECK (retracted IN (0, 1));
"#;

/// Version 3: the workflow store (`agentkit-workflow`): definitions, runs, step logs, events.
///
/// A run row keeps the whole run as JSON (`body`) plus the columns claims, event deliveries and
/// queries use: `due_at` is when the run becomes claimable (NULL: only a resume or an event
/// wakes it; never before a live lease expires), `event_key` is set while it waits for an
/// event.
const V3: &str = r#"
CREATE TABLE workflow_definitions (
    tenant   TEXT    NOT NULL,
    id       TEXT    NOT NULL,
    version  INTEGER NOT NULL,
    body     TEXT    NOT NULL,
    PRIMARY KEY (tenant, id, version)
) STRICT;

CREATE TRIGGER workflow_definitions_immutable BEFORE UPDATE ON workflow_definitions
BEGIN
    SELECT RAISE(ABORT, 'agentkit: published workflow versions are immutable');
END;

CREATE TABLE workflow_runs (
    tenant       TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    workflow     TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    due_at       INTEGER,
    wake_at      INTEGER,
    event_key    TEXT,
    trigger_key  TEXT,
    created_at   INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT;

CREATE UNIQUE INDEX workflow_runs_by_trigger ON workflow_runs (tenant, workflow, trigger_key)
    WHERE trigger_key IS NOT NULL;
CREATE INDEX workflow_runs_due ON workflow_runs (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX workflow_runs_waiting ON workflow_runs (tenant, event_key) WHERE event_key IS NOT NULL;
CREATE INDEX workflow_runs_by_time ON workflow_runs (tenant, created_at, id);

CREATE TABLE workflow_steps (
    tenant  TEXT    NOT NULL,
    run     TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    body    TEXT    NOT NULL,
    PRIMARY KEY (tenant, run, seq),
    FOREIGN KEY (tenant, run) REFERENCES workflow_runs (tenant, id)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER workflow_steps_no_update BEFORE UPDATE ON workflow_steps
BEGIN
    SELECT RAISE(ABORT, 'agentkit: workflow steps are append-only');
END;

CREATE TABLE workflow_events (
    tenant     TEXT    NOT NULL,
    id         TEXT    NOT NULL,
    event_key  TEXT    NOT NULL,
    body       TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    consumed   INTEGER NOT NULL CHECK (consumed IN (0, 1)),
    PRIMARY KEY (tenant, id)
) STRICT;

CREATE INDEX workflow_events_kept ON workflow_events (tenant, event_key, at) WHERE consumed = 0;
"#;

/// Version 4: knowledge vectors (the core `VectorStore`, `crate::SqliteVectorStore`).
///
/// A chunk is one `rag_vectors` row keyed by `(tenant, agent, id)`: its vector as a BLOB of
/// little-endian `f32`s with its Euclidean norm beside it (the scan reads those two columns
/// first; text, citation data and metadata, JSON, are read only for the winners). Each metadata
/// pair is also a `rag_vector_meta` row, indexed by `(tenant, agent, key, value)`, so a filtered
/// search narrows the scan in SQL. `rag_documents` holds the ingested documents' entries.
const V4: &str = r#"
CREATE TABLE rag_vectors (
    tenant       TEXT    NOT NULL,
    agent        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    document_id  TEXT    NOT NULL,
    norm         REAL    NOT NULL,
    vector       BLOB    NOT NULL,
    text         TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    metadata     TEXT    NOT NULL,
    PRIMARY KEY (tenant, agent, id)
) STRICT;

CREATE INDEX rag_vectors_by_document ON rag_vectors (tenant, agent, document_id);

CREATE TABLE rag_vector_meta (
    tenant  TEXT    NOT NULL,
    agent   TEXT    NOT NULL,
    id      TEXT    NOT NULL,
    key     TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (tenant, agent, id, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX rag_vector_meta_by_pair ON rag_vector_meta (tenant, agent, key, value);

CREATE TABLE rag_documents (
    tenant        TEXT    NOT NULL,
    agent         TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    title         TEXT,
    content_hash  TEXT    NOT NULL,
    chunks        INTEGER NOT NULL CHECK (chunks >= 0),
    metadata      TEXT    NOT NULL,
    PRIMARY KEY (tenant, agent, id)
) STRICT, WITHOUT ROWID;
"#;

/// Version 5: keyword search over the chunks' texts (`VectorStore::search_text`).
///
/// `rag_vectors` is rebuilt with an explicit `INTEGER PRIMARY KEY` (`rid`, the old rowid
/// kept), so the number the text index is keyed by is a stable key that `VACUUM` never
/// renumbers; `(tenant, agent, id)` stays unique and the key of every statement.
/// `rag_vector_text` is an external-content FTS5 table over `rag_vectors.text` (it keeps the
/// index and the lengths BM25 needs, not a second copy of the texts), its rowid the chunk's
/// `rid`. The tokenizer folds case, strips diacritics and stems English (`porter unicode61
/// remove_diacritics 2`). Every write of `rag_vectors` updates the index in the same
/// transaction (an entry is removed with the text it was indexed with, read from the row before
/// the row changes); the migration indexes the rows already stored (`rebuild`).
const V5: &str = r#"
CREATE TABLE rag_vectors_v5 (
    rid          INTEGER PRIMARY KEY,
    tenant       TEXT    NOT NULL,
    agent        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    document_id  TEXT    NOT NULL,
    norm         REAL    NOT NULL,
    vector       BLOB    NOT NULL,
    text         TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    metadata     TEXT    NOT NULL,
    UNIQUE (tenant, agent, id)
) STRICT;

INSERT INTO rag_vectors_v5
    (rid, tenant, agent, id, document_id, norm, vector, text, source, metadata)
SELECT rowid, tenant, agent, id, document_id, norm, vector, text, source, metadata
FROM rag_vectors;

DROP TABLE rag_vectors;
ALTER TABLE rag_vectors_v5 RENAME TO rag_vectors;
CREATE INDEX rag_vectors_by_document ON rag_vectors (tenant, agent, document_id);

CREATE VIRTUAL TABLE rag_vector_text USING fts5 (
    text,
    content = 'rag_vectors',
    content_rowid = 'rid',
    tokenize = 'porter unicode61 remove_diacritics 2'
);

INSERT INTO rag_vector_text (rag_vector_text) VALUES ('rebuild');
"#;

/// Settings of a reader connection: it refuses writes.
pub(crate) fn configure_reader(conn: &Connection) -> rusqlite::Result<()> {
    configure_common(conn)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(())
}

/// Brings the database to [`SCHEMA_VERSION`] in one IMMEDIATE transaction (so concurrent
/// openers migrate once), or refuses a database from a newer build. Returns the version.
pub(crate) fn migrate(conn: &mut Connection) -> Result<u32, OpenError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(OpenError::database)?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(OpenError::database)?;
    let found = u32::try_from(found).map_err(|_| OpenError::Database {
        message: format!("the database has an invalid schema version {found}"),
        retryable: false,
        source: None,
    })?;
    let supported = SCHEMA_VERSION;
    if found > supported {
        return Err(OpenError::SchemaTooNew { found, supported });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = u32::try_from(index + 1).unwrap_or(u32::MAX);
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", version))
            .map_err(|e| OpenError::Migration {
                version,
                source: Box::new(e),
            })?;
        tracing::debug!(version, "agentkit-store-sqlite: applied migration");
    }
    tx.commit().map_err(OpenError::database)?;
    Ok(supported)
}
