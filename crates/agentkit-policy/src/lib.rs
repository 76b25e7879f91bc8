//! # agentkit-policy
//!
//! The governance layer of agentkit: a deterministic policy engine that decides after the model
//! reasons and before anything happens.
//!
//! - **Principals**: agents hold roles; roles inherit roles; permissions are action patterns
//!   (`crm.create_lead`, `campaigns:*`, `*`) with constraints.
//! - **Constraints**: tenant scope, spend budgets per calendar day/month in the tenant's
//!   timezone (reserved atomically through the store's counters, released if the action fails),
//!   rate limits per agent or tenant, time windows, argument predicates (`/budget <= 50`), calls
//!   per turn, repeated-call detection, confidence thresholds, explicit approval.
//! - **Combination**: Deny > RequireApproval > Allow; no matching permission is a deny; an
//!   evaluation error is a deny (the agent treats `Err` as deny).
//! - **Modes**: enforce, or log-only (records what it would have decided, allows).
//! - **Explain**: [`PolicyEngine::explain`] returns the decision with every rule that produced it;
//!   with [`PolicyEngine::with_audit`] every decision is recorded.
//! - **Indexed**: permissions are indexed by agent and action, so a decision costs O(length of
//!   the action name), not O(number of rules).
//!
//! Beside the engine: [`metering`] (versioned prices, the `Meter` that puts usage spend on the
//! budget counters, recomputable invoice drafts), [`approvals`] (the human-in-the-loop queue:
//! SLA, escalation, expiry), [`audit`] (chain verification, JSON Lines export).
//!
//! ## Features
//!
//! | feature | what it adds |
//! |---|---|
//! | `cedar` | `cedar::CedarEvaluator`: a `PolicyEvaluator` over Cedar policies (`cedar-policy`) |
//!
//! ```
//! # async fn demo() -> agentkit_core::Result<()> {
//! use std::sync::Arc;
//! use agentkit_core::id::{AgentId, RunId, SessionId, TenantId};
//! use agentkit_core::policy::{PolicyEvaluator, PolicyRequest};
//! use agentkit_core::scope::Scope;
//! use agentkit_core::store::InMemoryStore;
//! use agentkit_policy::PolicyEngine;
//! use serde_json::json;
//!
//! let store = Arc::new(InMemoryStore::new());
//! let engine = PolicyEngine::from_toml(r#"
//!     [roles.marketer]
//!     permissions = [
//!       { action = "budget.get_balance" },
//!       { action = "marketing.create_campaign", constraints = [
//!           { type = "argument", pointer = "/budget", op = "le", value = 50 },
//!           { type = "budget", period = "day", limit_usd = 50.0, cost = { argument = "/budget" } },
//!       ] },
//!     ]
//!     [agents.marketing]
//!     roles = ["marketer"]
//! "#, store)?;
//! let scope = Scope::new(
//!     TenantId::new("acme")?, AgentId::new("marketing")?, SessionId::new("s")?, RunId::generate(),
//! );
//! let request = PolicyRequest::new(scope, "marketing.create_campaign",
//!     json!({"name": "Spicy Chips", "budget": 80}));
//! assert_eq!(engine.evaluate(&request).await?.label(), "deny");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

pub mod approvals;
pub mod audit;
#[cfg(feature = "cedar")]
pub mod cedar;
pub mod config;
mod engine;
pub mod metering;
mod spend;

pub use config::Period;
pub use config::PolicyDocument;
pub use engine::{Clock, Explanation, PolicyEngine, Trace};
pub use metering::{InvoiceDraft, Meter, PriceBook, PriceTable};
pub use spend::SpendOf;

use agentkit_core::error::{Error, Result};

/// Parses a JSON policy; errors carry the path of the bad field.
pub fn parse_json(text: &str) -> Result<PolicyDocument> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de)
        .map_err(|e| Error::InvalidConfig(format!("policy: {}: {}", e.path(), e.inner())))
}

/// Parses a TOML policy; errors carry the path of the bad field.
pub fn parse_toml(text: &str) -> Result<PolicyDocument> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| Error::InvalidConfig(format!("policy: {e}")))?;
    serde_path_to_error::deserialize(de)
        .map_err(|e| Error::InvalidConfig(format!("policy: {}: {}", e.path(), e.inner())))
}
