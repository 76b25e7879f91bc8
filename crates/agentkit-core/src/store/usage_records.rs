//! Usage events, their kinds, exact money and queries (append-only ledger records).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::records::now;
use crate::id::{AgentId, RunId, SessionId, TenantId, UsageEventId};
use crate::scope::Scope;

/// What a usage event counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageKind {
    /// Prompt tokens (excluding cached ones).
    InputTokens,
    /// Completion tokens.
    OutputTokens,
    /// Prompt tokens served from cache.
    CachedInputTokens,
    /// One tool call.
    ToolCall,
    /// One knowledge-base query.
    KnowledgeQuery,
    /// Audio, in milliseconds.
    AudioMillis,
}

impl UsageKind {
    /// `"input_tokens"`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            UsageKind::InputTokens => "input_tokens",
            UsageKind::OutputTokens => "output_tokens",
            UsageKind::CachedInputTokens => "cached_input_tokens",
            UsageKind::ToolCall => "tool_call",
            UsageKind::KnowledgeQuery => "knowledge_query",
            UsageKind::AudioMillis => "audio_millis",
        }
    }
}

/// An amount of US dollars in nano-dollars (10⁻⁹ USD), exact under addition.
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Usd(pub i64);

impl Usd {
    /// Zero.
    pub const ZERO: Usd = Usd(0);

    /// From nano-dollars.
    pub fn from_nanos(n: i64) -> Self {
        Usd(n)
    }

    /// From whole micro-dollars (10⁻⁶ USD).
    pub fn from_micros(n: i64) -> Self {
        Usd(n.saturating_mul(1_000))
    }

    /// Nano-dollars.
    pub fn nanos(self) -> i64 {
        self.0
    }

    /// As a floating point number of dollars (for display only).
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

impl std::ops::Add for Usd {
    type Output = Usd;
    fn add(self, o: Usd) -> Usd {
        Usd(self.0.saturating_add(o.0))
    }
}

impl std::iter::Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, |a, b| a + b)
    }
}

impl fmt::Debug for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(
            f,
            "{sign}${}.{:09}",
            abs / 1_000_000_000,
            abs % 1_000_000_000
        )
    }
}

/// One metered quantity (append-only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// Id (unique).
    pub id: UsageEventId,
    /// Owner.
    pub tenant: TenantId,
    /// The agent.
    pub agent: AgentId,
    /// The session.
    pub session: Option<SessionId>,
    /// The run.
    pub run: Option<RunId>,
    /// What is counted.
    pub kind: UsageKind,
    /// The model or tool the quantity is for.
    pub resource: Option<String>,
    /// How many (tokens, calls, milliseconds).
    pub quantity: u64,
    /// Cost, when priced.
    pub cost: Option<Usd>,
    /// The price table version used for `cost`.
    pub price_version: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

impl UsageEvent {
    /// The token events of one model call in `scope`: input (without the cached part), output
    /// and cached input, each with the model as its resource; zero counts are left out. Every
    /// engine driving an agent meters a model call this way.
    pub fn for_model_call(scope: &Scope, usage: &crate::message::Usage, model: &str) -> Vec<Self> {
        [
            (
                UsageKind::InputTokens,
                usage.input_tokens.saturating_sub(usage.cached_input_tokens),
            ),
            (UsageKind::OutputTokens, usage.output_tokens),
            (UsageKind::CachedInputTokens, usage.cached_input_tokens),
        ]
        .into_iter()
        .filter(|(_, qty)| *qty > 0)
        .map(|(kind, qty)| {
            let mut e = Self::scoped(scope, kind, qty);
            e.resource = Some(model.to_owned());
            e
        })
        .collect()
    }

    /// An unpriced event now for `scope`'s tenant, agent, session and run.
    pub fn scoped(scope: &Scope, kind: UsageKind, quantity: u64) -> Self {
        let mut e = Self::new(scope.tenant.clone(), scope.agent.clone(), kind, quantity);
        e.session = Some(scope.session.clone());
        e.run = Some(scope.run.clone());
        e
    }

    /// An unpriced event now, not tied to a session or run (a host's own metering).
    pub fn new(tenant: TenantId, agent: AgentId, kind: UsageKind, quantity: u64) -> Self {
        Self {
            id: UsageEventId::generate(),
            tenant,
            agent,
            session: None,
            run: None,
            kind,
            resource: None,
            quantity,
            cost: None,
            price_version: None,
            at: now(),
        }
    }
}

/// Filters for [`super::UsageStore::list_usage`]; `None` means any. Time bounds are
/// `from <= at < to`.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct UsageQuery {
    /// Inclusive lower bound.
    pub from: Option<DateTime<Utc>>,
    /// Exclusive upper bound.
    pub to: Option<DateTime<Utc>>,
    /// Only this agent.
    pub agent: Option<AgentId>,
    /// Only this kind.
    pub kind: Option<UsageKind>,
    /// Only this run.
    pub run: Option<RunId>,
}

impl UsageQuery {
    /// Matches everything.
    pub fn all() -> Self {
        Self::default()
    }

    /// Restricts to `[from, to)`.
    pub fn between(mut self, from: DateTime<Utc>, to: DateTime<Utc>) -> Self {
        self.from = Some(from);
        self.to = Some(to);
        self
    }

    /// Restricts to one agent.
    pub fn agent(mut self, agent: AgentId) -> Self {
        self.agent = Some(agent);
        self
    }

    /// Restricts to one kind.
    pub fn kind(mut self, kind: UsageKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Restricts to one run.
    pub fn run(mut self, run: RunId) -> Self {
        self.run = Some(run);
        self
    }

    /// Whether an event matches (backends without query languages use this).
    pub fn matches(&self, e: &UsageEvent) -> bool {
        self.from.is_none_or(|f| e.at >= f)
            && self.to.is_none_or(|t| e.at < t)
            && self.agent.as_ref().is_none_or(|a| &e.agent == a)
            && self.kind.is_none_or(|k| e.kind == k)
            && self.run.as_ref().is_none_or(|r| e.run.as_ref() == Some(r))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn usd_display_is_exact() {
        assert_eq!(Usd::from_micros(1_500_000).to_string(), "$1.500000000");
        assert_eq!(Usd::from_nanos(150).to_string(), "$0.000000150");
        assert_eq!(Usd::from_nanos(-5).to_string(), "-$0.000000005");
    }
}

/// Counters a [`super::UsageMeter`] reserved for a model call before it was made
/// ([`super::UsageMeter::admit`]); [`super::UsageMeter::settle`] replaces them by the call's
/// actual spend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Admission {
    /// `(tenant, counter key, amount)` reserved.
    pub reserved: Vec<(TenantId, String, i64)>,
}

impl Admission {
    /// An admission holding these reservations.
    pub fn new(reserved: Vec<(TenantId, String, i64)>) -> Self {
        Self { reserved }
    }
}
