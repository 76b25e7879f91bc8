//! [`Step`]: everything one turn step writes, committed at once by [`StepStore::commit_step`].
//!
//! A turn step is what happens between two durable points of a run: the run starts (its
//! session, its record, the user's message), a model answers and its tool calls run (the
//! answer, the usage, the execution records, the audit entries, the results), or the run ends
//! (the last answer and the run's final state). Written part by part, a step is a dozen store
//! calls — a dozen transactions on SQL backends — and a crash between two of them leaves half a
//! step behind. [`StepStore::commit_step`] writes a whole step in one call and, on SQL backends,
//! one transaction: after a crash either all of it is there or none of it.

use crate::error::{Error, Result};
use crate::id::{RunId, SessionId, TenantId};
use crate::message::Message;
use crate::store::{
    ApprovalRequest, NewAuditEntry, RunRecord, SessionRecord, ToolExecution, UsageEvent,
    ensure_tenant,
};

/// What one turn step writes. Every record must belong to the tenant the step is committed for.
///
/// The parts are applied in this order inside one atomic step, each with the meaning of the
/// single-record method it replaces:
///
/// 1. [`session`](Self::session) — created when it does not exist
///    ([`SessionStore::create_session`](crate::store::SessionStore::create_session)); when it
///    exists it must belong to the same agent, else [`Error::PermissionDenied`];
/// 2. [`new_run`](Self::new_run) — inserted
///    ([`RunStore::create_run`](crate::store::RunStore::create_run));
/// 3. [`run_update`](Self::run_update) — compare-and-swap on the stored version
///    ([`RunStore::update_run`](crate::store::RunStore::update_run)); a run inserted by this
///    step has its inserted version as the stored one;
/// 4. [`messages`](Self::messages) — appended
///    ([`SessionStore::append_messages`](crate::store::SessionStore::append_messages));
/// 5. [`executions`](Self::executions) — recorded
///    ([`ToolExecutionStore::record_tool_execution`](crate::store::ToolExecutionStore::record_tool_execution));
/// 6. [`approvals`](Self::approvals) — inserted
///    ([`ApprovalStore::create_approval`](crate::store::ApprovalStore::create_approval));
/// 7. [`usage`](Self::usage) — appended
///    ([`UsageStore::append_usage`](crate::store::UsageStore::append_usage));
/// 8. [`audit`](Self::audit) — appended to the tenant's chain in order
///    ([`AuditStore::append_audit`](crate::store::AuditStore::append_audit)).
///
/// Any part that would fail makes the whole step fail with that part's error, and nothing of
/// the step is written.
///
/// ```
/// # async fn demo() -> agentkit_core::Result<()> {
/// use agentkit_core::id::RunId;
/// use agentkit_core::message::Message;
/// use agentkit_core::scope::Scope;
/// use agentkit_core::store::{InMemoryStore, RunRecord, SessionRecord, Step, StepStore};
///
/// let store = InMemoryStore::new();
/// let scope = Scope::new("acme".try_into()?, "ops".try_into()?, "s1".try_into()?, RunId::generate());
/// let step = Step {
///     session: Some(SessionRecord::new(scope.tenant.clone(), scope.session.clone(), scope.agent.clone())),
///     new_run: Some(RunRecord::new(&scope)),
///     messages: Some(agentkit_core::store::StepMessages::new(&scope, vec![Message::user("hi")])),
///     ..Step::default()
/// };
/// let receipt = store.commit_step(&scope.tenant, step).await?;
/// assert_eq!(receipt.last_seq, Some(1));
/// assert!(receipt.session_created);
/// # Ok(()) }
/// # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
/// ```
#[derive(Debug, Clone, Default)]
pub struct Step {
    /// The session, created when it does not exist yet.
    pub session: Option<SessionRecord>,
    /// A run to insert.
    pub new_run: Option<RunRecord>,
    /// The run's new state and the version it replaces (compare-and-swap). The caller sets
    /// `run.version` to the new version.
    pub run_update: Option<(RunRecord, u64)>,
    /// Messages to append to one session.
    pub messages: Option<StepMessages>,
    /// Tool execution records to insert or update.
    pub executions: Vec<ToolExecution>,
    /// Approval requests to insert.
    pub approvals: Vec<ApprovalRequest>,
    /// Usage events to append.
    pub usage: Vec<UsageEvent>,
    /// Audit entries to append, in this order.
    pub audit: Vec<NewAuditEntry>,
}

/// Messages a step appends to one session, attributed to a run.
#[derive(Debug, Clone)]
pub struct StepMessages {
    /// The session.
    pub session: SessionId,
    /// The run that appends them (see
    /// [`SessionStore::retract_messages`](crate::store::SessionStore::retract_messages)).
    pub run: Option<RunId>,
    /// The messages, in order.
    pub messages: Vec<Message>,
}

impl StepMessages {
    /// Messages of the scope's run in the scope's session.
    pub fn new(scope: &crate::scope::Scope, messages: Vec<Message>) -> Self {
        Self {
            session: scope.session.clone(),
            run: Some(scope.run.clone()),
            messages,
        }
    }
}

/// What [`StepStore::commit_step`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StepReceipt {
    /// Whether the step created its session.
    pub session_created: bool,
    /// The sequence number of the last message appended (`None` when the step appended none).
    pub last_seq: Option<u64>,
    /// The sequence number of the last audit entry appended (`None` when it appended none).
    pub last_audit_seq: Option<u64>,
}

impl StepReceipt {
    /// A receipt (for backends outside this crate).
    pub fn new(session_created: bool, last_seq: Option<u64>, last_audit_seq: Option<u64>) -> Self {
        Self {
            session_created,
            last_seq,
            last_audit_seq,
        }
    }
}

