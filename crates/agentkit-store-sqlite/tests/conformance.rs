//! The shared store conformance suite against `SqliteStore`: every check on its own file
//! database, `run_all` through `Arc<dyn StateStore>` (file and in-memory), and all checks at once
//! against one shared file.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::store::StateStore;
use agentkit_core::testkit::conformance;
use agentkit_store_sqlite::SqliteStore;

/// A store on a fresh file in a fresh directory (kept alive with it).
async fn file_store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("conformance.db"))
        .await
        .unwrap();
    (dir, store)
}

macro_rules! conformance_checks {
    ($($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let (_dir, store) = file_store().await;
                conformance::$check(&store).await;
            }
        )*
    };
}

conformance_checks!(
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
    memory_round_trip,
    tenant_isolation,
    audit_chain_with_nanosecond_times,
    tool_claims_exactly_once,
    writes_never_span_tenants,
    invalid_tenants_never_reach_a_store,
    steps_commit_whole,
    steps_are_atomic,
    steps_keep_one_audit_chain,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_through_arc_dyn_state_store() {
    let (_dir, store) = file_store().await;
    let store: Arc<dyn StateStore> = Arc::new(store);
    conformance::run_all(&*store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_in_memory() {
    let store: Arc<dyn StateStore> = Arc::new(SqliteStore::open_in_memory().await.unwrap());
    conformance::run_all(&*store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_concurrently_on_one_file() {
    // Checks use tenants of their own, so they may share a database; running them at once
    // exercises the writer queue and the reader pool under contention.
    let (_dir, store) = file_store().await;
    let store: Arc<dyn StateStore> = Arc::new(store);
    let runs = (0..4).map(|_| {
        let store = Arc::clone(&store);
        tokio::spawn(async move { conformance::run_all(&*store).await })
    });
    for run in futures::future::join_all(runs).await {
        run.unwrap();
    }
}

/// The governed executor over SQLite: one key runs once under concurrency; a changed replay is a
/// typed conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_checks() {
    let (_dir, store) = file_store().await;
    conformance::run_executor_checks(Arc::new(store)).await;
}
