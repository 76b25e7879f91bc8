//! What the checks share: the imports they use, fresh tenants, record builders, assertions.

pub(super) use std::collections::BTreeSet;
pub(super) use std::fmt::Debug;

pub(super) use chrono::{DateTime, Duration, SubsecRound, Utc};
pub(super) use futures::future::join_all;
pub(super) use serde_json::{Value, json};

pub(super) use crate::config::AgentConfig;
pub(super) use crate::error::{ErrorKind, Result};
pub(super) use crate::id::{AgentId, ApprovalId, IdempotencyKey, RunId, SessionId, TenantId};
pub(super) use crate::message::{Message, ToolCall};
pub(super) use crate::policy::Priority;
pub(super) use crate::scope::Scope;
pub(super) use crate::store::{
    AUDIT_GENESIS_HASH, AgentConfigStore, ApprovalDecision, ApprovalRequest, ApprovalStatus,
    AuditEntry, AuditQuery, AuditStore, CounterStore, MemoryScope, MemoryStore, MessageWindow,
    NewAuditEntry, PendingCall, RunRecord, RunStatus, SessionRecord, SessionStore, StateStore,
    StoredMessage, ToolExecution, ToolExecutionStatus, UsageEvent, UsageKind, UsageQuery,
    UsageStore, Usd, verify_audit_chain,
};

/// A tenant no other check (or earlier run against the same database) uses.
pub(super) fn fresh_tenant() -> TenantId {
    TenantId::new(format!("conformance-{}", TenantId::generate()))
        .expect("a generated tenant id is valid")
}

/// Now, at the microsecond precision every backend keeps.
pub(super) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

#[track_caller]
pub(super) fn ok<T>(result: Result<T>, what: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => panic!("{what}: unexpected error: {e} ({:?})", e.kind()),
    }
}

#[track_caller]
pub(super) fn expect_err<T: Debug>(result: Result<T>, kind: ErrorKind, what: &str) {
    match result {
        Ok(v) => panic!("{what}: expected a {kind:?} error, got Ok({v:?})"),
        Err(e) => assert_eq!(
            e.kind(),
            kind,
            "{what}: expected a {kind:?} error, got: {e}"
        ),
    }
}

pub(super) fn seqs(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.seq).collect()
}

pub(super) fn texts(messages: &[StoredMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.message.text()).collect()
}

pub(super) fn new_session(tenant: &TenantId) -> SessionRecord {
    let mut s = SessionRecord::new(
        tenant.clone(),
        SessionId::generate(),
        AgentId::from_static("support"),
    );
    s.created_at = now();
    s.metadata.insert("channel".into(), "conformance".into());
    s
}

pub(super) fn new_run(tenant: &TenantId, session: &SessionRecord) -> RunRecord {
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
pub(super) async fn setup_run(
    store: &dyn StateStore,
    tenant: &TenantId,
) -> (SessionRecord, RunRecord) {
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

pub(super) fn key_of(text: String) -> IdempotencyKey {
    IdempotencyKey::new(text).expect("a valid idempotency key")
}

pub(super) fn scope_of(run: &RunRecord) -> Scope {
    Scope::new(
        run.tenant.clone(),
        run.agent.clone(),
        run.session.clone(),
        run.id.clone(),
    )
}

pub(super) fn new_approval(
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

pub(super) fn new_tool_execution(
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
        input: json!({"id": 7, "email": "[redacted]"}).into(),
        output: (status == ToolExecutionStatus::Succeeded).then(|| json!({"ok": true}).into()),
        error: (status == ToolExecutionStatus::Failed).then(|| "timeout".to_string()),
        status,
        started_at: now(),
        finished_at: finished.then(now),
    }
}

pub(super) fn agent_config(agent: &AgentId, version: u32, prompt: &str) -> AgentConfig {
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

pub(super) fn usage_event(
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

pub(super) fn ids(events: &[UsageEvent]) -> Vec<String> {
    events.iter().map(|e| e.id.to_string()).collect()
}
