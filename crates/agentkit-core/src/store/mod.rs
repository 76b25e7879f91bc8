//! Durable state contracts.
//!
//! [`StateStore`] is the sum of one trait per kind of record. Every method takes the tenant the
//! same way — as its first argument — and no method can return or change another tenant's
//! records (Architecture Invariant: tenant isolation). Records carry their tenant too; a write
//! whose record names another tenant than the argument is refused with
//! [`crate::Error::InvalidInput`] before anything is written ([`ensure_tenant`]), so one call can
//! never span tenants. [`TenantStore`] (`store.tenant(&t)`) binds the tenant once. Usage events
//! and audit entries are append-only: there is no method to change or remove them.
//!
//! Backends: [`InMemoryStore`] here; SQLite and Postgres in their own crates. All of them run the
//! same conformance suite (`testkit::conformance`, feature `testkit`).

mod audit_records;
mod memory;
mod records;
pub(crate) mod step;
mod tenant;
mod usage_records;

use async_trait::async_trait;
use serde_json::Value;

pub use audit_records::*;
pub use memory::InMemoryStore;
pub use records::*;
pub use step::{Step, StepMessages, StepReceipt, StepStore};
pub use tenant::{StateStoreExt, TenantStore, ensure_tenant};
pub use usage_records::*;

use crate::config::AgentConfig;
use crate::error::Result;
use crate::id::{AgentId, ApprovalId, IdempotencyKey, RunId, SessionId, TenantId};
use crate::message::Message;

/// Sessions and their messages, stored as deltas.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a session; returns `false` (and changes nothing) when it already exists.
    async fn create_session(&self, tenant: &TenantId, session: &SessionRecord) -> Result<bool>;

    /// A session of this tenant.
    async fn get_session(&self, tenant: &TenantId, id: &SessionId)
    -> Result<Option<SessionRecord>>;

    /// Appends messages to a session in one atomic step and returns the sequence number of the
    /// last one (sequence numbers start at 1 and have no gaps). [`crate::Error::NotFound`] when
    /// the session does not exist in this tenant.
    async fn append_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        run: Option<&RunId>,
        messages: &[Message],
    ) -> Result<u64>;

    /// Loads messages in sequence order. A window never starts with a tool result whose
    /// assistant call lies outside the window: such orphans are dropped from its front.
    /// Retracted messages (see [`SessionStore::retract_messages`]) are never returned, so a
    /// window may skip sequence numbers; `Last(n)` counts only messages that are returned.
    async fn load_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        window: MessageWindow,
    ) -> Result<Vec<StoredMessage>>;

    /// Retracts, in one atomic step, every message `run` has appended to the session so far:
    /// they stay stored but no window returns them again. Returns how many were retracted (0
    /// when the run appended nothing or was retracted already). Messages appended afterwards
    /// are not affected. [`crate::Error::NotFound`] when the session does not exist in this
    /// tenant.
    ///
    /// The agent retracts a run that fails, so a failed run never leaves half an exchange (a
    /// question without its answer, a tool call without its results) in the conversation.
    async fn retract_messages(
        &self,
        tenant: &TenantId,
        session: &SessionId,
        run: &RunId,
    ) -> Result<u64>;
}

/// Versioned agent configurations; a version whose status is final is immutable.
#[async_trait]
pub trait AgentConfigStore: Send + Sync {
    /// Saves a config version (insert, or replace a draft). [`crate::Error::Conflict`] when that
    /// version is already final.
    async fn put_agent_config(&self, tenant: &TenantId, config: &AgentConfig) -> Result<()>;

    /// One version, or the highest version when `version` is `None`.
    async fn get_agent_config(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        version: Option<u32>,
    ) -> Result<Option<AgentConfig>>;

    /// The versions that exist for an agent, ascending.
    async fn list_agent_config_versions(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
    ) -> Result<Vec<u32>>;
}

/// Agent runs, including the durable state of a suspended turn.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Inserts a run; [`crate::Error::Conflict`] when the id exists, [`crate::Error::NotFound`]
    /// when its session does not exist in the tenant.
    async fn create_run(&self, tenant: &TenantId, run: &RunRecord) -> Result<()>;

    /// A run of this tenant.
    async fn get_run(&self, tenant: &TenantId, id: &RunId) -> Result<Option<RunRecord>>;

    /// Replaces a run only if the stored version equals `expected_version` (compare-and-swap);
    /// [`crate::Error::Conflict`] otherwise. The caller sets `run.version` to the new version.
    async fn update_run(
        &self,
        tenant: &TenantId,
        run: &RunRecord,
        expected_version: u64,
    ) -> Result<()>;
}