impl Step {
    /// Whether the step writes nothing.
    pub fn is_empty(&self) -> bool {
        self.session.is_none()
            && self.new_run.is_none()
            && self.run_update.is_none()
            && self.messages.as_ref().is_none_or(|m| m.messages.is_empty())
            && self.executions.is_empty()
            && self.approvals.is_empty()
            && self.usage.is_empty()
            && self.audit.is_empty()
    }

    /// Moves `other`'s records into this step (after this step's own). `other`'s session, new
    /// run and run update replace this step's when set; its messages are appended to this
    /// step's when both name the same session and run, else
    /// [`Error::InvalidInput`].
    pub fn merge(&mut self, other: Step) -> Result<()> {
        let Step {
            session,
            new_run,
            run_update,
            messages,
            executions,
            approvals,
            usage,
            audit,
        } = other;
        if session.is_some() {
            self.session = session;
        }
        if new_run.is_some() {
            self.new_run = new_run;
        }
        if run_update.is_some() {
            self.run_update = run_update;
        }
        match (&mut self.messages, messages) {
            (_, None) => {}
            (None, Some(m)) => self.messages = Some(m),
            (Some(mine), Some(m)) if mine.session == m.session && mine.run == m.run => {
                mine.messages.extend(m.messages);
            }
            (Some(_), Some(_)) => {
                return Err(Error::InvalidInput(
                    "a step appends messages to one session for one run".into(),
                ));
            }
        }
        append(&mut self.executions, executions);
        append(&mut self.approvals, approvals);
        append(&mut self.usage, usage);
        append(&mut self.audit, audit);
        Ok(())
    }

    /// Refuses (with [`Error::InvalidInput`]) a step holding a record of another tenant than
    /// `tenant`, or a run update for another run than the one it inserts. Backends call it
    /// before writing anything.
    pub fn ensure_tenant(&self, tenant: &TenantId) -> Result<()> {
        if let Some(s) = &self.session {
            ensure_tenant(tenant, &s.tenant, "the step's session")?;
        }
        if let Some(r) = &self.new_run {
            ensure_tenant(tenant, &r.tenant, "the step's new run")?;
        }
        if let Some((r, _)) = &self.run_update {
            ensure_tenant(tenant, &r.tenant, "the step's run update")?;
        }
        for e in &self.executions {
            ensure_tenant(tenant, &e.tenant, "a step's tool execution")?;
        }
        for a in &self.approvals {
            ensure_tenant(tenant, &a.tenant, "a step's approval")?;
        }
        for u in &self.usage {
            ensure_tenant(tenant, &u.tenant, "a step's usage event")?;
        }
        for a in &self.audit {
            ensure_tenant(tenant, &a.tenant, "a step's audit entry")?;
        }
        Ok(())
    }
}

/// Appends `more` to `to`, taking `more`'s allocation when `to` is empty (no copy).
pub(crate) fn append<T>(to: &mut Vec<T>, more: Vec<T>) {
    if to.is_empty() {
        *to = more;
    } else {
        to.extend(more);
    }
}

/// Commits a whole [`Step`] atomically.
#[async_trait::async_trait]
pub trait StepStore: Send + Sync {
    /// Writes every part of `step` in one atomic step (one transaction on SQL backends), in the
    /// order and with the checks described on [`Step`]. When any part fails, nothing of the step
    /// is written and that part's error is returned. Audit entries join the tenant's one chain
    /// exactly as [`AuditStore::append_audit`](crate::store::AuditStore::append_audit) would,
    /// under any concurrency.
    ///
    /// The step is taken by value: its records move into the store (no copies on the hot
    /// path).
    async fn commit_step(&self, tenant: &TenantId, step: Step) -> Result<StepReceipt>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scope::Scope;

    fn scope(session: &str) -> Scope {
        Scope::new(
            TenantId::from_static("t"),
            crate::id::AgentId::from_static("a"),
            SessionId::new(session).expect("a valid session id"),
            RunId::from_static("r"),
        )
    }

    #[test]
    fn merge_appends_records_and_messages_of_the_same_run() {
        let s = scope("s1");
        let mut step = Step {
            messages: Some(StepMessages::new(&s, vec![Message::user("a")])),
            ..Step::default()
        };
        assert!(!step.is_empty());
        let other = Step {
            messages: Some(StepMessages::new(&s, vec![Message::assistant("b")])),
            usage: vec![crate::store::UsageEvent::scoped(
                &s,
                crate::store::UsageKind::ToolCall,
                1,
            )],
            ..Step::default()
        };
        step.merge(other).expect("same session and run");
        let texts: Vec<&str> = step
            .messages
            .as_ref()
            .map(|m| m.messages.iter().map(Message::text).collect())
            .unwrap_or_default();
        assert_eq!(texts, ["a", "b"]);
        assert_eq!(step.usage.len(), 1);
    }

    #[test]
    fn merge_refuses_messages_of_another_session() {
        let mut step = Step {
            messages: Some(StepMessages::new(&scope("s1"), vec![Message::user("a")])),
            ..Step::default()
        };
        let other = Step {
            messages: Some(StepMessages::new(&scope("s2"), vec![Message::user("b")])),
            ..Step::default()
        };
        let err = step.merge(other).expect_err("two sessions in one step");
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        assert!(Step::default().is_empty());
        assert!(
            Step {
                messages: Some(StepMessages::new(&scope("s1"), Vec::new())),
                ..Step::default()
            }
            .is_empty(),
            "an empty message list writes nothing"
        );
    }
}
