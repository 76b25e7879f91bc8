//! Direct access to a test database around agentkit's store: closing a reopened handle's
//! connections, and trying to rewrite audit history with plain SQL.

use super::support::Db;

/// Closes a reopened database's connections; its data stays for the original's cleanup.
pub async fn close(db: Db) {
    if let Db::Postgres { store, .. } = db {
        store.pool().close().await;
    }
}

/// Tries to edit the audit trail behind the store's back, with plain SQL.
pub async fn rewrite_audit(db: &Db) -> Result<(), String> {
    const SQL: &str = "UPDATE audit_entries SET kind = 'forged'";
    match db {
        Db::Sqlite(_, dir) => {
            let dir = dir
                .as_ref()
                .ok_or("a reopened SQLite handle has no directory")?;
            let conn = rusqlite::Connection::open(dir.path().join("agentkit.db"))
                .map_err(|e| e.to_string())?;
            conn.execute(SQL, []).map(|_| ()).map_err(|e| e.to_string())
        }
        Db::Postgres { store, .. } => sqlx::query(SQL)
            .execute(store.pool())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}