/// Human approval requests.
#[async_trait]
pub trait ApprovalStore: Send + Sync {
    /// Inserts a request; [`crate::Error::Conflict`] when the id exists,
    /// [`crate::Error::NotFound`] when its run does not exist in the tenant.
    async fn create_approval(&self, tenant: &TenantId, request: &ApprovalRequest) -> Result<()>;

    /// A request of this tenant.
    async fn get_approval(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
    ) -> Result<Option<ApprovalRequest>>;

    /// Decides a pending request exactly once: under any concurrency one decision wins and the
    /// others get [`crate::Error::Conflict`]. In the same atomic step (one transaction on SQL
    /// backends) it appends the request's [`NewAuditEntry::approval_decided`] entry to the
    /// tenant's audit chain: a decision never exists without its audit record, nor a record
    /// without its decision. Returns the decided request.
    async fn decide_approval(
        &self,
        tenant: &TenantId,
        id: &ApprovalId,
        decision: &ApprovalDecision,
    ) -> Result<ApprovalRequest>;

    /// Pending requests of a tenant: highest priority first, then earliest deadline (requests
    /// without one last), then oldest.
    async fn list_pending_approvals(&self, tenant: &TenantId) -> Result<Vec<ApprovalRequest>>;
}

/// Tool execution records keyed by idempotency key.
#[async_trait]
pub trait ToolExecutionStore: Send + Sync {
    /// Claims `(tenant, execution.idempotency_key)` for one execution, atomically (one
    /// statement or transaction): under any concurrency exactly one caller gets
    /// [`ToolClaim::Claimed`] for a key.
    ///
    /// - No record: `execution` (status `started`, attempt 1) is inserted → `Claimed`.
    /// - A `failed` record for the same tool and argument hash: it becomes `started` again with
    ///   `attempt + 1` and the new call id, input and start time → `Claimed`.
    /// - Anything else (`started`, `succeeded`, or `failed` for another tool or other
    ///   arguments): nothing changes → [`ToolClaim::Existing`] with the stored record.
    async fn claim_tool_execution(
        &self,
        tenant: &TenantId,
        execution: &ToolExecution,
    ) -> Result<ToolClaim>;

    /// Inserts or updates the record for `(tenant, idempotency_key)`. A record that already
    /// succeeded is final: writing it again gives [`crate::Error::Conflict`].
    async fn record_tool_execution(
        &self,
        tenant: &TenantId,
        execution: &ToolExecution,
    ) -> Result<()>;

    /// The record for an idempotency key.
    async fn get_tool_execution(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
    ) -> Result<Option<ToolExecution>>;

    /// The records of one run, in the order they were first recorded.
    async fn list_tool_executions(
        &self,
        tenant: &TenantId,
        run: &RunId,
    ) -> Result<Vec<ToolExecution>>;
}

/// The append-only usage ledger.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Appends events atomically. An id that exists already gives [`crate::Error::Conflict`] and
    /// nothing of the batch is written.
    async fn append_usage(&self, tenant: &TenantId, events: &[UsageEvent]) -> Result<()>;

    /// Events of a tenant matching the query, in time order.
    async fn list_usage(&self, tenant: &TenantId, query: &UsageQuery) -> Result<Vec<UsageEvent>>;
}

/// The append-only, hash-chained audit trail.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends an entry: the store assigns the next sequence number of the tenant's chain and
    /// the previous entry's hash atomically, so concurrent appends still form one chain.
    async fn append_audit(&self, tenant: &TenantId, entry: NewAuditEntry) -> Result<AuditEntry>;

    /// Entries of a tenant matching the query, in sequence order.
    async fn list_audit(&self, tenant: &TenantId, query: &AuditQuery) -> Result<Vec<AuditEntry>>;
}

/// Prices usage events before they are appended, and accounts their spend (budget counters,
/// quotas). The agent calls it with each step's events; `agentkit-policy` provides one.
#[async_trait]
pub trait UsageMeter: Send + Sync {
    /// Sets `cost` and `price_version` on the events and records their spend. An error is
    /// logged and the events are appended unpriced: usage is never lost.
    async fn meter(&self, events: &mut [UsageEvent]) -> Result<()>;

    /// Admits a model call before it is made: prices `estimate` (the prompt's estimated input
    /// tokens and the bounded output) and reserves it against every spend limit and token quota
    /// that applies, atomically per counter. [`crate::Error::LimitExceeded`] naming the
    /// exhausted limit refuses the call, and nothing stays reserved. The default admits
    /// everything.
    async fn admit(&self, estimate: &[UsageEvent]) -> Result<Admission> {
        let _ = estimate;
        Ok(Admission::default())
    }

