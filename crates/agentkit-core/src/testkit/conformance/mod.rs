//! The conformance suite every [`StateStore`] backend runs.
//!
//! Each check is a `pub async fn` that takes the store (or the one part of it it exercises),
//! panics with a descriptive message when the backend breaks the contract of
//! [`crate::store`], and returns `()` otherwise. [`run_all`] runs every check.
//!
//! Every check works in tenants of its own ([`TenantId::generate`](crate::id::TenantId::generate)), so checks can run in
//! parallel against one shared database and never see each other's records. Records the checks
//! write carry timestamps truncated to microseconds, so backends that store microsecond
//! precision (Postgres) round-trip them exactly. Records that reference a run or a session
//! (runs, approvals) are written after that session and run exist, so backends with foreign keys
//! from messages, runs and approvals pass too. Tool executions are keyed by idempotency key and
//! may name a run of another process's making: `tenant_isolation` records one in a tenant where
//! that run does not exist, so a `(tenant, run)` foreign key on tool executions would fail it.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use agentkit_core::store::{InMemoryStore, StateStore};
//! use agentkit_core::testkit::conformance;
//!
//! let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
//! conformance::run_all(&*store).await;
//! # }
//! ```

mod claims;
mod configs;
mod counter_batches;
mod isolation;
mod ledger;
mod runs;
mod sessions;
mod state;
mod steps;
mod support;
mod tools;

pub use claims::{
    executor_runs_each_key_once, run_executor_checks, tool_claims_exactly_once,
    writes_never_span_tenants,
};
pub use configs::agent_config_versions;
pub use counter_batches::counter_batches_all_or_nothing;
pub use isolation::{invalid_tenants_never_reach_a_store, tenant_isolation};
pub use ledger::{audit_chain, audit_chain_with_nanosecond_times, usage_append_only};
pub use runs::{
    approval_queue_order, approvals_decided_exactly_once, records_point_to_existing_parents,
    runs_compare_and_swap,
};
pub use sessions::{
    messages_append_and_window, messages_retracted_by_run, sessions_round_trip,
    window_never_orphans_tool_results,
};
pub use state::{counters_atomic, memory_round_trip};
pub use steps::{steps_are_atomic, steps_commit_whole, steps_keep_one_audit_chain};
pub use tools::tool_executions_idempotent;

use crate::store::StateStore;

/// Runs every check in turn.
pub async fn run_all(store: &dyn StateStore) {
    sessions_round_trip(store).await;
    messages_append_and_window(store).await;
    window_never_orphans_tool_results(store).await;
    messages_retracted_by_run(store).await;
    agent_config_versions(store).await;
    runs_compare_and_swap(store).await;
    approvals_decided_exactly_once(store).await;
    approval_queue_order(store).await;
    records_point_to_existing_parents(store).await;
    tool_executions_idempotent(store).await;
    usage_append_only(store).await;
    audit_chain(store).await;
    counters_atomic(store).await;
    counter_batches_all_or_nothing(store).await;
    memory_round_trip(store).await;
    tenant_isolation(store).await;
    audit_chain_with_nanosecond_times(store).await;
    tool_claims_exactly_once(store).await;
    writes_never_span_tenants(store).await;
    invalid_tenants_never_reach_a_store(store).await;
    steps_commit_whole(store).await;
    steps_are_atomic(store).await;
    steps_keep_one_audit_chain(store).await;
}
