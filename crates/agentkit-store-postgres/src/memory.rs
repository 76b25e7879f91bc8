//! [`MemoryStore`]: long-term memory, JSON values by scope and key.

use agentkit_core::Result;
use agentkit_core::id::TenantId;
use agentkit_core::store::{MemoryScope, MemoryStore};
use async_trait::async_trait;
use serde_json::Value;

use crate::codec::{from_json, json};
use crate::error::query_error;
use crate::{PostgresStore, commit};

#[async_trait]
impl MemoryStore for PostgresStore {
    async fn put_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
        value: &Value,
    ) -> Result<()> {
        const OP: &str = "put_memory";
        let mut tx = self.begin(OP, tenant).await?;
        sqlx::query(
            "INSERT INTO memories (tenant, scope, key, value) VALUES ($1, $2, $3, $4::json) \
             ON CONFLICT (tenant, scope, key) DO UPDATE \
             SET value = EXCLUDED.value, updated_at = now()",
        )
        .bind(tenant.as_str())
        .bind(scope.storage_key())
        .bind(key)
        .bind(json(value)?)
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await
    }

    async fn get_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
    ) -> Result<Option<Value>> {
        const OP: &str = "get_memory";
        let mut tx = self.begin(OP, tenant).await?;
        let text: Option<String> = sqlx::query_scalar(
            "SELECT value::text FROM memories WHERE tenant = $1 AND scope = $2 AND key = $3",
        )
        .bind(tenant.as_str())
        .bind(scope.storage_key())
        .bind(key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        text.map(|t| from_json::<Value>(&t, "a stored memory"))
            .transpose()
    }

    async fn list_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
    ) -> Result<Vec<(String, Value)>> {
        const OP: &str = "list_memory";
        let mut tx = self.begin(OP, tenant).await?;
        // `key` has the "C" collation: byte order, the order of Rust's `str`.
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT key, value::text FROM memories WHERE tenant = $1 AND scope = $2 ORDER BY key",
        )
        .bind(tenant.as_str())
        .bind(scope.storage_key())
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        rows.into_iter()
            .map(|(k, v)| Ok((k, from_json::<Value>(&v, "a stored memory")?)))
            .collect()
    }

    async fn delete_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
    ) -> Result<bool> {
        const OP: &str = "delete_memory";
        let mut tx = self.begin(OP, tenant).await?;
        let deleted =
            sqlx::query("DELETE FROM memories WHERE tenant = $1 AND scope = $2 AND key = $3")
                .bind(tenant.as_str())
                .bind(scope.storage_key())
                .bind(key)
                .execute(&mut *tx)
                .await
                .map_err(|e| query_error(OP, e))?
                .rows_affected();
        commit(tx, OP).await?;
        Ok(deleted > 0)
    }
}
