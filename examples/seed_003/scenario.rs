//! Seed 003, the AstralisOps orchestration agent, on agentkit.
//!
//! Every input — an email, a signed form or booking webhook, a database change, a worker-queue
//! event, an API request — is normalised by `agentkit_workflow::intake` into one `Intake`
//! with a delivery id. The orchestrator then:
//!
//! 1. asks the **decision agent** (`astralis-decider`: the LLM, an output schema that is the
//!    seed's response format `{intent, confidence, reasoning, actions[{type, params}],
//!    requiresApproval}`, invalid answers corrected and retried by agentkit);
//! 2. when the model is **down**, the decision agent's fallback chain (a circuit breaker around
//!    the LLM, then `RuleBasedModel`) answers with the seed's "existing keyword matching";
//! 3. when the model is **unsure** (confidence below the approval threshold), the keyword rules
//!    are asked for a second opinion (`astralis-rules`). A rule that matches replaces the
//!    decision, but its confidence is capped at the approval threshold: keywords that disagree
//!    with an unsure model earn a human's review, never an automatic action. When no rule
//!    matches, the model's own low-confidence decision stands, and the policy rejects it.
//!    (Why not simply reject? The old keyword routing handled these inputs for years; an
//!    unsure model is exactly where its answer is worth a reviewer's minute. Why not execute
//!    the rules' answer? The model saw something that made it unsure.) A decision that sets
//!    `requiresApproval` is capped the same way;
//! 4. appends the decision to the **decision log** (the seed's `AgentDecision`): one
//!    `orchestration.decision` entry in agentkit's hash-chained audit trail with the input,
//!    the decision, who decided and the confidence given to the policy; the status
//!    (PENDING / EXECUTED / FAILED / REJECTED / REQUIRES_APPROVAL) is derived from the action
//!    run, its approvals and its tool results, so there is no table of its own to keep in step;
//! 5. runs the decision's actions in the **action agent** (`astralis-actions`) as governed tool
//!    calls — `pipeline.assign`, `calendar.create_event`, `notify.send`,
//!    `automation.trigger` — with the decision's confidence passed to the policy
//!    (`RunRequest::with_confidence`). The policy's confidence constraint routes each call:
//!    at or above `AGENT_AUTO_EXECUTE_THRESHOLD` (0.85) it runs, at or above
//!    `AGENT_REQUIRE_APPROVAL_THRESHOLD` (0.5) it waits for a person, below it is denied and
//!    nothing runs. The same policy applies the rate limits.
//!
//! Redelivery: run ids and tool idempotency keys derive from `Intake::key()`, so a delivery
//! processed twice (a retried webhook, a queue redelivering) finds its decision and does
//! nothing new; two concurrent deliveries race on the run id, and exactly one wins.
//!
//! Approvals: the example host's reviewer page decides a request through `ApprovalQueue::decide`
//! and resumes its run with `Agent::resume_approval` (`decide_and_resume` in
//! `crates/agentkit-example-host/src/api/approvals.rs`); `Orchestrator::review` makes exactly
//! those two calls, and `Orchestrator::review_decision` (the seed's
//! `POST /api/agent/decisions/:id/approve|reject`) makes them for each pending request of one
//! decision.
//!
//! Where the seed's design is superseded by agentkit's:
//! - **EventBus + input handlers** → the intake normalisers (typed errors, HMAC-verified
//!   webhooks, a delivery id per input); the host's queue (BullMQ) stays the transport, and
//!   because processing is idempotent per delivery, at-least-once delivery is safe.
//! - **DecisionEngine thresholds and "Approval Workflow" option C (per decision type)** → the
//!   policy document: each action's permission carries its own confidence constraint, so
//!   thresholds per action type are configuration, and every routing is audited
//!   (`policy.decision`).
//! - **ActionExecutor** → governed tools: allow-list, argument schemas, policy, approvals bound
//!   to the exact arguments, idempotency claims, audit. The capability flags
//!   (`canAssignPipelines`...) are permissions in the same document.
//! - **AgentDecision table** → the audit trail plus the runs' own records (above).
//! - **LLM fallback strategy B + C** → the fallback chain (B); the host's queue retries a
//!   delivery (C), which is harmless because a redelivery does nothing new.
//! - **Rate limits** (`maxActionsPerMinute` / `maxActionsPerHour`) → the policy: the tenant's
//!   actions per minute and per hour across every action (tier quotas; one orchestration agent
//!   per organisation, as in the seed).
//!
//! Used by `examples/seed_003/main.rs` and `tests/seed_003.rs`.
#![allow(dead_code)]

#[path = "actions.rs"]
pub mod actions;
#[path = "decision.rs"]
pub mod decision;
#[path = "log.rs"]
pub mod log;
#[path = "orchestrator.rs"]
pub mod orchestrator;

