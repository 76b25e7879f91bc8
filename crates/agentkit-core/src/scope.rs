//! [`Scope`]: who acts, for whom, where — built once per run and carried by every call.

use serde::{Deserialize, Serialize};

use crate::id::{AgentId, RunId, SessionId, TenantId};

/// The tenant, agent, session and run one piece of work belongs to.
///
/// A scope is built once, from validated ids, when a run starts (or a host or workflow starts
/// work of its own) and is then carried — never re-assembled from loose strings — by the
/// [`ToolContext`](crate::tool::ToolContext), the [`PolicyRequest`](crate::policy::PolicyRequest),
/// the [governed executor](crate::exec::ToolExecutor) and every record constructor
/// ([`UsageEvent::scoped`](crate::store::UsageEvent::scoped),
/// [`NewAuditEntry::scoped`](crate::store::NewAuditEntry::scoped),
/// [`ApprovalRequest::new`](crate::store::ApprovalRequest::new)). Cloning is four reference-count
/// increments.
///
/// ```
/// use agentkit_core::id::{AgentId, RunId, SessionId, TenantId};
/// use agentkit_core::scope::Scope;
///
/// let scope = Scope::new(
///     TenantId::new("acme")?,
///     AgentId::new("marketing")?,
///     SessionId::new("s-1")?,
///     RunId::generate(),
/// );
/// assert_eq!(scope.tenant, "acme");
/// # Ok::<(), agentkit_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Scope {
    /// The tenant on whose behalf everything in this scope happens.
    pub tenant: TenantId,
    /// The acting agent (for host-initiated work, the agent the host acts as).
    pub agent: AgentId,
    /// The session.
    pub session: SessionId,
    /// The run.
    pub run: RunId,
}

impl Scope {
    /// A scope from validated ids.
    pub fn new(tenant: TenantId, agent: AgentId, session: SessionId, run: RunId) -> Self {
        Self {
            tenant,
            agent,
            session,
            run,
        }
    }

    /// The same tenant, agent and session with another run (a child run, a retry).
    pub fn with_run(&self, run: RunId) -> Self {
        Self {
            run,
            ..self.clone()
        }
    }
}

/// A fixed scope for unit tests.
#[cfg(test)]
pub(crate) fn test_scope() -> Scope {
    Scope::new(
        TenantId::from_static("t"),
        AgentId::from_static("a"),
        SessionId::from_static("s"),
        RunId::from_static("r"),
    )
}
