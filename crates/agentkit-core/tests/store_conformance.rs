//! `InMemoryStore` passes the store conformance suite, used as a concrete type, as
//! `Box<dyn StateStore>` and as `Arc<dyn StateStore>`.
#![cfg(feature = "testkit")]

use std::sync::Arc;

use agentkit_core::store::{InMemoryStore, StateStore};
use agentkit_core::testkit::conformance;

/// One `#[tokio::test]` per check (so failures are named) plus `run_all`, for one way of
/// holding the store. `$make` builds the holder; the checks get `&*holder`.
macro_rules! conformance_tests {
    ($name:ident, $make:expr) => {
        mod $name {
            use super::*;

            conformance_tests!(@checks $make;
                sessions_round_trip,
                messages_append_and_window,
                window_never_orphans_tool_results,
    messages_retracted_by_run,
                agent_config_versions,
                runs_compare_and_swap,
                approvals_decided_exactly_once,
                approval_queue_order,
    records_point_to_existing_parents,
                tool_executions_idempotent,
                usage_append_only,
                audit_chain,
                counters_atomic,
                counter_batches_all_or_nothing,
                memory_round_trip,
                tenant_isolation,
                audit_chain_with_nanosecond_times,
                tool_claims_exactly_once,
                writes_never_span_tenants,
                invalid_tenants_never_reach_a_store,
                steps_commit_whole,
                steps_are_atomic,
                steps_keep_one_audit_chain,
                run_all,
            );
        }
    };
    (@checks $make:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let holder = $make;
                conformance::$check(&*holder).await;
            }
        )+
    };
}

conformance_tests!(concrete, &InMemoryStore::new());
conformance_tests!(boxed, Box::new(InMemoryStore::new()) as Box<dyn StateStore>);
conformance_tests!(arc, Arc::new(InMemoryStore::new()) as Arc<dyn StateStore>);

/// The governed executor over the in-memory store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_checks() {
    conformance::run_executor_checks(Arc::new(InMemoryStore::new())).await;
}

/// Clones share one store, and every check can run against one shared store at once (each
/// check uses tenants of its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_run_concurrently_against_one_shared_store() {
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { conformance::run_all(&*store).await })
        })
        .collect();
    for task in tasks {
        if let Err(e) = task.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

#[test]
fn debug_does_not_dump_records() {
    let store = InMemoryStore::new();
    let text = format!("{store:?}");
    assert!(text.starts_with("InMemoryStore"), "{text}");
}

/// Counters that keep `CounterStore`'s default `counter_add_many` (one `counter_add` at a time,
/// undone on a refusal), as the SQLite and Postgres stores do.
struct DefaultBatches(InMemoryStore);

#[async_trait::async_trait]
impl agentkit_core::store::CounterStore for DefaultBatches {
    async fn counter_add(
        &self,
        tenant: &agentkit_core::id::TenantId,
        key: &str,
        delta: i64,
        limit: Option<i64>,
    ) -> agentkit_core::Result<agentkit_core::store::CounterOutcome> {
        self.0.counter_add(tenant, key, delta, limit).await
    }

    async fn counter_get(
        &self,
        tenant: &agentkit_core::id::TenantId,
        key: &str,
    ) -> agentkit_core::Result<i64> {
        self.0.counter_get(tenant, key).await
    }
}

/// The default `counter_add_many` is all or nothing too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_counter_batches_all_or_nothing() {
    let store = DefaultBatches(InMemoryStore::new());
    conformance::counter_batches_all_or_nothing(&store).await;
}