use agentkit::error::{Error, Result};
use serde_json::{Value, json};

// Each binary (the example, the test) uses some of these.
#[allow(unused_imports)]
pub use actions::{Effect, Ops};
#[allow(unused_imports)]
pub use decision::{Action, Decision, keyword_rules};
#[allow(unused_imports)]
pub use log::{ActionOutcome, DecidedBy, DecisionRecord, DecisionStatus};
#[allow(unused_imports)]
pub use orchestrator::{Orchestrator, Processed, Setup};

/// The organisation's agent configuration (the seed's `OrchestrationAgent` / `AgentConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The organisation's name (in the system prompt).
    pub org: String,
    /// The model name requested from the provider.
    pub model: String,
    /// At or above: actions run automatically.
    pub auto_execute_threshold: f64,
    /// At or above (and below the other): actions wait for a person. Below: rejected.
    pub require_approval_threshold: f64,
    /// Actions per minute, all action types together.
    pub max_actions_per_minute: u32,
    /// Actions per hour, per action type.
    pub max_actions_per_hour: u32,
    /// May assign pipelines.
    pub can_assign_pipelines: bool,
    /// May create calendar events.
    pub can_create_events: bool,
    /// May send notifications.
    pub can_send_notifications: bool,
    /// May trigger automations.
    pub can_trigger_automations: bool,
}

impl Default for Config {
    /// The seed's defaults.
    fn default() -> Self {
        Self {
            org: "Northwind Studio".into(),
            model: "claude-sonnet-4-20250514".into(),
            auto_execute_threshold: 0.85,
            require_approval_threshold: 0.5,
            max_actions_per_minute: 60,
            max_actions_per_hour: 500,
            can_assign_pipelines: true,
            can_create_events: true,
            can_send_notifications: true,
            can_trigger_automations: true,
        }
    }
}

impl Config {
    /// The defaults, with `AGENT_AUTO_EXECUTE_THRESHOLD` and `AGENT_REQUIRE_APPROVAL_THRESHOLD`
    /// from the environment when set.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`Config::from_env`] over any lookup (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut c = Self::default();
        let read = |name: &str, into: &mut f64| -> Result<()> {
            if let Some(v) = get(name).filter(|v| !v.trim().is_empty()) {
                *into = v
                    .trim()
                    .parse()
                    .map_err(|_| Error::InvalidConfig(format!("{name}: `{v}` is not a number")))?;
            }
            Ok(())
        };
        read(
            "AGENT_AUTO_EXECUTE_THRESHOLD",
            &mut c.auto_execute_threshold,
        )?;
        read(
            "AGENT_REQUIRE_APPROVAL_THRESHOLD",
            &mut c.require_approval_threshold,
        )?;
        c.validate()?;
        Ok(c)
    }

    /// `0 <= approval <= auto-execute <= 1`, limits at least 1.
    pub fn validate(&self) -> Result<()> {
        let (a, e) = (self.require_approval_threshold, self.auto_execute_threshold);
        if !(0.0..=1.0).contains(&a) || !(0.0..=1.0).contains(&e) || a > e {
            return Err(Error::InvalidConfig(format!(
                "thresholds: need 0 <= AGENT_REQUIRE_APPROVAL_THRESHOLD ({a}) <= \
                 AGENT_AUTO_EXECUTE_THRESHOLD ({e}) <= 1"
            )));
        }
        if self.max_actions_per_minute == 0 || self.max_actions_per_hour == 0 {
            return Err(Error::InvalidConfig(
                "maxActionsPerMinute and maxActionsPerHour must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// The policy document for `tenant`: one permission per enabled action, each with the
    /// confidence thresholds; the per-minute and per-hour limits across all actions as the
    /// tenant's plan quotas.
    pub fn policy(&self, tenant: &str) -> Value {
        let constraints = json!([
            {"type": "confidence", "execute_at": self.auto_execute_threshold,
             "approve_at": self.require_approval_threshold, "missing": "require_approval"}
        ]);
        let enabled = [
            ("pipeline.assign", self.can_assign_pipelines),
            ("calendar.create_event", self.can_create_events),
            ("notify.send", self.can_send_notifications),
            ("automation.trigger", self.can_trigger_automations),
        ];
        let permissions: Vec<Value> = enabled
            .iter()
            .filter(|(_, on)| *on)
            .map(|(action, _)| json!({"action": action, "constraints": constraints}))
            .collect();
        json!({
            "tenants": {tenant: {"tier": "professional"}},
            "tiers": {"professional": {"actions_per_minute": self.max_actions_per_minute,
                                       "actions_per_hour": self.max_actions_per_hour}},
            "roles": {"orchestrator": {"permissions": permissions}},
            "agents": {orchestrator::ACTOR: {"roles": ["orchestrator"]}}
        })
    }
}
