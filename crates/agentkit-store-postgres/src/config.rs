//! [`AgentConfigStore`]: versioned agent configurations.
//!
//! One conditional UPSERT: a draft is inserted or replaced, a final version is left alone and
//! the missing `RETURNING` row says so ([`Error::Conflict`]).

use agentkit_core::agent::AgentConfig;
use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::store::AgentConfigStore;
use agentkit_core::{Error, Result};
use async_trait::async_trait;

use crate::codec::{from_json, json, name, to_u32};
use crate::error::query_error;
use crate::{PostgresStore, commit};

#[async_trait]
impl AgentConfigStore for PostgresStore {
    async fn put_agent_config(&self, tenant: &TenantId, config: &AgentConfig) -> Result<()> {
        const OP: &str = "put_agent_config";
        let mut tx = self.begin(OP, tenant).await?;
        let written: Option<i32> = sqlx::query_scalar(
            "INSERT INTO agent_configs (tenant, agent, version, status, config) \
             VALUES ($1, $2, $3, $4, $5::json) \
             ON CONFLICT (tenant, agent, version) DO UPDATE \
             SET status = EXCLUDED.status, config = EXCLUDED.config, updated_at = now() \
             WHERE agent_configs.status <> 'final' \
             RETURNING 1",
        )
        .bind(tenant.as_str())
        .bind(config.agent.as_str())
        .bind(i64::from(config.version))
        .bind(name(&config.status)?)
        .bind(json(config)?)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        if written.is_none() {
            return Err(Error::Conflict(format!(
                "agent {} version {} is final",
                config.agent, config.version
            )));
        }
        commit(tx, OP).await
    }

    async fn get_agent_config(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        version: Option<u32>,
    ) -> Result<Option<AgentConfig>> {
        const OP: &str = "get_agent_config";
        let mut tx = self.begin(OP, tenant).await?;
        let text: Option<String> = match version {
            Some(v) => {
                sqlx::query_scalar(
                    "SELECT config::text FROM agent_configs \
                     WHERE tenant = $1 AND agent = $2 AND version = $3",
                )
                .bind(tenant.as_str())
                .bind(agent.as_str())
                .bind(i64::from(v))
                .fetch_optional(&mut *tx)
                .await
            }
            None => {
                sqlx::query_scalar(
                    "SELECT config::text FROM agent_configs \
                     WHERE tenant = $1 AND agent = $2 ORDER BY version DESC LIMIT 1",
                )
                .bind(tenant.as_str())
                .bind(agent.as_str())
                .fetch_optional(&mut *tx)
                .await
            }
        }
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        text.map(|t| from_json::<AgentConfig>(&t, "a stored agent config"))
            .transpose()
    }

    async fn list_agent_config_versions(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
    ) -> Result<Vec<u32>> {
        const OP: &str = "list_agent_config_versions";
        let mut tx = self.begin(OP, tenant).await?;
        let versions: Vec<i64> = sqlx::query_scalar(
            "SELECT version FROM agent_configs WHERE tenant = $1 AND agent = $2 ORDER BY version",
        )
        .bind(tenant.as_str())
        .bind(agent.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        versions
            .into_iter()
            .map(|v| to_u32(v, "agent config version"))
            .collect()
    }
}
