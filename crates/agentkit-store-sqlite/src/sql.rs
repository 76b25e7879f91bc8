//! What the per-contract SQL files share.
//!
//! Each contract's file (`sessions.rs`, `config.rs`, `runs.rs`, `approvals.rs`, `tools.rs`,
//! `usage.rs`, `audit.rs`, `counters.rs`, `memory.rs`) holds its `impl …Store for SqliteStore`
//! and the synchronous functions it runs on one connection. A trait method copies its
//! arguments (ids are `Arc`s; JSON is serialized before the connection is taken) and runs the
//! function of the same name on the writer ([`crate::pool::Db::write`]) or a reader
//! ([`crate::pool::Db::read`]).
//!
//! Writers take `&mut Connection` (the writer) and do their whole read-check-write step in one
//! statement or one `BEGIN IMMEDIATE` transaction, so they stay atomic against other processes
//! writing the same file too. Readers take `&Connection` and run one statement (one consistent
//! snapshot). Every statement filters by tenant and is prepared through the statement cache.

use agentkit_core::Result;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, Row, TransactionBehavior};

use crate::codec::from_micros;
use crate::error::db_err;

/// A `BEGIN IMMEDIATE` transaction: it takes the write lock first, so its reads cannot go stale
/// before its writes.
pub(crate) fn immediate(conn: &mut Connection) -> Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db_err)
}

/// A text column, borrowed from the row.
pub(crate) fn text<'r>(row: &'r Row<'_>, idx: usize) -> Result<&'r str> {
    row.get_ref(idx)
        .and_then(|v| v.as_str().map_err(Into::into))
        .map_err(db_err)
}

/// A column as `T`.
pub(crate) fn col<T: rusqlite::types::FromSql>(row: &Row<'_>, idx: usize) -> Result<T> {
    row.get(idx).map_err(db_err)
}

/// A nullable time column.
pub(crate) fn opt_time(v: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    v.map(from_micros).transpose()
}

/// A migrated in-memory database and query plans, for the contracts' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    #![allow(clippy::unwrap_used)]

    use rusqlite::Connection;
    use rusqlite::types::Value as SqlValue;

    use crate::schema;

    /// A new in-memory database with the current schema.
    pub(crate) fn db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        schema::configure_writer(&conn, false).unwrap();
        schema::migrate(&mut conn).unwrap();
        conn
    }

    /// `EXPLAIN QUERY PLAN` of `sql` (every parameter bound to NULL), details joined by ` | `.
    pub(crate) fn plan(conn: &Connection, sql: &str) -> String {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let nulls = vec![SqlValue::Null; st.parameter_count()];
        let details: Vec<String> = st
            .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        details.join(" | ")
    }

    /// Asserts that `sql` reads `index` in order: no sort, no full scan.
    pub(crate) fn assert_reads_index_in_order(conn: &Connection, sql: &str, index: &str) {
        let plan = plan(conn, sql);
        assert!(plan.contains(index), "{sql}: {plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{sql} sorts: {plan}");
        assert!(!plan.starts_with("SCAN"), "{sql} scans: {plan}");
    }
}
