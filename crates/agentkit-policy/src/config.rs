//! The policy document: serde data (JSON or TOML; any serde format works through
//! [`PolicyDocument`]'s `Deserialize`).

use std::collections::BTreeMap;

use agentkit_core::policy::Priority;
use agentkit_core::tool::ToolHints;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Enforce decisions, or only record what would have been decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Decisions are applied.
    #[default]
    Enforce,
    /// Every action is allowed; the decision that would have been made is recorded.
    LogOnly,
}

/// A whole policy: roles, agents' grants and global rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Enforce or log-only.
    #[serde(default)]
    pub mode: Mode,
    /// IANA timezone for calendar budgets and time windows (default `UTC`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Per-tenant settings (timezone).
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantSettings>,
    /// Roles by name.
    #[serde(default)]
    pub roles: BTreeMap<String, Role>,
    /// Grants by agent id.
    #[serde(default)]
    pub agents: BTreeMap<String, AgentGrant>,
    /// Rules that apply on top of grants (deny or require approval).
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Quota overrides per tier (the four tiers have built-in defaults, see [`Tier::quotas`]).
    #[serde(default)]
    pub tiers: BTreeMap<Tier, Quotas>,
}

/// A tenant's plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Free.
    Free,
    /// Starter.
    Starter,
    /// Professional.
    Professional,
    /// Enterprise.
    Enterprise,
}

impl Tier {
    /// `"free"`, `"starter"`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            Tier::Free => "free",
            Tier::Starter => "starter",
            Tier::Professional => "professional",
            Tier::Enterprise => "enterprise",
        }
    }

    /// Built-in quotas: free 100k tokens/month, 100 tool calls/day, 10 actions/minute; starter
    /// 2M, 1,000, 60; professional 20M, 10,000, 300; enterprise unlimited.
    pub fn quotas(&self) -> Quotas {
        let q = |t, c, m| Quotas {
            tokens_per_month: Some(t),
            tool_calls_per_day: Some(c),
            actions_per_minute: Some(m),
            actions_per_hour: None,
        };
        match self {
            Tier::Free => q(100_000, 100, 10),
            Tier::Starter => q(2_000_000, 1_000, 60),
            Tier::Professional => q(20_000_000, 10_000, 300),
            Tier::Enterprise => Quotas::default(),
        }
    }
}

/// Quotas of a tier (`None`: unlimited).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    /// Model tokens per calendar month (counted by the `Meter`).
    #[serde(default)]
    pub tokens_per_month: Option<u64>,
    /// Tool calls per calendar day.
    #[serde(default)]
    pub tool_calls_per_day: Option<u32>,
    /// Actions per minute for the whole tenant.
    #[serde(default)]
    pub actions_per_minute: Option<u32>,
    /// Actions per clock hour (local time) for the whole tenant.
    #[serde(default)]
    pub actions_per_hour: Option<u32>,
}

/// Settings of one tenant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// IANA timezone: budgets reset at this tenant's calendar boundaries.
    #[serde(default)]
    pub timezone: Option<String>,
    /// The tenant's plan; its quotas apply to every action.
    #[serde(default)]
    pub tier: Option<Tier>,
    /// Limits on the tenant's total spend (model calls and tools, as priced by the `Meter`):
    /// a model call that would exceed one is refused before it is made.
    #[serde(default)]
    pub spend: SpendLimits,
}

/// Limits on total spend per calendar day and month (in the tenant's timezone), in USD. The
/// `Meter` reserves each model call's estimated cost against them before the call and settles
/// the actual cost after it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpendLimits {
    /// Per calendar day.
    #[serde(default)]
    pub day_usd: Option<f64>,
    /// Per calendar month.
    #[serde(default)]
    pub month_usd: Option<f64>,
}

/// A named set of permissions, possibly inheriting other roles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Role {
    /// Roles whose permissions this one includes.
    #[serde(default)]
    pub inherits: Vec<String>,
    /// Permissions.
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

/// What one agent may do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentGrant {
    /// Roles.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Permissions granted directly.
    #[serde(default)]
    pub permissions: Vec<Permission>,
    /// Limits on this agent's total spend (see [`SpendLimits`]).
    #[serde(default)]
    pub spend: SpendLimits,
}

