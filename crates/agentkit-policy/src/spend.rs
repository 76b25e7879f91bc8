//! [`PolicyEngine::spend`]: what a tenant or an agent has spent today or this month.

use agentkit_core::Result;
use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::store::Usd;

use crate::PolicyEngine;
use crate::config::Period;

/// Whose spend [`PolicyEngine::spend`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpendOf {
    /// The whole tenant.
    Tenant,
    /// One agent of the tenant.
    Agent(AgentId),
}

impl PolicyEngine {
    /// What `of` has spent in the current calendar day or month in the tenant's timezone: the
    /// counters budget constraints reserve on and [`crate::Meter`] adds priced usage to, so it
    /// includes reservations of calls still running. A host reads it for a usage panel or
    /// before offering an expensive action, without knowing how the counters are keyed.
    ///
    /// ```
    /// # async fn demo() -> agentkit_core::Result<()> {
    /// use std::sync::Arc;
    /// use agentkit_core::id::TenantId;
    /// use agentkit_core::store::{InMemoryStore, Usd};
    /// use agentkit_policy::{Period, PolicyEngine, SpendOf};
    ///
    /// let engine = PolicyEngine::from_toml("[agents.marketing]\n", Arc::new(InMemoryStore::new()))?;
    /// let spent = engine.spend(&TenantId::new("acme")?, &SpendOf::Tenant, Period::Day).await?;
    /// assert_eq!(spent, Usd::from_nanos(0));
    /// # Ok(()) }
    /// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
    /// ```
    pub async fn spend(&self, tenant: &TenantId, of: &SpendOf, period: Period) -> Result<Usd> {
        let agent = match of {
            SpendOf::Agent(a) => a.as_str(),
            SpendOf::Tenant => "",
        };
        let [agent_day, agent_month, tenant_day, tenant_month] =
            self.budget_keys(tenant, agent, self.now());
        let key = match (of, period) {
            (SpendOf::Agent(_), Period::Day) => agent_day,
            (SpendOf::Agent(_), Period::Month) => agent_month,
            (SpendOf::Tenant, Period::Day) => tenant_day,
            (SpendOf::Tenant, Period::Month) => tenant_month,
        };
        let nanos = self.counters().counter_get(tenant, &key).await?;
        Ok(Usd::from_nanos(nanos))
    }
}
