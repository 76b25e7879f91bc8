//! The policy gate contract and the core allow-list evaluator.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::scope::Scope;
use crate::tool::{SideEffect, ToolHints};

/// How urgent a human decision is.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Can wait.
    Low,
    /// Normal.
    #[default]
    Medium,
    /// Soon.
    High,
    /// Now.
    Critical,
}

/// The policy's verdict on one action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused; the model is told the reason.
    Deny {
        /// Why.
        reason: String,
    },
    /// A human must approve these exact arguments first.
    RequireApproval {
        /// Why.
        reason: String,
        /// How urgent.
        #[serde(default)]
        priority: Priority,
    },
}

impl Decision {
    /// A denial.
    pub fn deny(reason: impl Into<String>) -> Self {
        Decision::Deny {
            reason: reason.into(),
        }
    }

    /// An approval requirement with medium priority.
    pub fn require_approval(reason: impl Into<String>) -> Self {
        Decision::RequireApproval {
            reason: reason.into(),
            priority: Priority::Medium,
        }
    }

    /// `"allow"`, `"deny"` or `"require_approval"`.
    pub fn label(&self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny { .. } => "deny",
            Decision::RequireApproval { .. } => "require_approval",
        }
    }

    /// The reason, if any.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Decision::Allow => None,
            Decision::Deny { reason } | Decision::RequireApproval { reason, .. } => Some(reason),
        }
    }
}

/// What the agent asks the policy about.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PolicyRequest {
    /// The tenant the agent acts for, the acting agent, the session and the run.
    pub scope: Scope,
    /// `resource:action` or a tool name (`crm.create_lead`).
    pub action: String,
    /// The (schema-valid) arguments.
    pub arguments: Value,
    /// The side-effect class of the tool.
    pub side_effect: SideEffect,
    /// What the tool's provider claims about it (MCP annotations), when it said anything.
    /// Untrusted: a policy may tighten on a claim (approve destructive tools), never grant.
    pub hints: Option<ToolHints>,
    /// The model's confidence, when the host or model supplied one.
    pub confidence: Option<f64>,
    /// Counters the engine may need.
    pub counters: CallCounters,
    /// The call's idempotency key, when the request comes from the executor: it identifies
    /// this one call between `evaluate` and `record_outcome` (two identical calls in one turn
    /// have different keys).
    pub idempotency_key: Option<crate::id::IdempotencyKey>,
    /// Set when a human already approved these exact arguments (resume after approval).
    pub approved_by_human: bool,
    /// Set when these exact arguments were approved automatically (an approval request that
    /// expired with `on_expiry = approve`), not by a person. A policy that still answers
    /// `RequireApproval` for such a call requires a human: the call does not run.
    pub approved_automatically: bool,
}

impl PolicyRequest {
    /// A request for `action` with `arguments`.
    pub fn new(scope: Scope, action: impl Into<String>, arguments: Value) -> Self {
        Self {
            scope,
            action: action.into(),
            arguments,
            side_effect: SideEffect::Read,
            hints: None,
            confidence: None,
            counters: CallCounters::default(),
            idempotency_key: None,
            approved_by_human: false,
            approved_automatically: false,
        }
    }
}

/// Per-run counts that policies use for limits and repeated-call detection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounters {
    /// Tool calls proposed in this model turn so far (including this one).
    pub calls_this_turn: u32,
    /// Tool calls proposed in this run so far (including this one).
    pub calls_this_run: u32,
    /// Earlier calls in this run with the same tool and identical arguments.
    pub identical_calls_this_run: u32,
}

/// What happened after an allowed action, so budget reservations can be committed or released.
///
/// Only [`ActionOutcome::NotRun`] releases: a failure may have happened after the effect (a
/// timeout, an output that does not match its schema), so what was reserved stays spent.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ActionOutcome {
    /// The tool ran and succeeded.
    Succeeded,
    /// The tool ran and failed, possibly after acting: reservations are kept.
    Failed,
    /// The tool is known not to have acted (a replay of a recorded result, a call in doubt, a
    /// refusal after the decision, a cancellation before the call, or the tool's own
    /// [`crate::Error::NotExecuted`]): engines release what they reserved.
    NotRun,
}

