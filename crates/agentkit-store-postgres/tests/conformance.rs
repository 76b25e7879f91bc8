//! `PostgresStore` passes the store conformance suite, connected as an application role that is
//! subject to row-level security, each check in a schema of its own.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use agentkit_core::store::StateStore;
use agentkit_core::testkit::conformance;
use common::TestDb;

/// One test per check (so failures are named), each against a fresh schema and role.
macro_rules! conformance_tests {
    ($($check:ident),+ $(,)?) => {
        $(
            #[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(db) = TestDb::from_env(concat!("conformance::", stringify!($check))).await
                else {
                    return;
                };
                let store = db.app_store().await;
                assert!(
                    store.enforces_row_level_security().await.unwrap(),
                    "the tests must run as a role subject to row-level security"
                );
                conformance::$check(&store).await;
                store.pool().close().await;
                db.cleanup().await;
            }
        )+
    };
}

conformance_tests!(
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

/// Every check in turn, through `Arc<dyn StateStore>`.
#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_as_arc_dyn_state_store() {
    let Some(db) = TestDb::from_env("conformance::run_all_as_arc_dyn_state_store").await else {
        return;
    };
    let store: Arc<dyn StateStore> = Arc::new(db.app_store().await);
    conformance::run_all(&*store).await;
    db.cleanup().await;
}

/// Four `run_all` at once against one store (clones share the pool): the checks use tenants
/// of their own, so they must not interfere.
#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_concurrently_against_one_store() {
    let Some(db) = TestDb::from_env("conformance::run_all_concurrently_against_one_store").await
    else {
        return;
    };
    let store = db.app_store().await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store: Arc<dyn StateStore> = Arc::new(store.clone());
            tokio::spawn(async move { conformance::run_all(&*store).await })
        })
        .collect();
    for task in tasks {
        if let Err(e) = task.await {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    store.pool().close().await;
    db.cleanup().await;
}

/// The governed executor over Postgres: one key runs once under concurrency; a changed replay is
/// a typed conflict.
#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executor_checks() {
    let Some(db) = TestDb::from_env("conformance::executor_checks").await else {
        return;
    };
    conformance::run_executor_checks(Arc::new(db.app_store().await)).await;
    db.cleanup().await;
}
