//! The human-in-the-loop queue: priority and deadline ordering, assignment to available
//! reviewers, SLA breach detection, escalation after configured delays, and expiry with a
//! configured default outcome.
//!
//! Routing is *derived*, not stored: a request's effective priority, due time, escalation level
//! and assignee follow deterministically from when it was created, its priority and this
//! configuration, so every process computes the same queue and nothing needs rewriting as time
//! passes. The only state change is the decision itself — including expiry, which goes through
//! the store's exactly-once [`ApprovalStore::decide_approval`](agentkit_core::store::ApprovalStore::decide_approval), so an expiry racing a reviewer
//! has exactly one winner.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentkit_core::agent::decide_approval;
use agentkit_core::error::{Error, ErrorKind, Result};
use agentkit_core::id::{ApprovalId, TenantId};
use agentkit_core::policy::Priority;
use agentkit_core::store::{ApprovalDecision, ApprovalRequest, ApprovalStatus, StateStore};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Clock;

/// How long each priority may wait (used when a request has no explicit deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sla {
    /// Critical.
    #[serde(with = "secs")]
    pub critical: Duration,
    /// High.
    #[serde(with = "secs")]
    pub high: Duration,
    /// Medium.
    #[serde(with = "secs")]
    pub medium: Duration,
    /// Low.
    #[serde(with = "secs")]
    pub low: Duration,
}

impl Default for Sla {
    /// 15 minutes, 1 hour, 4 hours, 24 hours.
    fn default() -> Self {
        Self {
            critical: Duration::from_secs(15 * 60),
            high: Duration::from_secs(3600),
            medium: Duration::from_secs(4 * 3600),
            low: Duration::from_secs(24 * 3600),
        }
    }
}

impl Sla {
    fn for_priority(&self, p: Priority) -> Duration {
        match p {
            Priority::Critical => self.critical,
            Priority::High => self.high,
            Priority::Medium => self.medium,
            Priority::Low => self.low,
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        super::bounded(u64::deserialize(d)?)
    }
}

/// Longest duration a queue setting accepts: 100 years (the deserializer's error names the
/// setting's path, e.g. `sla.low`).
pub const MAX_QUEUE_SECS: u64 = 100 * 366 * 24 * 3600;

fn bounded<E: serde::de::Error>(secs: u64) -> Result<Duration, E> {
    if secs > MAX_QUEUE_SECS {
        return Err(E::custom(format!(
            "{secs} seconds is longer than the 100-year maximum ({MAX_QUEUE_SECS} s)"
        )));
    }
    Ok(Duration::from_secs(secs))
}

/// One escalation step, applied once a request has waited `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    /// Waiting time that triggers it.
    #[serde(with = "secs")]
    pub after: Duration,
    /// Raise the priority to at least this.
    #[serde(default)]
    pub raise_to: Option<Priority>,
    /// Route to reviewers with this role.
    #[serde(default)]
    pub assign_role: Option<String>,
}

/// What an expired request becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpiryOutcome {
    /// Status `expired`: the agent tells the model nobody decided.
    #[default]
    Expire,
    /// Rejected by the system.
    Reject,
    /// Approved by the system (only for low-risk actions). Recorded as automatic
    /// (`decided_automatically`): it never counts as a human's approval, so the call runs only
    /// where the policy accepts an automatic approval (for example
    /// `AllowListPolicy::accept_automatic_approval_for`); elsewhere the model is told a person
    /// must approve.
    Approve,
}

/// Queue configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueConfig {
    /// Deadlines by priority.
    #[serde(default)]
    pub sla: Sla,
    /// Escalation steps (applied in order of `after`).
    #[serde(default)]
    pub escalations: Vec<Escalation>,
    /// Requests still pending this long after creation expire.
    #[serde(default, with = "opt_secs")]
    pub expire_after: Option<Duration>,
    /// What expiry decides.
    #[serde(default)]
    pub on_expiry: ExpiryOutcome,
}

mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(d)?
            .map(super::bounded)
            .transpose()
    }
}

/// A person who decides approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reviewer {
    /// Id (what goes into `ApprovalRequest::reviewer`).
    pub id: String,
    /// Roles (`manager`, `finance`...).
    #[serde(default)]
    pub roles: Vec<String>,
    /// Whether they take new work now.
    #[serde(default = "yes")]
    pub available: bool,
    /// Most requests assigned at once.
    #[serde(default = "five")]
    pub max_load: usize,
}

