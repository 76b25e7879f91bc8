//! [`MemoryStore`]: JSON values by `(tenant, scope, key)`.

use agentkit_core::Result;
use agentkit_core::id::TenantId;
use agentkit_core::store::{MemoryScope, MemoryStore};
use async_trait::async_trait;
use rusqlite::{Connection, params};
use serde_json::Value;

use crate::SqliteStore;
use crate::codec::{from_json, micros, now, to_json};
use crate::error::db_err;
use crate::sql::text;

#[async_trait]
impl MemoryStore for SqliteStore {
    async fn put_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
        value: &Value,
    ) -> Result<()> {
        let value = to_json(value)?;
        let (tenant, scope, key) = (tenant.clone(), scope.storage_key(), key.to_owned());
        self.db()
            .write(move |c| put_memory(c, &tenant, &scope, &key, &value))
            .await
    }

    async fn get_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
    ) -> Result<Option<Value>> {
        let (tenant, scope, key) = (tenant.clone(), scope.storage_key(), key.to_owned());
        self.db()
            .read(move |c| get_memory(c, &tenant, &scope, &key))
            .await
    }

    async fn list_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
    ) -> Result<Vec<(String, Value)>> {
        let (tenant, scope) = (tenant.clone(), scope.storage_key());
        self.db()
            .read(move |c| list_memory(c, &tenant, &scope))
            .await
    }

    async fn delete_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
    ) -> Result<bool> {
        let (tenant, scope, key) = (tenant.clone(), scope.storage_key(), key.to_owned());
        self.db()
            .write(move |c| delete_memory(c, &tenant, &scope, &key))
            .await
    }
}

// The SQL, on one connection.

fn put_memory(
    conn: &mut Connection,
    tenant: &TenantId,
    scope: &str,
    key: &str,
    value: &str,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO memories (tenant, scope, key, value, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (tenant, scope, key) DO UPDATE \
         SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .and_then(|mut st| st.execute(params![tenant.as_str(), scope, key, value, micros(now())]))
    .map_err(db_err)?;
    Ok(())
}

fn get_memory(
    conn: &Connection,
    tenant: &TenantId,
    scope: &str,
    key: &str,
) -> Result<Option<Value>> {
    let mut st = conn
        .prepare_cached("SELECT value FROM memories WHERE tenant = ?1 AND scope = ?2 AND key = ?3")
        .map_err(db_err)?;
    let mut rows = st
        .query(params![tenant.as_str(), scope, key])
        .map_err(db_err)?;
    rows.next()
        .map_err(db_err)?
        .map(|row| from_json(text(row, 0)?, "memory value"))
        .transpose()
}

fn list_memory(conn: &Connection, tenant: &TenantId, scope: &str) -> Result<Vec<(String, Value)>> {
    // BINARY collation: byte order of UTF-8, the same as Rust's `str` order.
    let mut st = conn
        .prepare_cached(
            "SELECT key, value FROM memories WHERE tenant = ?1 AND scope = ?2 ORDER BY key",
        )
        .map_err(db_err)?;
    let mut rows = st.query(params![tenant.as_str(), scope]).map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        out.push((
            text(row, 0)?.to_owned(),
            from_json(text(row, 1)?, "memory value")?,
        ));
    }
    Ok(out)
}

fn delete_memory(conn: &mut Connection, tenant: &TenantId, scope: &str, key: &str) -> Result<bool> {
    let deleted = conn
        .prepare_cached("DELETE FROM memories WHERE tenant = ?1 AND scope = ?2 AND key = ?3")
        .and_then(|mut st| st.execute(params![tenant.as_str(), scope, key]))
        .map_err(db_err)?;
    Ok(deleted > 0)
}
