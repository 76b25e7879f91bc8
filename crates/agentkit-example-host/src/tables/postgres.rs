//! The host's tables on Postgres (feature `postgres`), beside agentkit's in the same database
//! and schema. The agent and tool tables are under row-level security on the same setting as
//! agentkit's tables (`agentkit.tenant`, set per transaction) and every query filters by tenant
//! too. The key table has no tenant policy: finding a key's tenant is the authentication
//! itself, by digest.

use agentkit::id::TenantId;
use agentkit::postgres::sqlx::{self, PgPool, Postgres, Transaction};
use agentkit::{Result, async_trait};
use serde_json::Value;

use super::{HostTables, digest, new_key, storage};

/// Creates the tables and policies once per schema (an advisory lock serializes hosts opening
/// the same database at once).
const SCHEMA: &[&str] = &[
    "SELECT pg_advisory_xact_lock(hashtext('agentkit-example-host:schema'))",
    "CREATE TABLE IF NOT EXISTS host_api_keys (
        digest TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        revoked_at TIMESTAMPTZ
    )",
    "CREATE TABLE IF NOT EXISTS host_agents (
        tenant TEXT NOT NULL,
        agent TEXT NOT NULL,
        PRIMARY KEY (tenant, agent)
    )",
    "CREATE TABLE IF NOT EXISTS host_tools (
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        config JSONB NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant, name)
    )",
    "ALTER TABLE host_agents ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE host_agents FORCE ROW LEVEL SECURITY",
    "ALTER TABLE host_tools ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE host_tools FORCE ROW LEVEL SECURITY",
    "DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                       AND tablename = 'host_agents' AND policyname = 'host_agents_tenant') THEN
            CREATE POLICY host_agents_tenant ON host_agents
                USING (tenant = current_setting('agentkit.tenant', true))
                WITH CHECK (tenant = current_setting('agentkit.tenant', true));
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE schemaname = current_schema()
                       AND tablename = 'host_tools' AND policyname = 'host_tools_tenant') THEN
            CREATE POLICY host_tools_tenant ON host_tools
                USING (tenant = current_setting('agentkit.tenant', true))
                WITH CHECK (tenant = current_setting('agentkit.tenant', true));
        END IF;
    END $$",
];

/// The host's tables on Postgres, over the agentkit store's pool.
#[derive(Debug, Clone)]
pub struct PostgresTables {
    pool: PgPool,
}

impl PostgresTables {
    /// Creates the tables (if missing) in the first schema of the pool's `search_path`.
    pub async fn open(pool: PgPool) -> Result<Self> {
        let mut tx = pool.begin().await.map_err(storage)?;
        for statement in SCHEMA {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(storage)?;
        }
        tx.commit().await.map_err(storage)?;
        Ok(Self { pool })
    }

    /// A transaction scoped to `tenant` for the row-level security policies.
    async fn scoped(&self, tenant: &TenantId) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await.map_err(storage)?;
        sqlx::query("SELECT set_config('agentkit.tenant', $1, true)")
            .bind(tenant.as_str())
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        Ok(tx)
    }
}

#[async_trait]
impl HostTables for PostgresTables {
    async fn create_key(&self, tenant: &TenantId) -> Result<String> {
        let key = new_key()?;
        sqlx::query("INSERT INTO host_api_keys (digest, tenant) VALUES ($1, $2)")
            .bind(digest(&key))
            .bind(tenant.as_str())
            .execute(&self.pool)
            .await
            .map_err(storage)?;
        Ok(key)
    }

    async fn tenant_of(&self, key: &str) -> Result<Option<TenantId>> {
        let tenant: Option<String> = sqlx::query_scalar(
            "SELECT tenant FROM host_api_keys WHERE digest = $1 AND revoked_at IS NULL",
        )
        .bind(digest(key))
        .fetch_optional(&self.pool)
        .await
        .map_err(storage)?;
        Ok(tenant.and_then(|t| TenantId::new(t).ok()))
    }

    async fn rotate(&self, key: &str) -> Result<Option<String>> {
        let fresh = new_key()?;
        let mut tx = self.pool.begin().await.map_err(storage)?;
        let tenant: Option<String> = sqlx::query_scalar(
            "UPDATE host_api_keys SET revoked_at = now()
             WHERE digest = $1 AND revoked_at IS NULL RETURNING tenant",
        )
        .bind(digest(key))
        .fetch_optional(&mut *tx)
        .await
        .map_err(storage)?;
        let Some(tenant) = tenant else {
            return Ok(None);
        };
        sqlx::query("INSERT INTO host_api_keys (digest, tenant) VALUES ($1, $2)")
            .bind(digest(&fresh))
            .bind(&tenant)
            .execute(&mut *tx)
            .await
            .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(Some(fresh))
    }

    async fn has_tenant(&self, tenant: &TenantId) -> Result<bool> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM host_api_keys WHERE tenant = $1)")
            .bind(tenant.as_str())
            .fetch_one(&self.pool)
            .await
            .map_err(storage)
    }

    async fn is_empty(&self) -> Result<bool> {
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM host_api_keys)")
            .fetch_one(&self.pool)
            .await
            .map_err(storage)?;
        Ok(!any)
    }

    async fn add_agent(&self, tenant: &TenantId, agent: &str) -> Result<()> {
        let mut tx = self.scoped(tenant).await?;
        sqlx::query(
            "INSERT INTO host_agents (tenant, agent) VALUES ($1, $2)
             ON CONFLICT (tenant, agent) DO NOTHING",
        )
        .bind(tenant.as_str())
        .bind(agent)
        .execute(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)
    }

    async fn agents(&self, tenant: &TenantId) -> Result<Vec<String>> {
        let mut tx = self.scoped(tenant).await?;
        let agents =
            sqlx::query_scalar("SELECT agent FROM host_agents WHERE tenant = $1 ORDER BY agent")
                .bind(tenant.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(agents)
    }

    async fn put_tool(&self, tenant: &TenantId, name: &str, config: &Value) -> Result<bool> {
        let mut tx = self.scoped(tenant).await?;
        // `xmax` not 0 on the returned row: it was an update of an existing one.
        let replaced: bool = sqlx::query_scalar(
            "INSERT INTO host_tools (tenant, name, config) VALUES ($1, $2, $3)
             ON CONFLICT (tenant, name) DO UPDATE SET config = excluded.config, updated_at = now()
             RETURNING NOT (xmax = 0)",
        )
        .bind(tenant.as_str())
        .bind(name)
        .bind(sqlx::types::Json(config))
        .fetch_one(&mut *tx)
        .await
        .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(replaced)
    }

    async fn tools(&self, tenant: &TenantId) -> Result<Vec<(String, Value)>> {
        let mut tx = self.scoped(tenant).await?;
        let rows: Vec<(String, sqlx::types::Json<Value>)> =
            sqlx::query_as("SELECT name, config FROM host_tools WHERE tenant = $1 ORDER BY name")
                .bind(tenant.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(storage)?;
        tx.commit().await.map_err(storage)?;
        Ok(rows.into_iter().map(|(n, c)| (n, c.0)).collect())
    }
}