fn yes() -> bool {
    true
}

fn five() -> usize {
    5
}

/// A pending request as the queue sees it now.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    /// The stored request.
    pub request: ApprovalRequest,
    /// Priority after escalation.
    pub priority: Priority,
    /// When it must be decided.
    pub due: DateTime<Utc>,
    /// Whether `due` has passed.
    pub breached: bool,
    /// How many escalation steps apply.
    pub escalation_level: usize,
    /// The role it is routed to, if an escalation set one.
    pub required_role: Option<String>,
    /// The reviewer it is assigned to (an explicit assignee on the request wins).
    pub assignee: Option<String>,
}

/// The approval queue over a store.
#[derive(Clone)]
pub struct ApprovalQueue {
    store: Arc<dyn StateStore>,
    config: Arc<QueueConfig>,
    reviewers: Arc<Mutex<Vec<Reviewer>>>,
    clock: Clock,
}

impl std::fmt::Debug for ApprovalQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalQueue")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl ApprovalQueue {
    /// A queue over `store` with `config` and a reviewer pool.
    pub fn new(
        store: Arc<dyn StateStore>,
        mut config: QueueConfig,
        reviewers: Vec<Reviewer>,
    ) -> Self {
        config.escalations.sort_by_key(|e| e.after);
        Self {
            store,
            config: Arc::new(config),
            reviewers: Arc::new(Mutex::new(reviewers)),
            clock: Arc::new(Utc::now),
        }
    }

    /// Uses another clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// A clock that follows Tokio's (pausable) time from now on: for tests with paused time.
    pub fn tokio_clock() -> Clock {
        let base = Utc::now();
        let start = tokio::time::Instant::now();
        Arc::new(move || {
            base + chrono::Duration::from_std(start.elapsed()).unwrap_or(chrono::Duration::zero())
        })
    }

    /// Marks a reviewer available or not.
    pub fn set_available(&self, reviewer: &str, available: bool) -> Result<()> {
        let mut pool = self
            .reviewers
            .lock()
            .map_err(|_| Error::Internal("reviewer pool lock poisoned".into()))?;
        let r = pool
            .iter_mut()
            .find(|r| r.id == reviewer)
            .ok_or_else(|| Error::NotFound(format!("reviewer `{reviewer}`")))?;
        r.available = available;
        Ok(())
    }

    fn item(&self, request: ApprovalRequest, now: DateTime<Utc>) -> QueueItem {
        let waited = (now - request.created_at)
            .to_std()
            .unwrap_or(Duration::ZERO);
        let mut priority = request.priority;
        let mut required_role = None;
        let mut level = 0;
        for step in self.config.escalations.iter().filter(|s| waited >= s.after) {
            level += 1;
            if let Some(p) = step.raise_to {
                priority = priority.max(p);
            }
            if let Some(role) = &step.assign_role {
                required_role = Some(role.clone());
            }
        }
        let due = request.deadline.unwrap_or_else(|| {
            chrono::Duration::from_std(self.config.sla.for_priority(request.priority))
                .ok()
                .and_then(|sla| request.created_at.checked_add_signed(sla))
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC)
        });
        QueueItem {
            assignee: request.assignee.clone(),
            breached: now > due,
            request,
            priority,
            due,
            escalation_level: level,
            required_role,
        }
    }

    /// Pending requests of a tenant as routed now: highest effective priority first, then
    /// earliest due, then oldest; each assigned to the least-loaded available reviewer holding
    /// the required role (an explicit assignee on the request is kept).
    pub async fn pending(&self, tenant: &TenantId) -> Result<Vec<QueueItem>> {
        let now = (self.clock)();
        let mut items: Vec<QueueItem> = self
            .store
            .list_pending_approvals(tenant)
            .await?
            .into_iter()
            .map(|r| self.item(r, now))
            .collect();
        items.sort_by(|a, b| {
            b.priority
                .cmp(&a.priority)
                .then(a.due.cmp(&b.due))
                .then(a.request.created_at.cmp(&b.request.created_at))
                .then(a.request.id.cmp(&b.request.id))
        });
        let pool = self
            .reviewers
            .lock()
            .map_err(|_| Error::Internal("reviewer pool lock poisoned".into()))?
            .clone();
        let mut load: Vec<usize> = pool
            .iter()
            .map(|r| {
                items
                    .iter()
                    .filter(|i| i.assignee.as_deref() == Some(r.id.as_str()))
                    .count()
            })
            .collect();
        for item in items.iter_mut().filter(|i| i.assignee.is_none()) {
            let candidate = pool
                .iter()
                .enumerate()
                .filter(|(i, r)| {
                    r.available
                        && load[*i] < r.max_load
                        && item
                            .required_role
                            .as_ref()
                            .is_none_or(|role| r.roles.contains(role))
                })
                .min_by_key(|(i, r)| (load[*i], r.id.clone()))
                .map(|(i, _)| i);
            if let Some(i) = candidate {
                load[i] += 1;
                item.assignee = Some(pool[i].id.clone());
            }
        }
        Ok(items)
    }

    /// The pending requests assigned to one reviewer, in queue order.
    pub async fn for_reviewer(&self, tenant: &TenantId, reviewer: &str) -> Result<Vec<QueueItem>> {
        Ok(self
            .pending(tenant)
            .await?
            .into_iter()
            .filter(|i| i.assignee.as_deref() == Some(reviewer))
            .collect())
    }

    /// Pending requests past their due time.
    pub async fn breached(&self, tenant: &TenantId) -> Result<Vec<QueueItem>> {
        Ok(self
            .pending(tenant)
            .await?
            .into_iter()
            .filter(|i| i.breached)
            .collect())
    }

    /// Decides a request (exactly once; audited). A reviewer must be in the pool and, when the
    /// request was escalated to a role, hold it.
    pub async fn decide(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
        decision: &ApprovalDecision,
    ) -> Result<ApprovalRequest> {
        let item = self
            .pending(tenant)
            .await?
            .into_iter()
            .find(|i| &i.request.id == id);
        if let Some(item) = item {
            let pool = self
                .reviewers
                .lock()
                .map_err(|_| Error::Internal("reviewer pool lock poisoned".into()))?
                .clone();
            let reviewer = pool
                .iter()
                .find(|r| r.id == decision.reviewer)
                .ok_or_else(|| {
                    Error::PermissionDenied(format!("`{}` is not a reviewer", decision.reviewer))
                })?;
            if let Some(role) = &item.required_role
                && !reviewer.roles.contains(role)
            {
                return Err(Error::PermissionDenied(format!(
                    "request {id} was escalated to role `{role}`, which `{}` does not hold",
                    decision.reviewer
                )));
            }
        }
        decide_approval(&*self.store, tenant, id, decision).await
    }

    /// Applies expiry to every pending request older than `expire_after`, with the configured
    /// outcome; returns the requests this call decided (a request decided concurrently by a
    /// reviewer is skipped: exactly one decision wins).
    pub async fn expire_overdue(&self, tenant: &TenantId) -> Result<Vec<ApprovalRequest>> {
        let Some(limit) = self.config.expire_after else {
            return Ok(Vec::new());
        };
        let now = (self.clock)();
        let mut expired = Vec::new();
        for r in self.store.list_pending_approvals(tenant).await? {
            let waited = (now - r.created_at).to_std().unwrap_or(Duration::ZERO);
            if waited < limit {
                continue;
            }
            let decision = ApprovalDecision::automatic(
                match self.config.on_expiry {
                    ExpiryOutcome::Expire => ApprovalStatus::Expired,
                    ExpiryOutcome::Reject => ApprovalStatus::Rejected,
                    ExpiryOutcome::Approve => ApprovalStatus::Approved,
                },
                "expiry",
                format!("no decision within {}s", limit.as_secs()),
            );
            match decide_approval(&*self.store, tenant, &r.id, &decision).await {
                Ok(d) => expired.push(d),
                Err(e) if e.kind() == ErrorKind::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        Ok(expired)
    }

    /// Runs expiry for `tenants` every `every` until the task is dropped (spawn it).
    pub async fn run_expiry(&self, tenants: Vec<TenantId>, every: Duration) -> Result<()> {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            for t in &tenants {
                let done = self.expire_overdue(t).await?;
                if !done.is_empty() {
                    tracing::info!(tenant = %t, expired = done.len(), "approval requests expired");
                }
            }
        }
    }
}