/// Permission to perform actions matching `action` (exact, `*`, or a trailing-`*` prefix such as
/// `marketing.*` or `campaigns:*`), under constraints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// Action pattern: a tool name (`crm.create_lead`) or `resource:action`.
    pub action: String,
    /// All must hold.
    #[serde(default)]
    pub constraints: Vec<Constraint>,
}

/// A calendar period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// Calendar day in the tenant's timezone.
    Day,
    /// Calendar month in the tenant's timezone.
    Month,
}

/// A rate-limit window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Clock minute.
    Minute,
    /// Clock hour.
    Hour,
    /// Calendar day.
    Day,
}

/// Who a counter is shared by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One agent.
    #[default]
    Agent,
    /// The whole tenant.
    Tenant,
}

/// Where an action's cost comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum CostSource {
    /// A number in the arguments (JSON pointer), in USD.
    Argument(String),
    /// A fixed amount per call, in USD.
    FixedUsd(f64),
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// Value is one of an array.
    In,
    /// Value is none of an array.
    NotIn,
}

/// A predicate on one argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// JSON pointer into the arguments (`/budget`).
    pub pointer: String,
    /// Comparison.
    pub op: Op,
    /// Right-hand side.
    pub value: Value,
}

/// What to do when the caller gave no confidence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingConfidence {
    /// Ask a human.
    #[default]
    RequireApproval,
    /// Refuse.
    Deny,
    /// Allow.
    Allow,
}

/// A constraint on a permission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Constraint {
    /// Argument fields that name a tenant must name the caller's tenant.
    TenantScope {
        /// JSON pointers (`/tenant_id`).
        fields: Vec<String>,
    },
    /// Spend per calendar period, reserved atomically before the action runs.
    Budget {
        /// Day or month.
        period: Period,
        /// Limit in USD.
        limit_usd: f64,
        /// The action's cost.
        cost: CostSource,
        /// Shared by the agent or the tenant.
        #[serde(default)]
        scope: Scope,
    },
    /// At most `max` actions per window.
    RateLimit {
        /// Maximum.
        max: u32,
        /// Window.
        per: Window,
        /// Counted per agent or per tenant.
        #[serde(default)]
        scope: Scope,
    },
    /// Only on these days, between `start` and `end` (`HH:MM`, local time; an end before the
    /// start spans midnight).
    TimeWindow {
        /// Days (`mon`..`sun`); empty means every day.
        #[serde(default)]
        days: Vec<String>,
        /// Start, `HH:MM`.
        start: String,
        /// End, `HH:MM` (exclusive).
        end: String,
        /// Timezone (default: the tenant's).
        #[serde(default)]
        timezone: Option<String>,
    },
    /// An argument predicate that must hold (`budget <= 50`).
    Argument(Condition),
    /// At most this many tool calls in one model turn.
    MaxCallsPerTurn {
        /// Maximum.
        max: u32,
    },
    /// At most this many identical calls (same tool and arguments) in one run.
    RepeatedCalls {
        /// Maximum earlier identical calls tolerated.
        max_identical: u32,
    },
    /// Confidence thresholds: `>= execute_at` allows, `>= approve_at` needs approval, below is
    /// denied.
    Confidence {
        /// Allow at or above.
        execute_at: f64,
        /// Approval at or above (and below `execute_at`).
        approve_at: f64,
        /// When no confidence was given.
        #[serde(default)]
        missing: MissingConfidence,
    },
    /// Always needs a human.
    RequireApproval {
        /// Why.
        reason: String,
        /// Urgency.
        #[serde(default)]
        priority: Priority,
    },
}

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Refuse.
    Deny,
    /// Ask a human.
    RequireApproval,
}

/// A rule applied on top of grants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Action pattern.
    pub action: String,
    /// Agents it applies to (empty: all).
    #[serde(default)]
    pub agents: Vec<String>,
    /// Effect.
    pub effect: Effect,
    /// Why (shown to the model and reviewers).
    pub reason: String,
    /// Urgency of the approval.
    #[serde(default)]
    pub priority: Priority,
    /// Applies only when all these hold.
    #[serde(default)]
    pub when: Vec<Condition>,
    /// Applies only to tools whose provider *claims* these hints (MCP tool annotations, e.g.
    /// `{"destructive": true}`); an unsaid hint reads as its cautious MCP default, and a tool
    /// without any hints (a host's own tool) never matches. Rules only deny or require
    /// approval, so a claim can tighten what happens but never grant anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hints: Option<ToolHints>,
}