/// The deterministic gate between what the model proposes and what happens.
#[async_trait]
pub trait PolicyEvaluator: Send + Sync {
    /// Decides one action. An `Err` is treated as a denial by the agent.
    async fn evaluate(&self, request: &PolicyRequest) -> Result<Decision>;

    /// Called after an allowed action ran. Engines that reserve budget commit or release here.
    async fn record_outcome(
        &self,
        _request: &PolicyRequest,
        _outcome: &ActionOutcome,
    ) -> Result<()> {
        Ok(())
    }
}

/// Matches a name against a pattern: exact, `*` (everything), or a trailing-`*` prefix (`crm.*`,
/// `crm.delete_*`).
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The core evaluator: an allow-list of action patterns, and a list of patterns that need a
/// human's approval. Everything else is denied.
///
/// ```
/// use agentkit_core::policy::AllowListPolicy;
/// let policy = AllowListPolicy::new(["crm.*"]).require_approval_for(["crm.delete_*"]);
/// # let _ = policy;
/// ```
#[derive(Debug, Clone, Default)]
pub struct AllowListPolicy {
    allow: Vec<String>,
    approval: Vec<String>,
    automatic: Vec<String>,
}

impl AllowListPolicy {
    /// Allows actions matching any of `patterns`.
    pub fn new(patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            allow: patterns.into_iter().map(Into::into).collect(),
            approval: Vec::new(),
            automatic: Vec::new(),
        }
    }

    /// Allows everything (every tool the agent has is still the only thing it can call).
    pub fn allow_all() -> Self {
        Self::new(["*"])
    }

    /// Actions matching these patterns need a human's approval (they must also be allowed).
    pub fn require_approval_for(
        mut self,
        patterns: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.approval.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// For actions matching these patterns an automatic approval (expiry with
    /// `on_expiry = approve`) is enough; every other approval requirement needs a human.
    pub fn accept_automatic_approval_for(
        mut self,
        patterns: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.automatic.extend(patterns.into_iter().map(Into::into));
        self
    }

    /// As an `Arc<dyn PolicyEvaluator>`.
    pub fn into_arc(self) -> Arc<dyn PolicyEvaluator> {
        Arc::new(self)
    }
}

#[async_trait]
impl PolicyEvaluator for AllowListPolicy {
    async fn evaluate(&self, request: &PolicyRequest) -> Result<Decision> {
        let action = request.action.as_str();
        if !self.allow.iter().any(|p| pattern_matches(p, action)) {
            return Ok(Decision::deny(format!(
                "`{action}` is not on the allow-list"
            )));
        }
        let approved = request.approved_by_human
            || (request.approved_automatically
                && self.automatic.iter().any(|p| pattern_matches(p, action)));
        if !approved && let Some(p) = self.approval.iter().find(|p| pattern_matches(p, action)) {
            return Ok(Decision::require_approval(format!(
                "`{action}` needs approval (rule `{p}`)"
            )));
        }
        Ok(Decision::Allow)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn req(action: &str) -> PolicyRequest {
        PolicyRequest::new(crate::scope::test_scope(), action, json!({}))
    }

    #[tokio::test]
    async fn allow_list_decision_table() {
        let p: Arc<dyn PolicyEvaluator> = AllowListPolicy::new(["crm.*", "billing.read"])
            .require_approval_for(["crm.delete_*"])
            .into_arc();
        assert_eq!(
            p.evaluate(&req("crm.lookup")).await.unwrap(),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&req("billing.read")).await.unwrap(),
            Decision::Allow
        );
        assert_eq!(
            p.evaluate(&req("billing.pay")).await.unwrap().label(),
            "deny"
        );
        assert_eq!(
            p.evaluate(&req("crm.delete_lead")).await.unwrap().label(),
            "require_approval"
        );
        let mut approved = req("crm.delete_lead");
        approved.approved_by_human = true;
        assert_eq!(p.evaluate(&approved).await.unwrap(), Decision::Allow);
    }
}
