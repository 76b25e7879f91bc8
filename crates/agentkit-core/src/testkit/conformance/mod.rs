//! The conformance suite every [`StateStore`] backend runs.
//!
//! Each check is a `pub async fn` that takes the store (or the one part of it it exercises),
//! panics with a descriptive message when the backend breaks the contract of
//! [`crate::store`], and returns `()` otherwise. [`run_all`] runs every check.
//!
//! Every check works in tenants of its own ([`TenantId::generate`]), so checks can run in
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
mod isolation;
mod ledger;
mod runs;
mod sessions;
mod state;
mod tools;

pub use claims::{
    executor_runs_each_key_once, run_executor_checks, tool_claims_exactly_once,
    writes_never_span_tenants,
};
pub use configs::agent_config_versions;
pub use isolation::{invalid_tenants_never_reach_a_store, tenant_isolation};
pub use ledger::{audit_chain, audit_chain_with_nanosecond_times, usage_append_only};
pub use runs::{approval_queue_order, approvals_decided_exactly_once, runs_compare_and_swap};
pub use sessions::{
    messages_append_and_window, sessions_round_trip, window_never_orphans_tool_results,
};
pub use state::{counters_atomic, memory_round_trip};
pub use tools::tool_executions_idempotent;

use std::collections::BTreeSet;
use std::fmt::Debug;

use chrono::{DateTime, Duration, SubsecRound, Utc};
use futures::future::join_all;
use serde_json::{Value, json};

use crate::config::AgentConfig;
use crate::error::{ErrorKind, Result};
use crate::id::{AgentId, ApprovalId, IdempotencyKey, RunId, SessionId, TenantId};
use crate::message::{Message, ToolCall};
use crate::policy::Priority;
use crate::scope::Scope;
use crate::store::{
    AUDIT_GENESIS_HASH, AgentConfigStore, ApprovalDecision, ApprovalRequest, ApprovalStatus,
    AuditEntry, AuditQuery, AuditStore, CounterStore, MemoryScope, MemoryStore, MessageWindow,
    NewAuditEntry, PendingCall, RunRecord, RunStatus, SessionRecord, SessionStore, StateStore,
    StoredMessage, ToolExecution, ToolExecutionStatus, UsageEvent, UsageKind, UsageQuery,
    UsageStore, Usd, verify_audit_chain,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A tenant no other check (or earlier run against the same database) uses.
fn fresh_tenant() -> TenantId {
    TenantId::new(format!("conformance-{}", TenantId::generate()))
        .expect("a generated tenant id is valid")
}

/// Now, at the microsecond precision every backend keeps.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[track_caller]
fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e} ({:?})", e.kind()),
    }
}

#[track_caller]
fn expect_err<T: Debug>(result: Result<T>, kind: ErrorKind, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected a {kind:?} error, got Ok({v:?})"),
        Err(e) => assert_eq!(
            e.kind(),
            kind,
            "{what}: expected a {kind:?} error, got: {e}"
        ),
    }
}

fn seqs(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

fn texts(messages: &[StoredMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.message.text()).collect()
}

fn new_session(tenant: &TenantId) -> SessionRecord {
    let mut s = SessionRecord::new(
        tenant.clone(),
        SessionId::generate(),
        AgentId::from_static("support"),
    );
    s.created_at = now();
    s.metadata.insert("channel".into(), "conformance".into());
    s
}

fn new_run(tenant: &TenantId, session: &SessionRecord) -> RunRecord {
    let mut r = RunRecord::new(&Scope::new(
        tenant.clone(),
        session.agent.clone(),
        session.id.clone(),
        RunId::generate(),
    ));
    let t = now();
    r.created_at = t;
    r.updated_at = t;
    r
}

/// Creates a session and a run in it (what records referencing a run need first).
async fn setup_run(store: &dyn StateStore, tenant: &TenantId) -> (SessionRecord, RunRecord) {
    let session = new_session(tenant);
    assert!(
        ok(
            store.create_session(&session.tenant, &session).await,
            "create_session"
        ),
        "create_session of a new session must return true"
    );
    let run = new_run(tenant, &session);
    ok(store.create_run(&run.tenant, &run).await, "create_run");
    (session, run)
}

fn key_of(text: String) -> IdempotencyKey {
    IdempotencyKey::new(text).expect("a valid idempotency key")
}

fn scope_of(run: &RunRecord) -> Scope {
    Scope::new(
        run.tenant.clone(),
        run.agent.clone(),
        run.session.clone(),
        run.id.clone(),
    )
}

fn new_approval(
    run: &RunRecord,
    tool: &str,
    arguments: Value,
    priority: Priority,
) -> ApprovalRequest {
    let call = ToolCall::new(format!("call-{}", ApprovalId::generate()), tool, arguments);
    let mut a = ApprovalRequest::new(&scope_of(run), call, "needs a human", priority);
    a.created_at = now();
    a
}

fn new_tool_execution(
    run: &RunRecord,
    key: &IdempotencyKey,
    status: ToolExecutionStatus,
) -> ToolExecution {
    let finished = status != ToolExecutionStatus::Started;
    ToolExecution {
        tenant: run.tenant.clone(),
        idempotency_key: key.clone(),
        agent: run.agent.clone(),
        session: run.session.clone(),
        run: run.id.clone(),
        call_id: format!("call-{key}"),
        tool: "crm.update".into(),
        arguments_hash: "h-crm-update".into(),
        attempt: 1,
        input: json!({"id": 7, "email": "[redacted]"}),
        output: (status == ToolExecutionStatus::Succeeded).then(|| json!({"ok": true})),
        error: (status == ToolExecutionStatus::Failed).then(|| "timeout".to_string()),
        status,
        started_at: now(),
        finished_at: finished.then(now),
    }
}

fn agent_config(agent: &AgentId, version: u32, prompt: &str) -> AgentConfig {
    let text = json!({
        "agent": agent,
        "version": version,
        "name": "Support",
        "system_prompt": prompt,
        "model": {"provider": "scripted", "name": "test-model"},
        "tools": ["crm.*"],
        "policy": {"require_approval": ["crm.delete"]},
    })
    .to_string();
    match AgentConfig::from_json(&text) {
        Ok(c) => c,
        Err(e) => panic!("conformance agent config does not parse: {e}"),
    }
}

fn usage_event(
    tenant: &TenantId,
    agent: &AgentId,
    kind: UsageKind,
    quantity: u64,
    run: Option<&RunId>,
    at: DateTime<Utc>,
) -> UsageEvent {
    let mut e = UsageEvent::new(tenant.clone(), agent.clone(), kind, quantity);
    e.run = run.cloned();
    e.at = at;
    e
}

fn ids(events: &[UsageEvent]) -> Vec<String> {
    events.iter().map(|e| e.id.to_string()).collect()
}

/// Runs every check in turn.
pub async fn run_all(store: &dyn StateStore) {
    sessions_round_trip(store).await;
    messages_append_and_window(store).await;
    window_never_orphans_tool_results(store).await;
    agent_config_versions(store).await;
    runs_compare_and_swap(store).await;
    approvals_decided_exactly_once(store).await;
    approval_queue_order(store).await;
    tool_executions_idempotent(store).await;
    usage_append_only(store).await;
    audit_chain(store).await;
    counters_atomic(store).await;
    memory_round_trip(store).await;
    tenant_isolation(store).await;
    audit_chain_with_nanosecond_times(store).await;
    tool_claims_exactly_once(store).await;
    writes_never_span_tenants(store).await;
    invalid_tenants_never_reach_a_store(store).await;
}
