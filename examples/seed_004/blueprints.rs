//! Agent blueprints and tenant onboarding: the catalogue of blueprints (support and triage, as
//! a host keeps them in a JSON file), each instantiated per tenant with the tenant's name in
//! its prompt and stored as a versioned, final agent config in that tenant's store.

use std::collections::HashMap;

use agentkit::agent::{AgentConfig, Blueprint};
use agentkit::id::{AgentId, TenantId};
use agentkit::store::StateStore;
use agentkit::{Error, Result};

/// The blueprint catalogue (JSON).
pub const CATALOGUE: &str = include_str!("blueprints.json");

/// The support agent's id.
pub const SUPPORT: &str = "support";
/// The triage agent's id.
pub const TRIAGE: &str = "triage";

/// A customer organisation on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenant {
    /// Tenant id (what the policy document's `[tenants.*]` names).
    pub id: &'static str,
    /// Display name (fills the blueprints' `{company}`).
    pub name: &'static str,
    /// Plan, as the policy document sets it (shown in the narrative).
    pub tier: &'static str,
}

/// Acme Corp, on the professional plan.
pub const ACME: Tenant = Tenant {
    id: "acme",
    name: "Acme Corp",
    tier: "professional",
};

/// Tiny Shop, on the free plan.
pub const TINYSHOP: Tenant = Tenant {
    id: "tinyshop",
    name: "Tiny Shop",
    tier: "free",
};

impl Tenant {
    /// The tenant id.
    pub fn tenant_id(&self) -> Result<TenantId> {
        TenantId::new(self.id)
    }
}

/// The catalogue.
pub fn catalogue() -> Result<Vec<Blueprint>> {
    serde_json::from_str(CATALOGUE)
        .map_err(|e| Error::InvalidConfig(format!("blueprints.json: {e}")))
}

/// The blueprint named `name`.
#[allow(dead_code)] // the acceptance test looks blueprints up by name
pub fn blueprint(name: &str) -> Result<Blueprint> {
    catalogue()?
        .into_iter()
        .find(|b| b.name == name)
        .ok_or_else(|| Error::NotFound(format!("blueprint `{name}`")))
}

/// The blueprint's config for `tenant`: draft version 1 with the tenant's name filled in.
pub fn instantiate(blueprint: &Blueprint, tenant: &Tenant) -> Result<AgentConfig> {
    let vars = HashMap::from([("company".to_string(), tenant.name.to_string())]);
    blueprint.instantiate(blueprint.config.agent.clone(), &vars)
}

/// Onboards `tenant`: every blueprint of the catalogue instantiated and stored as final version
/// 1 (an agent that already has a config is left as it is). Returns the configs in force.
pub async fn onboard(state: &dyn StateStore, tenant: &Tenant) -> Result<Vec<AgentConfig>> {
    let id = tenant.tenant_id()?;
    let mut configs = Vec::new();
    for blueprint in catalogue()? {
        let config = instantiate(&blueprint, tenant)?;
        match state.get_agent_config(&id, &config.agent, None).await? {
            Some(existing) => configs.push(existing),
            None => {
                let config = config.finalized();
                state.put_agent_config(&id, &config).await?;
                configs.push(config);
            }
        }
    }
    Ok(configs)
}

/// Publishes a new version of `agent`'s config for `tenant` with `edit` applied: the next
/// version after the latest, stored final. Earlier versions stay as they were.
pub async fn publish_edit(
    state: &dyn StateStore,
    tenant: &TenantId,
    agent: &AgentId,
    edit: impl FnOnce(&mut AgentConfig),
) -> Result<AgentConfig> {
    let latest = state
        .get_agent_config(tenant, agent, None)
        .await?
        .ok_or_else(|| Error::NotFound(format!("agent config `{agent}` of tenant `{tenant}`")))?;
    let mut next = latest.next_draft();
    edit(&mut next);
    let next = next.finalized();
    state.put_agent_config(tenant, &next).await?;
    Ok(next)
}