    /// Meters the call's actual events (as [`UsageMeter::meter`]) and replaces the admission's
    /// reservation by them: the difference is added, or released when the call spent less
    /// (`events` may be empty when the call failed). The default meters.
    async fn settle(&self, admission: Admission, events: &mut [UsageEvent]) -> Result<()> {
        let _ = admission;
        self.meter(events).await
    }
}

/// One delta of a [`CounterStore::counter_add_many`] batch: the arguments of
/// [`CounterStore::counter_add`] after the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterDelta<'a> {
    /// The counter.
    pub key: &'a str,
    /// What to add; a negative delta (a release) is always applied.
    pub delta: i64,
    /// The value a positive delta may not take the counter past.
    pub limit: Option<i64>,
}

/// Atomic counters for budgets and rate limits.
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// Adds `delta` to a counter (missing counters start at 0). With a `limit`, a positive delta
    /// is applied only if the new value stays `<= limit`; the check and the add are one atomic
    /// step. Negative deltas (releases) are always applied.
    async fn counter_add(
        &self,
        tenant: &TenantId,
        key: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> Result<CounterOutcome>;

    /// The current value (0 when missing).
    async fn counter_get(&self, tenant: &TenantId, key: &str) -> Result<i64>;

    /// Applies a batch of deltas in order, all or nothing: each is checked as by
    /// [`counter_add`](Self::counter_add) against the value the earlier ones left (a key may
    /// appear twice). Returns `None` when every delta applied, `Some(i)` when `deltas[i]` was
    /// refused; then none of the batch stays applied. On an error none stays applied either,
    /// as far as the store could undo it.
    ///
    /// The default applies the deltas one by one with `counter_add` and, on a refusal or an
    /// error, releases those already applied (meanwhile a concurrent caller may see them, and
    /// may be refused because of them). The in-memory store applies a batch under one lock.
    async fn counter_add_many(
        &self,
        tenant: &TenantId,
        deltas: &[CounterDelta<'_>],
    ) -> Result<Option<usize>> {
        let mut outcome = Ok(None);
        let mut applied = 0;
        for (i, d) in deltas.iter().enumerate() {
            match self.counter_add(tenant, d.key, d.delta, d.limit).await {
                Ok(o) if o.applied => applied = i + 1,
                Ok(_) => {
                    outcome = Ok(Some(i));
                    break;
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
        }
        if !matches!(outcome, Ok(None)) {
            for d in deltas[..applied].iter().rev() {
                // `-i64::MIN` does not exist: undo it in two steps.
                let undo = match d.delta.checked_neg() {
                    Some(n) => vec![n],
                    None => vec![i64::MAX, 1],
                };
                for n in undo {
                    if let Err(e) = self.counter_add(tenant, d.key, n, None).await {
                        tracing::warn!(error = %e, key = d.key, "could not undo a counter delta");
                    }
                }
            }
        }
        outcome
    }

    /// [`counter_add_many`](Self::counter_add_many) without waiting, for stores that answer
    /// without I/O: `None` when the store cannot (the default), and the caller awaits
    /// `counter_add_many` instead. The in-memory store answers here, so a hot path that tries
    /// this first allocates no future.
    fn counter_add_many_now(
        &self,
        tenant: &TenantId,
        deltas: &[CounterDelta<'_>],
    ) -> Option<Result<Option<usize>>> {
        let _ = (tenant, deltas);
        None
    }
}

/// Long-term memory: JSON values by scope and key.
#[async_trait]
pub trait MemoryStore: Send + Sync {
    /// Sets a value.
    async fn put_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
        value: &Value,
    ) -> Result<()>;

    /// A value.
    async fn get_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
    ) -> Result<Option<Value>>;

    /// Every key and value in a scope, sorted by key.
    async fn list_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
    ) -> Result<Vec<(String, Value)>>;

    /// Removes a value; returns whether it existed.
    async fn delete_memory(
        &self,
        tenant: &TenantId,
        scope: &MemoryScope,
        key: &str,
    ) -> Result<bool>;
}

/// Everything an agent needs to persist. Implemented automatically for any type that implements
/// every part, and usable as `Arc<dyn StateStore>` (upcast to `Arc<dyn SessionStore>` etc. when a
/// component needs only one part).
pub trait StateStore:
    StepStore
    + SessionStore
    + AgentConfigStore
    + RunStore
    + ApprovalStore
    + ToolExecutionStore
    + UsageStore
    + AuditStore
    + CounterStore
    + MemoryStore
{
}

impl<T> StateStore for T where
    T: StepStore
        + SessionStore
        + AgentConfigStore
        + RunStore
        + ApprovalStore
        + ToolExecutionStore
        + UsageStore
        + AuditStore
        + CounterStore
        + MemoryStore
{
}
