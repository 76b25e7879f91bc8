//! The counter keys budgets, spend limits and quotas count on (shared by the engine's checks
//! and the `Meter`).

use agentkit_core::id::TenantId;
use chrono::{DateTime, Datelike, Utc};
use chrono_tz::Tz;

use super::PolicyEngine;

impl PolicyEngine {
    /// The budget counter keys an amount spent at `at` counts toward: the agent's and the
    /// tenant's day and month in the tenant's timezone (the keys budget constraints reserve on).
    pub(crate) fn budget_keys(
        &self,
        tenant: &TenantId,
        agent: &str,
        at: DateTime<Utc>,
    ) -> [String; 4] {
        let local = at.with_timezone(&self.tz(tenant));
        let day = local.date_naive().to_string();
        let month = format!("{}-{:02}", local.year(), local.month());
        [
            format!("budget:agent:{agent}:{day}"),
            format!("budget:agent:{agent}:{month}"),
            format!("budget:tenant:{day}"),
            format!("budget:tenant:{month}"),
        ]
    }

    /// The limited counters a spend at `at` by `agent` counts toward: `(key, limit in nano-USD
    /// or tokens, what the limit is)` for the agent's and tenant's spend limits and the tenant's
    /// monthly token quota (`tokens` says whether the event is a token count).
    pub(crate) fn limited_keys(
        &self,
        tenant: &TenantId,
        agent: &str,
        at: DateTime<Utc>,
    ) -> Vec<(String, i64, String)> {
        let c = &self.compiled;
        if !c.agent_spend.contains_key(agent) && !c.tenant_spend.contains_key(tenant.as_str()) {
            return Vec::new();
        }
        let [agent_day, agent_month, tenant_day, tenant_month] =
            self.budget_keys(tenant, agent, at);
        let mut out = Vec::new();
        let usd = |nanos: i64| format!("${:.2}", nanos as f64 / 1e9);
        if let Some(l) = c.agent_spend.get(agent) {
            if let Some(day) = l.day {
                out.push((
                    agent_day,
                    day,
                    format!("daily spend limit of {} for agent `{agent}`", usd(day)),
                ));
            }
            if let Some(month) = l.month {
                out.push((
                    agent_month,
                    month,
                    format!("monthly spend limit of {} for agent `{agent}`", usd(month)),
                ));
            }
        }
        if let Some(l) = c.tenant_spend.get(tenant.as_str()) {
            if let Some(day) = l.day {
                out.push((
                    tenant_day,
                    day,
                    format!("daily spend limit of {} for tenant `{tenant}`", usd(day)),
                ));
            }
            if let Some(month) = l.month {
                out.push((
                    tenant_month,
                    month,
                    format!(
                        "monthly spend limit of {} for tenant `{tenant}`",
                        usd(month)
                    ),
                ));
            }
        }
        out
    }

    /// The tenant's monthly token quota counter at `at`: `(key, limit, what the limit is)`.
    pub(crate) fn token_quota(
        &self,
        tenant: &TenantId,
        at: DateTime<Utc>,
    ) -> Option<(String, i64, String)> {
        let (tier, quotas) = self.compiled.tenant_quotas.get(tenant.as_str())?;
        let max = quotas.tokens_per_month?;
        Some((
            Self::token_quota_key(&at.with_timezone(&self.tz(tenant))),
            i64::try_from(max).unwrap_or(i64::MAX),
            format!(
                "monthly quota of {max} model tokens (tier {})",
                tier.as_str()
            ),
        ))
    }

    /// The monthly token counter key for a local time.
    pub(crate) fn token_quota_key(local: &DateTime<Tz>) -> String {
        format!("quota:tokens:{}", local.format("%Y-%m"))
    }
}
