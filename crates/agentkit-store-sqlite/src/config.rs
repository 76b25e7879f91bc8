//! [`AgentConfigStore`]: versioned agent configurations.
//!
//! One row per `(tenant, agent, version)`; the whole [`AgentConfig`] is JSON. A put inserts or
//! replaces a draft in one statement; a final version is never replaced (a trigger freezes it
//! too).

use agentkit_core::agent::AgentConfig;
use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::store::AgentConfigStore;
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::SqliteStore;
use crate::codec::{enum_name, from_json, to_json};
use crate::error::db_err;

#[async_trait]
impl AgentConfigStore for SqliteStore {
    async fn put_agent_config(&self, tenant: &TenantId, config: &AgentConfig) -> Result<()> {
        let (tenant, config) = (tenant.clone(), config.clone());
        self.db()
            .write(move |c| put_agent_config(c, &tenant, &config))
            .await
    }

    async fn get_agent_config(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        version: Option<u32>,
    ) -> Result<Option<AgentConfig>> {
        let (tenant, agent) = (tenant.clone(), agent.clone());
        self.db()
            .read(move |c| get_agent_config(c, &tenant, &agent, version))
            .await
    }

    async fn list_agent_config_versions(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
    ) -> Result<Vec<u32>> {
        let (tenant, agent) = (tenant.clone(), agent.clone());
        self.db()
            .read(move |c| list_agent_config_versions(c, &tenant, &agent))
            .await
    }
}

// The SQL, on one connection.

fn put_agent_config(conn: &mut Connection, tenant: &TenantId, config: &AgentConfig) -> Result<()> {
    let document = to_json(config)?;
    let status = enum_name(&config.status)?;
    // One statement: insert, or replace a draft. A final row is left alone (0 rows changed).
    let changed = conn
        .prepare_cached(
            "INSERT INTO agent_configs (tenant, agent, version, status, config) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (tenant, agent, version) DO UPDATE \
             SET status = excluded.status, config = excluded.config \
             WHERE agent_configs.status <> 'final'",
        )
        .and_then(|mut st| {
            st.execute(params![
                tenant.as_str(),
                config.agent.as_str(),
                config.version,
                status,
                document
            ])
        })
        .map_err(db_err)?;
    if changed == 0 {
        return Err(Error::Conflict(format!(
            "agent {} version {} is final",
            config.agent, config.version
        )));
    }
    Ok(())
}

fn get_agent_config(
    conn: &Connection,
    tenant: &TenantId,
    agent: &AgentId,
    version: Option<u32>,
) -> Result<Option<AgentConfig>> {
    let document: Option<String> = match version {
        Some(v) => conn
            .prepare_cached(
                "SELECT config FROM agent_configs \
                 WHERE tenant = ?1 AND agent = ?2 AND version = ?3",
            )
            .and_then(|mut st| {
                st.query_row(params![tenant.as_str(), agent.as_str(), v], |r| r.get(0))
                    .optional()
            }),
        None => conn
            .prepare_cached(
                "SELECT config FROM agent_configs WHERE tenant = ?1 AND agent = ?2 \
                 ORDER BY version DESC LIMIT 1",
            )
            .and_then(|mut st| {
                st.query_row(params![tenant.as_str(), agent.as_str()], |r| r.get(0))
                    .optional()
            }),
    }
    .map_err(db_err)?;
    document
        .map(|d| from_json::<AgentConfig>(&d, "agent config"))
        .transpose()
}

fn list_agent_config_versions(
    conn: &Connection,
    tenant: &TenantId,
    agent: &AgentId,
) -> Result<Vec<u32>> {
    let mut st = conn
        .prepare_cached(
            "SELECT version FROM agent_configs WHERE tenant = ?1 AND agent = ?2 ORDER BY version",
        )
        .map_err(db_err)?;
    let versions = st
        .query_map(params![tenant.as_str(), agent.as_str()], |r| r.get(0))
        .and_then(Iterator::collect)
        .map_err(db_err)?;
    Ok(versions)
}
