//! Governance configuration of seed 004's support organisation: the policy document (tiers and
//! quotas, roles with inheritance, approval rules), the approval queue's SLA / escalation /
//! expiry settings, the reviewer pool, and the queue's clock (which a demo or a test moves
//! forward to let time pass).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use agentkit::policy_engine::approvals::{QueueConfig, Reviewer};
use agentkit::policy_engine::{Clock, PolicyDocument};
use agentkit::{Error, Result};

/// The policy document (TOML), as the platform team keeps it.
pub const POLICY: &str = include_str!("policy.toml");

/// The approval queue's configuration (JSON): SLA per priority, escalation steps, expiry.
pub const QUEUE: &str = include_str!("queue.json");

/// The parsed policy document (errors name the path of a bad field).
pub fn policy_document() -> Result<PolicyDocument> {
    agentkit::policy_engine::parse_toml(POLICY)
}

/// The parsed queue configuration.
pub fn queue_config() -> Result<QueueConfig> {
    serde_json::from_str(QUEUE).map_err(|e| Error::InvalidConfig(format!("queue.json: {e}")))
}

/// The support organisation's reviewers: two support agents and a team lead (the only one who
/// may decide requests escalated to `team_lead`).
pub fn reviewers() -> Vec<Reviewer> {
    let person = |id: &str, roles: &[&str]| Reviewer {
        id: id.to_string(),
        roles: roles.iter().map(|r| (*r).to_string()).collect(),
        available: true,
        max_load: 5,
    };
    vec![
        person("ann", &["support"]),
        person("bob", &["support"]),
        person("lena", &["support", "team_lead"]),
    ]
}

/// The approval queue's view of "now": the wall clock plus however far the scenario has moved
/// it forward (SLA breaches, escalations and expiry need hours to pass).
#[derive(Debug, Clone, Default)]
pub struct QueueClock {
    offset_secs: Arc<AtomicI64>,
}

impl QueueClock {
    /// A clock at the wall clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let secs = i64::try_from(by.as_secs()).unwrap_or(i64::MAX);
        self.offset_secs.fetch_add(secs, Ordering::SeqCst);
    }

    /// The clock the queue reads.
    pub fn clock(&self) -> Clock {
        let offset = self.offset_secs.clone();
        Arc::new(move || {
            chrono::Utc::now() + chrono::Duration::seconds(offset.load(Ordering::SeqCst))
        })
    }
}
