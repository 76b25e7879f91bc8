//! Per-tenant API keys, kept only as SHA-256 digests (in the host's SQLite file), with
//! rotation.

use std::path::Path;
use std::sync::Mutex;

use agentkit::id::TenantId;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// The key table.
pub struct ApiKeys {
    db: Mutex<Connection>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys").finish_non_exhaustive()
    }
}

/// A key's digest: what is stored and looked up.
fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key (`ak_` and 32 random bytes in hex).
fn new_key() -> Result<String, rusqlite::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        rusqlite::Error::ToSqlConversionFailure(format!("no randomness: {e}").into())
    })?;
    Ok(format!("ak_{}", hex::encode(bytes)))
}

impl ApiKeys {
    /// Opens (creating the table in) the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let db = Connection::open(path)?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS host_api_keys (
                digest TEXT PRIMARY KEY,
                tenant TEXT NOT NULL,
                created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
                revoked_at TEXT
            );
            CREATE TABLE IF NOT EXISTS host_agents (
                tenant TEXT NOT NULL,
                agent TEXT NOT NULL,
                PRIMARY KEY (tenant, agent)
            );",
        )?;
        Ok(Self { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Issues a key for `tenant`; the key itself is returned once and never stored.
    pub fn create(&self, tenant: &TenantId) -> Result<String, rusqlite::Error> {
        let key = new_key()?;
        self.db().execute(
            "INSERT INTO host_api_keys (digest, tenant) VALUES (?1, ?2)",
            params![digest(&key), tenant.as_str()],
        )?;
        Ok(key)
    }

    /// The tenant of a live key.
    pub fn tenant_of(&self, key: &str) -> Result<Option<TenantId>, rusqlite::Error> {
        let tenant: Option<String> = self
            .db()
            .query_row(
                "SELECT tenant FROM host_api_keys WHERE digest = ?1 AND revoked_at IS NULL",
                params![digest(key)],
                |row| row.get(0),
            )
            .optional()?;
        Ok(tenant.and_then(|t| TenantId::new(t).ok()))
    }

    /// Replaces `key` by a new key of the same tenant; the old one stops working at once.
    pub fn rotate(&self, key: &str) -> Result<Option<String>, rusqlite::Error> {
        let Some(tenant) = self.tenant_of(key)? else {
            return Ok(None);
        };
        let fresh = new_key()?;
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "UPDATE host_api_keys SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
             WHERE digest = ?1",
            params![digest(key)],
        )?;
        tx.execute(
            "INSERT INTO host_api_keys (digest, tenant) VALUES (?1, ?2)",
            params![digest(&fresh), tenant.as_str()],
        )?;
        tx.commit()?;
        Ok(Some(fresh))
    }

    /// Whether any key exists (a fresh database gets demo keys).
    pub fn is_empty(&self) -> Result<bool, rusqlite::Error> {
        let n: i64 = self
            .db()
            .query_row("SELECT COUNT(*) FROM host_api_keys", [], |row| row.get(0))?;
        Ok(n == 0)
    }

    /// Records that `tenant` has an agent `agent` (the store lists versions per agent).
    pub fn add_agent(&self, tenant: &TenantId, agent: &str) -> Result<(), rusqlite::Error> {
        self.db().execute(
            "INSERT OR IGNORE INTO host_agents (tenant, agent) VALUES (?1, ?2)",
            params![tenant.as_str(), agent],
        )?;
        Ok(())
    }

    /// The agents of `tenant`, sorted.
    pub fn agents(&self, tenant: &TenantId) -> Result<Vec<String>, rusqlite::Error> {
        let db = self.db();
        let mut stmt =
            db.prepare("SELECT agent FROM host_agents WHERE tenant = ?1 ORDER BY agent")?;
        let rows = stmt.query_map(params![tenant.as_str()], |row| row.get(0))?;
        rows.collect()
    }
}
