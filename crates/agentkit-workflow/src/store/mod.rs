//! The workflow store contract: definitions, runs, the step log, leases and events.
//!
//! Every method but [`WorkflowStore::claim_workflow_runs`] and
//! [`WorkflowStore::next_workflow_wake`] takes the tenant first and never reads or writes
//! another tenant's records; a record naming another tenant than the argument is refused with
//! [`Error::InvalidInput`](agentkit_core::Error::InvalidInput) before anything is written. The
//! two exceptions are for workers, which serve every tenant: they hand out runs (each carrying
//! its tenant), never let a caller choose one.
//!
//! Backends: [`InMemoryWorkflowStore`] here; SQLite and Postgres in their store crates. All run
//! the same conformance suite (`testkit::conformance`, feature `testkit`).

mod memory;

use agentkit_core::Result;
use agentkit_core::async_trait;
use agentkit_core::id::{RunId, TenantId, WorkflowId};
use chrono::{DateTime, Utc};

pub use memory::InMemoryWorkflowStore;

use crate::definition::WorkflowDefinition;
use crate::record::{
    ClaimRequest, CommitOutcome, Created, Delivery, Lease, RunQuery, StepCommit, StepRecord,
    WorkflowEvent, WorkflowRun,
};

/// Durable workflow state. Used as `Arc<dyn WorkflowStore>`.
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Publishes a definition version. Publishing the same content again is a no-op; other
    /// content under a published id and version is [`Error::Conflict`](agentkit_core::Error::Conflict)
    /// (versions are immutable).
    async fn put_workflow(&self, tenant: &TenantId, definition: &WorkflowDefinition) -> Result<()>;

    /// One version, or the highest when `version` is `None`.
    async fn get_workflow(
        &self,
        tenant: &TenantId,
        id: &WorkflowId,
        version: Option<u32>,
    ) -> Result<Option<WorkflowDefinition>>;

    /// Inserts a run. With a `trigger_key`, at most one run exists per (tenant, workflow, key):
    /// a second create returns [`Created::Existing`] with the first run and writes nothing. A
    /// run id that exists is [`Error::Conflict`](agentkit_core::Error::Conflict).
    async fn create_workflow_run(&self, tenant: &TenantId, run: &WorkflowRun) -> Result<Created>;

    /// A run of this tenant.
    async fn get_workflow_run(&self, tenant: &TenantId, id: &RunId) -> Result<Option<WorkflowRun>>;

    /// Runs of a tenant matching the query, oldest first.
    async fn list_workflow_runs(
        &self,
        tenant: &TenantId,
        query: &RunQuery,
    ) -> Result<Vec<WorkflowRun>>;

    /// A run's step log in sequence order.
    async fn list_workflow_steps(&self, tenant: &TenantId, run: &RunId) -> Result<Vec<StepRecord>>;

    /// Claims up to `request.limit` runs that are [claimable](ClaimRequest::is_claimable), oldest
    /// due first, for `request.worker` until `request.lease_until`: each claimed run's lease is
    /// set and its version incremented, atomically, so under any concurrency (any number of
    /// workers and processes) a run is held by one live lease at a time. A lease that expired
    /// is claimable again; the old holder's next commit then fails on the version.
    async fn claim_workflow_runs(&self, request: &ClaimRequest) -> Result<Vec<WorkflowRun>>;

    /// Extends a lease the caller still holds (`run` at `version`, leased by `lease.owner`);
    /// `false` when it no longer does.
    async fn renew_workflow_lease(
        &self,
        tenant: &TenantId,
        run: &RunId,
        version: u64,
        lease: &Lease,
    ) -> Result<bool>;

    /// Writes a step: replaces the run if the stored version is `commit.expected_version`
    /// (compare-and-swap; [`Error::Conflict`](agentkit_core::Error::Conflict) otherwise) and
    /// appends the step row ((run, seq) unique; a taken seq is a conflict), both or neither.
    /// When the run enters a wait for an event that was kept (delivered before anyone waited),
    /// the same atomic step consumes it and makes the run runnable with its payload
    /// ([`CommitOutcome::woken`]).
    async fn commit_workflow_step(
        &self,
        tenant: &TenantId,
        commit: &StepCommit,
    ) -> Result<CommitOutcome>;

    /// Delivers an event: every run of the tenant waiting for its name and correlation becomes
    /// runnable with the payload as its resume input (version incremented); when none waits,
    /// the event is kept for the first run that does. An event id seen before is
    /// [`Delivery::Duplicate`] and changes nothing.
    async fn deliver_workflow_event(
        &self,
        tenant: &TenantId,
        event: &WorkflowEvent,
    ) -> Result<Delivery>;

    /// The earliest `wake_at` of any run that waits for a time (any tenant), so a worker can
    /// sleep until then.
    async fn next_workflow_wake(&self) -> Result<Option<DateTime<Utc>>>;

    /// Waits until work may have become claimable elsewhere (another process created or woke a
    /// run) or `max` passed, whichever is first. Workers also wake on their own process's
    /// changes without this. The default sleeps `max`; the Postgres store listens
    /// (`LISTEN`/`NOTIFY`), so many workers wake on new work without polling the table.
    async fn wait_for_work(&self, max: std::time::Duration) {
        tokio::time::sleep(max).await;
    }
}
