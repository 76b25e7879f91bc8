//! The host's tables in its SQLite file (one connection; statements are short).

use std::path::Path;
use std::sync::Mutex;

use agentkit::id::TenantId;
use agentkit::{Result, async_trait};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::{HostTables, digest, new_key, storage};

/// The host's tables on SQLite.
pub struct SqliteTables {
    db: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteTables").finish_non_exhaustive()
    }
}

impl SqliteTables {
    /// Opens (creating the tables in) the SQLite file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Connection::open(path).map_err(storage)?;
        db.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(storage)?;
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
            );
            CREATE TABLE IF NOT EXISTS host_tools (
                tenant TEXT NOT NULL,
                name TEXT NOT NULL,
                config TEXT NOT NULL,
                updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
                PRIMARY KEY (tenant, name)
            );",
        )
        .map_err(storage)?;
        Ok(Self { db: Mutex::new(db) })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn tenant_of_sync(&self, key: &str) -> Result<Option<TenantId>> {
        let tenant: Option<String> = self
            .db()
            .query_row(
                "SELECT tenant FROM host_api_keys WHERE digest = ?1 AND revoked_at IS NULL",
                params![digest(key)],
                |row| row.get(0),
            )
            .optional()
            .map_err(storage)?;
        Ok(tenant.and_then(|t| TenantId::new(t).ok()))
    }
}

#[async_trait]
impl HostTables for SqliteTables {
    async fn create_key(&self, tenant: &TenantId) -> Result<String> {
        let key = new_key()?;
        self.db()
            .execute(
                "INSERT INTO host_api_keys (digest, tenant) VALUES (?1, ?2)",
                params![digest(&key), tenant.as_str()],
            )
            .map_err(storage)?;
        Ok(key)
    }

    async fn tenant_of(&self, key: &str) -> Result<Option<TenantId>> {
        self.tenant_of_sync(key)
    }

    async fn rotate(&self, key: &str) -> Result<Option<String>> {
        let fresh = new_key()?;
        let mut db = self.db();
        let tx = db.transaction().map_err(storage)?;
        // Revoking first (only a live key) makes two concurrent rotations of one key yield
        // one new key, not two.
        let tenant: Option<String> = tx
            .query_row(
                "UPDATE host_api_keys SET revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')
                 WHERE digest = ?1 AND revoked_at IS NULL RETURNING tenant",
                params![digest(key)],
                |row| row.get(0),
            )
            .optional()
            .map_err(storage)?;
        let Some(tenant) = tenant else {
            return Ok(None);
        };
        tx.execute(
            "INSERT INTO host_api_keys (digest, tenant) VALUES (?1, ?2)",
            params![digest(&fresh), tenant],
        )
        .map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(Some(fresh))
    }

    async fn has_tenant(&self, tenant: &TenantId) -> Result<bool> {
        self.db()
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM host_api_keys WHERE tenant = ?1)",
                params![tenant.as_str()],
                |row| row.get(0),
            )
            .map_err(storage)
    }

    async fn is_empty(&self) -> Result<bool> {
        let n: i64 = self
            .db()
            .query_row("SELECT COUNT(*) FROM host_api_keys", [], |row| row.get(0))
            .map_err(storage)?;
        Ok(n == 0)
    }

    async fn add_agent(&self, tenant: &TenantId, agent: &str) -> Result<()> {
        self.db()
            .execute(
                "INSERT OR IGNORE INTO host_agents (tenant, agent) VALUES (?1, ?2)",
                params![tenant.as_str(), agent],
            )
            .map_err(storage)?;
        Ok(())
    }

    async fn agents(&self, tenant: &TenantId) -> Result<Vec<String>> {
        let db = self.db();
        let mut stmt = db
            .prepare_cached("SELECT agent FROM host_agents WHERE tenant = ?1 ORDER BY agent")
            .map_err(storage)?;
        let rows = stmt
            .query_map(params![tenant.as_str()], |row| row.get(0))
            .map_err(storage)?;
        rows.collect::<std::result::Result<_, _>>().map_err(storage)
    }

    async fn put_tool(&self, tenant: &TenantId, name: &str, config: &Value) -> Result<bool> {
        let mut db = self.db();
        let tx = db.transaction().map_err(storage)?;
        let existed: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM host_tools WHERE tenant = ?1 AND name = ?2)",
                params![tenant.as_str(), name],
                |row| row.get(0),
            )
            .map_err(storage)?;
        tx.execute(
            "INSERT INTO host_tools (tenant, name, config) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant, name) DO UPDATE SET config = excluded.config,
               updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')",
            params![tenant.as_str(), name, config.to_string()],
        )
        .map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(existed)
    }

    async fn tools(&self, tenant: &TenantId) -> Result<Vec<(String, Value)>> {
        let db = self.db();
        let mut stmt = db
            .prepare_cached("SELECT name, config FROM host_tools WHERE tenant = ?1 ORDER BY name")
            .map_err(storage)?;
        let rows = stmt
            .query_map(params![tenant.as_str()], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(storage)?;
        let mut out = Vec::new();
        for row in rows {
            let (name, config) = row.map_err(storage)?;
            let config = serde_json::from_str(&config).map_err(storage)?;
            out.push((name, config));
        }
        Ok(out)
    }
}
