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

pub use claims::{
    executor_runs_each_key_once, run_executor_checks, tool_claims_exactly_once,
    writes_never_span_tenants,
};

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

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

/// Sessions: create returns `true` once and `false` (changing nothing) afterwards; get returns
/// what was created; unknown ids give `None`.
pub async fn sessions_round_trip(store: &dyn SessionStore) {
    let t = fresh_tenant();
    let s = new_session(&t);
    assert_eq!(
        ok(store.get_session(&t, &s.id).await, "get_session"),
        None,
        "a session that was never created must not exist"
    );
    assert!(
        ok(store.create_session(&s.tenant, &s).await, "create_session"),
        "create_session of a new session must return true"
    );
    assert_eq!(
        ok(store.get_session(&t, &s.id).await, "get_session"),
        Some(s.clone()),
        "get_session must return the session as created"
    );

    let mut again = s.clone();
    again.agent = AgentId::from_static("someone-else");
    again.metadata.insert("channel".into(), "sms".into());
    assert!(
        !ok(
            store.create_session(&again.tenant, &again).await,
            "create_session (again)"
        ),
        "create_session of an existing session must return false"
    );
    assert_eq!(
        ok(store.get_session(&t, &s.id).await, "get_session"),
        Some(s.clone()),
        "create_session of an existing session must not change it"
    );

    let other = new_session(&t);
    assert!(ok(
        store.create_session(&other.tenant, &other).await,
        "create_session (second)"
    ));
    assert_eq!(
        ok(store.get_session(&t, &other.id).await, "get_session"),
        Some(other),
        "a second session must be stored separately"
    );
    assert_eq!(
        ok(store.get_session(&t, &s.id).await, "get_session"),
        Some(s),
        "a second session must not change the first"
    );
}

/// Messages: sequence numbers from 1 without gaps across appends, the `All`, `Last(n)` and
/// `After(seq)` windows, atomic concurrent appends and `NotFound` for unknown sessions.
pub async fn messages_append_and_window(store: &dyn SessionStore) {
    let t = fresh_tenant();
    let s = new_session(&t);
    ok(store.create_session(&s.tenant, &s).await, "create_session");
    assert_eq!(
        ok(
            store.load_messages(&t, &s.id, MessageWindow::All).await,
            "load_messages"
        ),
        Vec::new(),
        "a new session has no messages"
    );

    let run = RunId::generate();
    let first = [
        Message::user("m1"),
        Message::assistant("m2"),
        Message::user("m3"),
    ];
    assert_eq!(
        ok(
            store.append_messages(&t, &s.id, Some(&run), &first).await,
            "append_messages"
        ),
        3,
        "append_messages returns the sequence number of the last message appended"
    );
    let second = [Message::assistant("m4"), Message::user("m5")];
    assert_eq!(
        ok(
            store.append_messages(&t, &s.id, None, &second).await,
            "append_messages"
        ),
        5,
        "sequence numbers continue across appends"
    );

    let all = ok(
        store.load_messages(&t, &s.id, MessageWindow::All).await,
        "load_messages(All)",
    );
    assert_eq!(
        seqs(&all),
        vec![1, 2, 3, 4, 5],
        "All: sequence order from 1"
    );
    assert_eq!(texts(&all), vec!["m1", "m2", "m3", "m4", "m5"]);
    let expected: Vec<Message> = first.iter().chain(second.iter()).cloned().collect();
    assert_eq!(
        all.iter().map(|m| m.message.clone()).collect::<Vec<_>>(),
        expected,
        "messages must round-trip unchanged"
    );
    assert!(
        all[..3].iter().all(|m| m.run.as_ref() == Some(&run)),
        "messages appended with a run must carry it"
    );
    assert!(
        all[3..].iter().all(|m| m.run.is_none()),
        "messages appended without a run must have none"
    );

    let windows: [(MessageWindow, Vec<u64>); 9] = [
        (MessageWindow::Last(0), vec![]),
        (MessageWindow::Last(2), vec![4, 5]),
        (MessageWindow::Last(5), vec![1, 2, 3, 4, 5]),
        (MessageWindow::Last(100), vec![1, 2, 3, 4, 5]),
        (MessageWindow::After(0), vec![1, 2, 3, 4, 5]),
        (MessageWindow::After(3), vec![4, 5]),
        (MessageWindow::After(4), vec![5]),
        (MessageWindow::After(5), vec![]),
        (MessageWindow::After(99), vec![]),
    ];
    for (window, want) in windows {
        let got = ok(
            store.load_messages(&t, &s.id, window).await,
            &format!("load_messages({window:?})"),
        );
        assert_eq!(seqs(&got), want, "window {window:?}");
        let expected: Vec<StoredMessage> = all
            .iter()
            .filter(|m| want.contains(&m.seq))
            .cloned()
            .collect();
        assert_eq!(
            got, expected,
            "window {window:?} must return the stored messages"
        );
    }

    // Concurrent appends: each batch is atomic (contiguous) and no number is used twice.
    let batches: Vec<Vec<Message>> = (0..10)
        .map(|i| {
            vec![
                Message::user(format!("c{i}-a")),
                Message::assistant(format!("c{i}-b")),
            ]
        })
        .collect();
    let results = join_all(
        batches
            .iter()
            .map(|b| store.append_messages(&t, &s.id, None, b)),
    )
    .await;
    let lasts: Vec<u64> = results
        .into_iter()
        .map(|r| ok(r, "concurrent append_messages"))
        .collect();
    let mut sorted = lasts.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (1..=10).map(|i| 5 + 2 * i).collect::<Vec<u64>>(),
        "concurrent batches of two must end at distinct, consecutive positions"
    );
    let all = ok(
        store.load_messages(&t, &s.id, MessageWindow::All).await,
        "load_messages(All)",
    );
    assert_eq!(
        seqs(&all),
        (1..=25).collect::<Vec<u64>>(),
        "sequence numbers must have no gaps after concurrent appends"
    );
    for (i, last) in lasts.iter().enumerate() {
        let at = usize::try_from(*last).unwrap_or(usize::MAX);
        assert_eq!(
            texts(&all[at - 2..at]),
            vec![format!("c{i}-a"), format!("c{i}-b")],
            "batch {i} must be stored contiguously, ending at its returned sequence number"
        );
    }

    expect_err(
        store
            .append_messages(&t, &SessionId::generate(), None, &[Message::user("x")])
            .await,
        ErrorKind::NotFound,
        "append_messages to a session that does not exist",
    );
}

/// Windows never start with tool results whose assistant call lies before the window.
pub async fn window_never_orphans_tool_results(store: &dyn SessionStore) {
    let t = fresh_tenant();
    let s = new_session(&t);
    ok(store.create_session(&s.tenant, &s).await, "create_session");
    let call = |id: &str, name: &str| ToolCall::new(id, name, json!({"order": 7}));
    let turn1 = [
        Message::user("where is order 7?"),
        Message::Assistant {
            content: String::new(),
            tool_calls: vec![call("c1", "orders.get"), call("c2", "orders.track")],
        },
        Message::tool_result("c1", "orders.get", "{\"id\":7}"),
        Message::tool_error("c2", "orders.track", "carrier unavailable"),
        Message::assistant("Order 7 ships tomorrow."),
    ];
    let turn2 = [
        Message::user("thanks, cancel it"),
        Message::Assistant {
            content: "Cancelling.".into(),
            tool_calls: vec![call("c3", "orders.cancel")],
        },
        Message::tool_result("c3", "orders.cancel", "cancelled"),
    ];
    ok(
        store.append_messages(&t, &s.id, None, &turn1).await,
        "append_messages",
    );
    ok(
        store.append_messages(&t, &s.id, None, &turn2).await,
        "append_messages",
    );
    let all = ok(
        store.load_messages(&t, &s.id, MessageWindow::All).await,
        "load_messages(All)",
    );
    assert_eq!(seqs(&all), (1..=8).collect::<Vec<u64>>());

    // The tail of `all` starting at `start`, minus leading tool results.
    let trimmed = |start: usize| -> Vec<StoredMessage> {
        all[start.min(all.len())..]
            .iter()
            .skip_while(|m| m.message.is_tool_result())
            .cloned()
            .collect()
    };
    for n in 0..=10usize {
        let window = MessageWindow::Last(n);
        let got = ok(
            store.load_messages(&t, &s.id, window).await,
            &format!("load_messages({window:?})"),
        );
        assert!(
            got.first().is_none_or(|m| !m.message.is_tool_result()),
            "{window:?} starts with an orphaned tool result: {:?}",
            seqs(&got)
        );
        assert_eq!(
            got,
            trimmed(all.len().saturating_sub(n)),
            "{window:?} must be the last {n} messages minus orphaned tool results at its front"
        );
    }
    for after in 0..=9u64 {
        let window = MessageWindow::After(after);
        let got = ok(
            store.load_messages(&t, &s.id, window).await,
            &format!("load_messages({window:?})"),
        );
        assert!(
            got.first().is_none_or(|m| !m.message.is_tool_result()),
            "{window:?} starts with an orphaned tool result: {:?}",
            seqs(&got)
        );
        assert_eq!(
            got,
            trimmed(usize::try_from(after).unwrap_or(usize::MAX)),
            "{window:?} must be the messages after {after} minus orphaned tool results at its front"
        );
    }
    // The boundary cases spelled out.
    let last = |n| {
        let (t, id) = (t.clone(), s.id.clone());
        async move {
            seqs(&ok(
                store.load_messages(&t, &id, MessageWindow::Last(n)).await,
                "load_messages",
            ))
        }
    };
    assert_eq!(
        last(6).await,
        vec![5, 6, 7, 8],
        "Last(6) cuts both tool results"
    );
    assert_eq!(
        last(5).await,
        vec![5, 6, 7, 8],
        "Last(5) cuts the second tool result"
    );
    assert_eq!(
        last(7).await,
        (2..=8).collect::<Vec<u64>>(),
        "Last(7) keeps the call"
    );
    assert_eq!(
        last(2).await,
        vec![7, 8],
        "Last(2) keeps the call and its result"
    );
    assert_eq!(
        last(1).await,
        Vec::<u64>::new(),
        "Last(1) is only an orphan"
    );
}

/// Agent configs: drafts are replaceable, final versions are immutable (`Conflict`), `None`
/// loads the highest version, versions list ascending.
pub async fn agent_config_versions(store: &dyn AgentConfigStore) {
    let t = fresh_tenant();
    let agent = AgentId::from_static("support");
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, None).await,
            "get_agent_config"
        ),
        None,
        "no config before the first put"
    );
    assert_eq!(
        ok(
            store.list_agent_config_versions(&t, &agent).await,
            "list_agent_config_versions"
        ),
        Vec::<u32>::new()
    );

    let v1 = agent_config(&agent, 1, "v1");
    ok(
        store.put_agent_config(&t, &v1).await,
        "put_agent_config(v1)",
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, Some(1)).await,
            "get_agent_config"
        ),
        Some(v1.clone()),
        "a config must round-trip"
    );

    let mut v1_edit = v1.clone();
    v1_edit.system_prompt = "v1, edited".into();
    ok(
        store.put_agent_config(&t, &v1_edit).await,
        "put_agent_config over a draft",
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, Some(1)).await,
            "get_agent_config"
        ),
        Some(v1_edit.clone()),
        "putting a draft version again replaces it"
    );

    let v1_final = v1_edit.clone().finalized();
    ok(
        store.put_agent_config(&t, &v1_final).await,
        "put_agent_config finalizing a draft",
    );
    let mut tampered = v1.clone();
    tampered.system_prompt = "changed after release".into();
    expect_err(
        store.put_agent_config(&t, &tampered).await,
        ErrorKind::Conflict,
        "putting a draft over a final version",
    );
    expect_err(
        store
            .put_agent_config(&t, &tampered.clone().finalized())
            .await,
        ErrorKind::Conflict,
        "putting a final version over a final version",
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, Some(1)).await,
            "get_agent_config"
        ),
        Some(v1_final.clone()),
        "a final version must not change"
    );

    let v2 = v1_final.next_draft();
    ok(
        store.put_agent_config(&t, &v2).await,
        "put_agent_config(v2)",
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, None).await,
            "get_agent_config"
        ),
        Some(v2.clone()),
        "None loads the highest version"
    );

    // Highest, not most recently written.
    let v5 = agent_config(&agent, 5, "v5");
    let v4 = agent_config(&agent, 4, "v4").finalized();
    ok(
        store.put_agent_config(&t, &v5).await,
        "put_agent_config(v5)",
    );
    ok(
        store.put_agent_config(&t, &v4).await,
        "put_agent_config(v4)",
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, None).await,
            "get_agent_config"
        ),
        Some(v5),
        "None loads the highest version, not the last written"
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, Some(4)).await,
            "get_agent_config"
        ),
        Some(v4)
    );
    assert_eq!(
        ok(
            store.get_agent_config(&t, &agent, Some(3)).await,
            "get_agent_config"
        ),
        None,
        "a version never put does not exist"
    );
    assert_eq!(
        ok(
            store.list_agent_config_versions(&t, &agent).await,
            "list_agent_config_versions"
        ),
        vec![1, 2, 4, 5],
        "versions are listed ascending"
    );

    let other = AgentId::from_static("sales");
    assert_eq!(
        ok(
            store.get_agent_config(&t, &other, None).await,
            "get_agent_config"
        ),
        None,
        "another agent's configs are separate"
    );
    assert_eq!(
        ok(
            store.list_agent_config_versions(&t, &other).await,
            "list_agent_config_versions"
        ),
        Vec::<u32>::new()
    );
}

/// Runs: duplicate ids conflict, updates are compare-and-swap on `version`, a missing run is
/// `NotFound`, and of many concurrent updates from the same version exactly one wins.
pub async fn runs_compare_and_swap(store: &dyn StateStore) {
    let t = fresh_tenant();
    let (session, run) = setup_run(store, &t).await;
    expect_err(
        store.create_run(&run.tenant, &run).await,
        ErrorKind::Conflict,
        "create_run with an existing id",
    );
    assert_eq!(
        ok(store.get_run(&t, &run.id).await, "get_run"),
        Some(run.clone()),
        "a run must round-trip"
    );

    // A suspended run with its pending calls survives the round trip.
    let mut v2 = run.clone();
    v2.version = 2;
    v2.status = RunStatus::Suspended;
    v2.turns = 1;
    v2.tool_calls = 2;
    v2.call_fingerprints = vec!["fp-1".into(), "fp-2".into()];
    v2.pending = vec![
        PendingCall::Resolved {
            call: ToolCall::new("c1", "crm.lookup", json!({"id": 7})),
            result: Message::tool_result("c1", "crm.lookup", "{\"name\":\"Ada\"}"),
        },
        PendingCall::AwaitingApproval {
            call: ToolCall::new("c2", "crm.delete", json!({"id": 7})),
            approval: ApprovalId::generate(),
            arguments_hash: "abc".into(),
        },
    ];
    v2.updated_at = now();
    ok(
        store.update_run(&v2.tenant, &v2, 1).await,
        "update_run from version 1",
    );
    assert_eq!(
        ok(store.get_run(&t, &run.id).await, "get_run"),
        Some(v2.clone()),
        "update_run must replace the run"
    );

    let mut stale = run.clone();
    stale.version = 2;
    stale.reply = Some("stale writer".into());
    expect_err(
        store.update_run(&stale.tenant, &stale, 1).await,
        ErrorKind::Conflict,
        "update_run with a stale expected version",
    );
    assert_eq!(
        ok(store.get_run(&t, &run.id).await, "get_run"),
        Some(v2.clone()),
        "a refused update must change nothing"
    );

    let mut ghost = new_run(&t, &session);
    ghost.version = 2;
    expect_err(
        store.update_run(&ghost.tenant, &ghost, 1).await,
        ErrorKind::NotFound,
        "update_run of a run that does not exist",
    );
    assert_eq!(
        ok(store.get_run(&t, &ghost.id).await, "get_run"),
        None,
        "update_run must not create runs"
    );

    // Concurrent compare-and-swap from the same version: exactly one wins.
    let attempts: Vec<RunRecord> = (0..20u32)
        .map(|i| {
            let mut r = v2.clone();
            r.version = 3;
            r.turns = 100 + i;
            r
        })
        .collect();
    let results = join_all(attempts.iter().map(|r| store.update_run(&r.tenant, r, 2))).await;
    let mut winners = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(()) => winners.push(i),
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::Conflict,
                "a losing concurrent update_run must be a Conflict, got: {e}"
            ),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 20 concurrent update_run calls from version 2 must win, won: {winners:?}"
    );
    assert_eq!(
        ok(store.get_run(&t, &run.id).await, "get_run"),
        Some(attempts[winners[0]].clone()),
        "the stored run must be the winner's"
    );
}

/// Approvals: duplicate ids conflict, invalid decisions are refused, a decision applies once,
/// and of 20 concurrent approve/reject decisions exactly one wins.
pub async fn approvals_decided_exactly_once(store: &dyn StateStore) {
    let t = fresh_tenant();
    let (_, run) = setup_run(store, &t).await;
    let request = new_approval(&run, "refund.issue", json!({"amount": 50}), Priority::High);
    ok(
        store.create_approval(&request.tenant, &request).await,
        "create_approval",
    );
    expect_err(
        store.create_approval(&request.tenant, &request).await,
        ErrorKind::Conflict,
        "create_approval with an existing id",
    );
    assert_eq!(
        ok(store.get_approval(&t, &request.id).await, "get_approval"),
        Some(request.clone()),
        "an approval request must round-trip"
    );
    assert_eq!(
        ok(
            store.get_approval(&t, &ApprovalId::generate()).await,
            "get_approval"
        ),
        None
    );

    let back_to_pending = ApprovalDecision {
        status: ApprovalStatus::Pending,
        ..ApprovalDecision::approve("mallory")
    };
    expect_err(
        store
            .decide_approval(&t, &request.id, &back_to_pending)
            .await,
        ErrorKind::InvalidInput,
        "a decision that sets the status to pending",
    );
    expect_err(
        store
            .decide_approval(
                &t,
                &ApprovalId::generate(),
                &ApprovalDecision::approve("alice"),
            )
            .await,
        ErrorKind::NotFound,
        "deciding an approval that does not exist",
    );
    assert_eq!(
        ok(store.get_approval(&t, &request.id).await, "get_approval"),
        Some(request.clone()),
        "refused decisions must change nothing"
    );

    let decision = ApprovalDecision::approve_with_arguments("alice", json!({"amount": 40}));
    let decided = ok(
        store.decide_approval(&t, &request.id, &decision).await,
        "decide_approval",
    );
    assert_eq!(decided.status, ApprovalStatus::Approved);
    assert_eq!(decided.reviewer.as_deref(), Some("alice"));
    assert!(decided.decided_at.is_some(), "a decision sets decided_at");
    assert_eq!(decided.approved_arguments(), &json!({"amount": 40}));
    assert_eq!(decided.call, request.call, "the original call is kept");
    let stored = ok(store.get_approval(&t, &request.id).await, "get_approval");
    let stored = stored.unwrap_or_else(|| panic!("decided approval disappeared"));
    assert_eq!(stored.status, ApprovalStatus::Approved);
    assert_eq!(stored.reviewer.as_deref(), Some("alice"));
    assert_eq!(stored.edited_arguments, Some(json!({"amount": 40})));
    assert!(stored.decided_at.is_some());

    expect_err(
        store
            .decide_approval(&t, &request.id, &ApprovalDecision::reject("bob", "no"))
            .await,
        ErrorKind::Conflict,
        "deciding an approval a second time",
    );
    let stored = ok(store.get_approval(&t, &request.id).await, "get_approval");
    assert_eq!(
        stored.as_ref().map(|s| (s.status, s.reviewer.clone())),
        Some((ApprovalStatus::Approved, Some("alice".to_string()))),
        "a second decision must not change the first"
    );
    assert!(
        ok(
            store.list_pending_approvals(&t).await,
            "list_pending_approvals"
        )
        .is_empty(),
        "a decided approval is not pending"
    );

    // 20 concurrent deciders, alternating approve and reject: exactly one wins.
    let contested = new_approval(&run, "crm.delete", json!({"id": 9}), Priority::Critical);
    ok(
        store.create_approval(&contested.tenant, &contested).await,
        "create_approval",
    );
    let decisions: Vec<ApprovalDecision> = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                ApprovalDecision::approve(format!("reviewer-{i}"))
            } else {
                ApprovalDecision::reject(format!("reviewer-{i}"), format!("no from {i}"))
            }
        })
        .collect();
    let results = join_all(
        decisions
            .iter()
            .map(|d| store.decide_approval(&t, &contested.id, d)),
    )
    .await;
    let mut winners = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(request) => winners.push((i, request)),
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::Conflict,
                "a losing concurrent decision must be a Conflict, got: {e}"
            ),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 20 concurrent decisions must win, won: {:?}",
        winners.iter().map(|(i, _)| i).collect::<Vec<_>>()
    );
    let (winner, returned) = &winners[0];
    let decision = &decisions[*winner];
    assert_eq!(returned.status, decision.status);
    assert_eq!(returned.reviewer.as_ref(), Some(&decision.reviewer));
    let stored = ok(store.get_approval(&t, &contested.id).await, "get_approval")
        .unwrap_or_else(|| panic!("contested approval disappeared"));
    assert_eq!(
        (
            stored.status,
            stored.reviewer.as_ref(),
            stored.comment.as_ref()
        ),
        (
            decision.status,
            Some(&decision.reviewer),
            decision.comment.as_ref()
        ),
        "the stored decision must be the winner's"
    );
}

/// Pending approvals list by priority (highest first), then deadline (earliest first, none
/// last), then age (oldest first); decided requests are left out.
pub async fn approval_queue_order(store: &dyn StateStore) {
    let t = fresh_tenant();
    let (_, run) = setup_run(store, &t).await;
    let t0 = now();
    let secs = Duration::seconds;
    let make = |priority, created: i64, deadline: Option<i64>| {
        let mut a = new_approval(&run, "crm.update", json!({}), priority);
        a.created_at = t0 + secs(created);
        a.deadline = deadline.map(|d| t0 + secs(d));
        a
    };
    let a = make(Priority::Critical, 5, None);
    let b = make(Priority::High, 1, Some(100));
    let c = make(Priority::High, 2, Some(50));
    let d = make(Priority::High, 0, None);
    let e = make(Priority::Low, 3, None);
    let f = make(Priority::Low, 4, None);
    let decided = make(Priority::Critical, 0, Some(1));
    for request in [&e, &b, &decided, &f, &a, &d, &c] {
        ok(
            store.create_approval(&request.tenant, request).await,
            "create_approval",
        );
    }
    ok(
        store
            .decide_approval(&t, &decided.id, &ApprovalDecision::reject("alice", "no"))
            .await,
        "decide_approval",
    );

    let pending = ok(
        store.list_pending_approvals(&t).await,
        "list_pending_approvals",
    );
    let got: Vec<&ApprovalId> = pending.iter().map(|p| &p.id).collect();
    let want: Vec<&ApprovalId> = [&a, &c, &b, &d, &e, &f].iter().map(|p| &p.id).collect();
    assert_eq!(
        got, want,
        "pending approvals: priority desc, then deadline asc (none last), then oldest first"
    );
    let mut resorted = pending.clone();
    resorted.sort_by(crate::store::approval_queue_order);
    assert_eq!(
        pending, resorted,
        "the order must match records::approval_queue_order"
    );
    assert_eq!(pending[0], a, "listed requests must equal what was created");
}

/// Tool executions: upsert by idempotency key until the record succeeded, which makes it
/// final (`Conflict`); listing by run in the order first recorded.
pub async fn tool_executions_idempotent(store: &dyn StateStore) {
    let t = fresh_tenant();
    let (_, run) = setup_run(store, &t).await;
    let (_, other_run) = setup_run(store, &t).await;
    let key = |n: u32| key_of(format!("{}:{n}", run.id));

    let k1 = key(1);
    assert_eq!(
        ok(
            store.get_tool_execution(&t, &k1).await,
            "get_tool_execution"
        ),
        None
    );
    let started = new_tool_execution(&run, &k1, ToolExecutionStatus::Started);
    ok(
        store.record_tool_execution(&started.tenant, &started).await,
        "record(started)",
    );
    assert_eq!(
        ok(
            store.get_tool_execution(&t, &k1).await,
            "get_tool_execution"
        ),
        Some(started.clone()),
        "a tool execution must round-trip"
    );

    let failed = new_tool_execution(&run, &k1, ToolExecutionStatus::Failed);
    ok(
        store.record_tool_execution(&failed.tenant, &failed).await,
        "record(failed)",
    );
    assert_eq!(
        ok(
            store.get_tool_execution(&t, &k1).await,
            "get_tool_execution"
        ),
        Some(failed),
        "a failed execution may be recorded over a started one"
    );
    ok(
        store.record_tool_execution(&started.tenant, &started).await,
        "record(started) again after a failure (retry)",
    );

    let succeeded = new_tool_execution(&run, &k1, ToolExecutionStatus::Succeeded);
    ok(
        store
            .record_tool_execution(&succeeded.tenant, &succeeded)
            .await,
        "record(succeeded)",
    );
    assert_eq!(
        ok(
            store.get_tool_execution(&t, &k1).await,
            "get_tool_execution"
        ),
        Some(succeeded.clone())
    );
    expect_err(
        store.record_tool_execution(&started.tenant, &started).await,
        ErrorKind::Conflict,
        "recording over a succeeded execution",
    );
    expect_err(
        store
            .record_tool_execution(&succeeded.tenant, &succeeded)
            .await,
        ErrorKind::Conflict,
        "recording a succeeded execution twice",
    );
    assert_eq!(
        ok(
            store.get_tool_execution(&t, &k1).await,
            "get_tool_execution"
        ),
        Some(succeeded.clone()),
        "a succeeded execution is final"
    );

    // Order of first recording, unaffected by later updates and other runs.
    let k2 = key(2);
    let k3 = key(3);
    let k4 = key_of(format!("{}:1", other_run.id));
    ok(
        store
            .record_tool_execution(
                &t,
                &new_tool_execution(&run, &k2, ToolExecutionStatus::Started),
            )
            .await,
        "record k2",
    );
    ok(
        store
            .record_tool_execution(
                &t,
                &new_tool_execution(&other_run, &k4, ToolExecutionStatus::Started),
            )
            .await,
        "record k4 (other run)",
    );
    ok(
        store
            .record_tool_execution(
                &t,
                &new_tool_execution(&run, &k3, ToolExecutionStatus::Started),
            )
            .await,
        "record k3",
    );
    let k2_done = new_tool_execution(&run, &k2, ToolExecutionStatus::Succeeded);
    ok(
        store.record_tool_execution(&k2_done.tenant, &k2_done).await,
        "record k2 succeeded",
    );

    let listed = ok(
        store.list_tool_executions(&t, &run.id).await,
        "list_tool_executions",
    );
    assert_eq!(
        listed
            .iter()
            .map(|e| e.idempotency_key.clone())
            .collect::<Vec<_>>(),
        vec![k1, k2, k3],
        "executions of a run are listed in the order first recorded"
    );
    assert_eq!(listed[1], k2_done, "the list shows the latest state");
    let other = ok(
        store.list_tool_executions(&t, &other_run.id).await,
        "list_tool_executions",
    );
    assert_eq!(
        other.iter().map(|e| &e.idempotency_key).collect::<Vec<_>>(),
        vec![&k4],
        "another run's executions are listed separately"
    );
    assert!(
        ok(
            store.list_tool_executions(&t, &RunId::generate()).await,
            "list_tool_executions"
        )
        .is_empty()
    );
}

/// Usage: batches are all-or-nothing, duplicate ids (stored or within the batch) are a
/// `Conflict`, listing is in time order and filters by time, agent, kind and run.
pub async fn usage_append_only(store: &dyn UsageStore) {
    let t = fresh_tenant();
    let t0 = now();
    let s = Duration::seconds;
    let (a1, a2) = (
        AgentId::from_static("support"),
        AgentId::from_static("sales"),
    );
    let (r1, r2) = (RunId::generate(), RunId::generate());
    let e0 = usage_event(&t, &a1, UsageKind::InputTokens, 100, Some(&r1), t0);
    let e1 = usage_event(&t, &a1, UsageKind::OutputTokens, 20, Some(&r1), t0 + s(1));
    let e2 = usage_event(&t, &a2, UsageKind::ToolCall, 1, Some(&r2), t0 + s(2));
    let e3 = usage_event(&t, &a2, UsageKind::InputTokens, 50, None, t0 + s(3));
    let mut e4 = usage_event(&t, &a1, UsageKind::InputTokens, 10, Some(&r2), t0 + s(4));
    e4.resource = Some("test-model".into());
    e4.cost = Some(Usd::from_nanos(1_234));
    e4.price_version = Some("2025-01".into());

    assert!(
        ok(store.list_usage(&t, &UsageQuery::all()).await, "list_usage").is_empty(),
        "a new tenant has no usage"
    );
    ok(store.append_usage(&t, &[]).await, "append_usage(empty)");
    ok(
        store.append_usage(&t, &[e2.clone(), e0.clone()]).await,
        "append_usage",
    );
    ok(
        store
            .append_usage(&t, &[e4.clone(), e1.clone(), e3.clone()])
            .await,
        "append_usage",
    );
    let all = ok(store.list_usage(&t, &UsageQuery::all()).await, "list_usage");
    let expected = vec![e0.clone(), e1.clone(), e2.clone(), e3.clone(), e4.clone()];
    assert_eq!(
        all, expected,
        "usage events round-trip, listed in time order"
    );

    // A batch with an existing id writes nothing.
    let fresh = usage_event(&t, &a1, UsageKind::ToolCall, 1, None, t0 + s(5));
    expect_err(
        store.append_usage(&t, &[fresh.clone(), e0.clone()]).await,
        ErrorKind::Conflict,
        "append_usage with an id that exists",
    );
    // A batch with a duplicate inside writes nothing.
    let dup = usage_event(&t, &a1, UsageKind::ToolCall, 1, None, t0 + s(6));
    expect_err(
        store.append_usage(&t, &[dup.clone(), dup.clone()]).await,
        ErrorKind::Conflict,
        "append_usage with the same id twice in one batch",
    );
    assert_eq!(
        ids(&ok(
            store.list_usage(&t, &UsageQuery::all()).await,
            "list_usage"
        )),
        ids(&expected),
        "a refused batch must write nothing"
    );
    ok(
        store.append_usage(&t, std::slice::from_ref(&fresh)).await,
        "append_usage(fresh) after the refused batch",
    );

    let cases: Vec<(&str, UsageQuery, Vec<&UsageEvent>)> = vec![
        (
            "all",
            UsageQuery::all(),
            vec![&e0, &e1, &e2, &e3, &e4, &fresh],
        ),
        (
            "between(t0+1s, t0+3s)",
            UsageQuery::all().between(t0 + s(1), t0 + s(3)),
            vec![&e1, &e2],
        ),
        (
            "between(t0+10s, t0+20s)",
            UsageQuery::all().between(t0 + s(10), t0 + s(20)),
            vec![],
        ),
        (
            "agent(support)",
            UsageQuery::all().agent(a1.clone()),
            vec![&e0, &e1, &e4, &fresh],
        ),
        (
            "kind(input_tokens)",
            UsageQuery::all().kind(UsageKind::InputTokens),
            vec![&e0, &e3, &e4],
        ),
        ("run(r2)", UsageQuery::all().run(r2.clone()), vec![&e2, &e4]),
        (
            "agent(support).kind(input_tokens)",
            UsageQuery::all()
                .agent(a1.clone())
                .kind(UsageKind::InputTokens),
            vec![&e0, &e4],
        ),
        (
            "run(r1).between(t0+1s, t0+10s)",
            UsageQuery::all()
                .run(r1.clone())
                .between(t0 + s(1), t0 + s(10)),
            vec![&e1],
        ),
    ];
    for (name, query, want) in cases {
        let got = ok(store.list_usage(&t, &query).await, "list_usage");
        let want: Vec<UsageEvent> = want.into_iter().cloned().collect();
        assert_eq!(ids(&got), ids(&want), "usage query {name}");
        assert_eq!(got, want, "usage query {name}: events must round-trip");
    }
}

/// Audit: sequence numbers from 1, each entry chained to the previous one, under concurrency
/// too (one chain per tenant); listing filters by kind, agent, run and time.
pub async fn audit_chain(store: &dyn AuditStore) {
    let t = fresh_tenant();
    let t0 = now();
    let run = RunId::generate();
    let agent = AgentId::from_static("support");
    let mut prev = AUDIT_GENESIS_HASH.to_string();
    let mut sequential = Vec::new();
    for i in 1..=5u64 {
        let mut entry =
            NewAuditEntry::new(t.clone(), "policy.decision", "agent:support", "crm.update");
        entry.at = t0 + Duration::seconds(i64::try_from(i).unwrap_or(i64::MAX));
        entry.decision = Some("allow".into());
        entry.input = json!({"i": i});
        if i % 2 == 1 {
            entry.run = Some(run.clone());
        } else {
            entry.kind = "tool.execution".into();
            entry.agent = Some(agent.clone());
        }
        let chained = ok(store.append_audit(&t, entry.clone()).await, "append_audit");
        assert_eq!(chained.seq, i, "sequence numbers start at 1 without gaps");
        assert_eq!(
            chained.prev_hash, prev,
            "entry {i} must chain to the previous one"
        );
        assert_eq!(chained.hash, chained.compute_hash(), "entry {i} hash");
        assert_eq!(chained.entry, entry, "entry {i} content");
        prev.clone_from(&chained.hash);
        sequential.push(chained);
    }

    let concurrent: Vec<NewAuditEntry> = (0..50)
        .map(|i| {
            let mut e = NewAuditEntry::new(t.clone(), "run.completed", "agent:support", "run");
            e.at = t0 + Duration::seconds(100);
            e.output = json!({"n": i});
            e
        })
        .collect();
    let results = join_all(
        concurrent
            .iter()
            .map(|e| store.append_audit(&e.tenant, e.clone())),
    )
    .await;
    let appended: Vec<AuditEntry> = results
        .into_iter()
        .map(|r| ok(r, "concurrent append_audit"))
        .collect();
    let assigned: BTreeSet<u64> = appended.iter().map(|e| e.seq).collect();
    assert_eq!(
        assigned,
        (6..=55).collect::<BTreeSet<u64>>(),
        "50 concurrent appends must get the distinct sequence numbers 6..=55"
    );

    let all = ok(store.list_audit(&t, &AuditQuery::all()).await, "list_audit");
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=55).collect::<Vec<u64>>(),
        "list_audit returns the whole chain in sequence order"
    );
    assert_eq!(
        verify_audit_chain(&all),
        Ok(()),
        "the chain must verify after concurrent appends"
    );
    assert_eq!(
        &all[..5],
        sequential.as_slice(),
        "listed entries equal the appended ones"
    );
    for e in &appended {
        let seq = usize::try_from(e.seq).unwrap_or(usize::MAX);
        assert_eq!(
            &all[seq - 1],
            e,
            "entry {} as returned by append_audit",
            e.seq
        );
    }

    let seqs_of = |entries: Vec<AuditEntry>| entries.iter().map(|e| e.seq).collect::<Vec<_>>();
    let kind = ok(
        store
            .list_audit(&t, &AuditQuery::all().kind("tool.execution"))
            .await,
        "list_audit(kind)",
    );
    assert_eq!(seqs_of(kind), vec![2, 4], "audit query by kind");
    let by_run = ok(
        store
            .list_audit(&t, &AuditQuery::all().run(run.clone()))
            .await,
        "list_audit(run)",
    );
    assert_eq!(seqs_of(by_run), vec![1, 3, 5], "audit query by run");
    let by_agent = ok(
        store
            .list_audit(&t, &AuditQuery::all().agent(agent.clone()))
            .await,
        "list_audit(agent)",
    );
    assert_eq!(seqs_of(by_agent), vec![2, 4], "audit query by agent");
    let window = ok(
        store
            .list_audit(
                &t,
                &AuditQuery::all().between(t0 + Duration::seconds(2), t0 + Duration::seconds(4)),
            )
            .await,
        "list_audit(between)",
    );
    assert_eq!(
        seqs_of(window),
        vec![2, 3],
        "audit query by time [from, to)"
    );
    let completed = ok(
        store
            .list_audit(&t, &AuditQuery::all().kind("run.completed"))
            .await,
        "list_audit(kind)",
    );
    assert_eq!(
        completed.len(),
        50,
        "audit query by kind (concurrent entries)"
    );

    // Every tenant has a chain of its own.
    let other = fresh_tenant();
    let first = ok(
        store
            .append_audit(
                &other,
                NewAuditEntry::new(other.clone(), "k", "user:bob", "x"),
            )
            .await,
        "append_audit (other tenant)",
    );
    assert_eq!(
        (first.seq, first.prev_hash.as_str()),
        (1, AUDIT_GENESIS_HASH),
        "a tenant's chain starts at 1 from the genesis hash"
    );
    assert_eq!(
        ok(store.list_audit(&t, &AuditQuery::all()).await, "list_audit").len(),
        55,
        "another tenant's entries are not in this chain"
    );
}

/// Counters: the conditional add is atomic (100 concurrent `+1` with limit 50 apply exactly
/// 50 times), a delta that would pass the limit is refused, releases always apply.
pub async fn counters_atomic(store: &dyn CounterStore) {
    let t = fresh_tenant();
    let key = "tokens:2025-01-01";
    assert_eq!(
        ok(store.counter_get(&t, key).await, "counter_get"),
        0,
        "a missing counter reads 0"
    );

    let results = join_all((0..100).map(|_| store.counter_add(&t, key, 1, Some(50)))).await;
    let outcomes: Vec<_> = results
        .into_iter()
        .map(|r| ok(r, "concurrent counter_add"))
        .collect();
    let applied: BTreeSet<i64> = outcomes
        .iter()
        .filter(|o| o.applied)
        .map(|o| o.value)
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| o.applied).count(),
        50,
        "exactly 50 of 100 concurrent +1 with limit 50 must apply"
    );
    assert_eq!(
        applied,
        (1..=50).collect::<BTreeSet<i64>>(),
        "applied adds return the distinct values 1..=50"
    );
    assert!(
        outcomes
            .iter()
            .filter(|o| !o.applied)
            .all(|o| o.value == 50),
        "refused adds return the unchanged value 50"
    );
    assert_eq!(ok(store.counter_get(&t, key).await, "counter_get"), 50);

    let refused = ok(
        store.counter_add(&t, key, 10, Some(55)).await,
        "counter_add",
    );
    assert!(
        !refused.applied && refused.value == 50,
        "an add past the limit is refused and changes nothing: {refused:?}"
    );
    let to_limit = ok(store.counter_add(&t, key, 5, Some(55)).await, "counter_add");
    assert!(
        to_limit.applied && to_limit.value == 55,
        "an add up to exactly the limit applies: {to_limit:?}"
    );
    let release = ok(
        store.counter_add(&t, key, -20, Some(50)).await,
        "counter_add",
    );
    assert!(
        release.applied && release.value == 35,
        "a release applies: {release:?}"
    );
    let unlimited = ok(store.counter_add(&t, key, 30, None).await, "counter_add");
    assert!(
        unlimited.applied && unlimited.value == 65,
        "without a limit an add always applies: {unlimited:?}"
    );
    let release_above = ok(
        store.counter_add(&t, key, -5, Some(10)).await,
        "counter_add",
    );
    assert!(
        release_above.applied && release_above.value == 60,
        "a release applies even when the value stays above the limit: {release_above:?}"
    );
    assert_eq!(ok(store.counter_get(&t, key).await, "counter_get"), 60);

    let other_key = "tool_calls:2025-01-01";
    assert_eq!(
        ok(store.counter_get(&t, other_key).await, "counter_get"),
        0,
        "counters are separate by key"
    );
    let first = ok(
        store.counter_add(&t, other_key, 3, Some(2)).await,
        "counter_add",
    );
    assert!(
        !first.applied && first.value == 0,
        "a first add past the limit is refused: {first:?}"
    );
    let release = ok(
        store.counter_add(&t, other_key, -4, None).await,
        "counter_add",
    );
    assert!(
        release.applied && release.value == -4,
        "releases apply even below zero: {release:?}"
    );
}

/// Long-term memory: put/get/overwrite/list (sorted by key)/delete, separate per scope.
pub async fn memory_round_trip(store: &dyn MemoryStore) {
    let t = fresh_tenant();
    let entity = MemoryScope::Entity("lead:42".into());
    let agent = MemoryScope::Agent(AgentId::from_static("support"));
    let tenant = MemoryScope::Tenant;

    assert_eq!(
        ok(store.get_memory(&t, &entity, "a").await, "get_memory"),
        None
    );
    assert!(ok(store.list_memory(&t, &entity).await, "list_memory").is_empty());

    let (va, vb, vc) = (
        json!({"tone": "formal", "n": 1}),
        json!("prefers email"),
        json!([1, 2, 3]),
    );
    for (k, v) in [("b", &vb), ("c", &vc), ("a", &va)] {
        ok(store.put_memory(&t, &entity, k, v).await, "put_memory");
    }
    assert_eq!(
        ok(store.get_memory(&t, &entity, "a").await, "get_memory"),
        Some(va.clone()),
        "a memory must round-trip"
    );
    assert_eq!(
        ok(store.list_memory(&t, &entity).await, "list_memory"),
        vec![
            ("a".to_string(), va.clone()),
            ("b".to_string(), vb.clone()),
            ("c".to_string(), vc.clone()),
        ],
        "list_memory is sorted by key"
    );

    let va2 = json!({"tone": "casual"});
    ok(
        store.put_memory(&t, &entity, "a", &va2).await,
        "put_memory (overwrite)",
    );
    assert_eq!(
        ok(store.get_memory(&t, &entity, "a").await, "get_memory"),
        Some(va2.clone()),
        "put_memory replaces the value"
    );
    assert_eq!(
        ok(store.list_memory(&t, &entity).await, "list_memory").len(),
        3,
        "overwriting does not add a key"
    );

    // Scopes are separate.
    ok(
        store.put_memory(&t, &tenant, "a", &json!(true)).await,
        "put_memory (tenant scope)",
    );
    assert_eq!(
        ok(store.get_memory(&t, &tenant, "a").await, "get_memory"),
        Some(json!(true))
    );
    assert_eq!(
        ok(store.get_memory(&t, &entity, "a").await, "get_memory"),
        Some(va2.clone()),
        "the same key in another scope is a different memory"
    );
    assert!(
        ok(store.list_memory(&t, &agent).await, "list_memory").is_empty(),
        "an unused scope is empty"
    );

    assert!(
        ok(store.delete_memory(&t, &entity, "b").await, "delete_memory"),
        "delete_memory returns true when the key existed"
    );
    assert!(
        !ok(store.delete_memory(&t, &entity, "b").await, "delete_memory"),
        "delete_memory returns false when the key is gone"
    );
    assert!(
        !ok(store.delete_memory(&t, &agent, "a").await, "delete_memory"),
        "delete_memory of a key in an unused scope returns false"
    );
    assert_eq!(
        ok(store.get_memory(&t, &entity, "b").await, "get_memory"),
        None
    );
    assert_eq!(
        ok(store.list_memory(&t, &entity).await, "list_memory"),
        vec![("a".to_string(), va2), ("c".to_string(), vc)],
    );
    assert_eq!(
        ok(store.get_memory(&t, &tenant, "a").await, "get_memory"),
        Some(json!(true)),
        "deleting in one scope leaves the others"
    );
}

/// Tenant isolation: records written in tenant A are invisible to tenant B, B cannot change
/// them (decide A's approval, update A's run, append to A's session...), and ids chosen by the
/// host (sessions, agents, idempotency keys, counter and memory keys) can be reused by B
/// independently.
pub async fn tenant_isolation(store: &dyn StateStore) {
    let a = fresh_tenant();
    let b = fresh_tenant();

    // Everything in tenant A.
    let (session, run) = setup_run(store, &a).await;
    ok(
        store
            .append_messages(
                &a,
                &session.id,
                Some(&run.id),
                &[Message::user("secret"), Message::assistant("ok")],
            )
            .await,
        "append_messages (A)",
    );
    let agent = session.agent.clone();
    let config = agent_config(&agent, 1, "A's prompt").finalized();
    ok(
        store.put_agent_config(&a, &config).await,
        "put_agent_config (A)",
    );
    let approval = new_approval(&run, "crm.delete", json!({"id": 1}), Priority::High);
    ok(
        store.create_approval(&approval.tenant, &approval).await,
        "create_approval (A)",
    );
    let key = key_of(format!("{}:1", run.id));
    let execution = new_tool_execution(&run, &key, ToolExecutionStatus::Succeeded);
    ok(
        store
            .record_tool_execution(&execution.tenant, &execution)
            .await,
        "record_tool_execution (A)",
    );
    let mut usage = usage_event(&a, &agent, UsageKind::InputTokens, 10, Some(&run.id), now());
    usage.session = Some(session.id.clone());
    ok(
        store.append_usage(&a, std::slice::from_ref(&usage)).await,
        "append_usage (A)",
    );
    ok(
        store
            .append_audit(&a, NewAuditEntry::new(a.clone(), "k", "agent:support", "x"))
            .await,
        "append_audit (A)",
    );
    ok(
        store.counter_add(&a, "budget", 40, Some(50)).await,
        "counter_add (A)",
    );
    let scope = MemoryScope::Entity("customer:acme".into());
    ok(
        store.put_memory(&a, &scope, "note", &json!("A only")).await,
        "put_memory (A)",
    );

    // Tenant B sees none of it.
    assert_eq!(
        ok(store.get_session(&b, &session.id).await, "get_session (B)"),
        None,
        "B must not see A's session"
    );
    match store
        .load_messages(&b, &session.id, MessageWindow::All)
        .await
    {
        Ok(messages) => assert!(
            messages.is_empty(),
            "B must not see A's messages, got {messages:?}"
        ),
        Err(e) => assert_eq!(
            e.kind(),
            ErrorKind::NotFound,
            "load_messages of A's session as B: empty or NotFound, got: {e}"
        ),
    }
    assert_eq!(
        ok(
            store.get_agent_config(&b, &agent, None).await,
            "get_agent_config (B)"
        ),
        None,
        "B must not see A's agent config"
    );
    assert!(
        ok(
            store.list_agent_config_versions(&b, &agent).await,
            "list_agent_config_versions (B)"
        )
        .is_empty()
    );
    assert_eq!(
        ok(store.get_run(&b, &run.id).await, "get_run (B)"),
        None,
        "B must not see A's run"
    );
    assert_eq!(
        ok(
            store.get_approval(&b, &approval.id).await,
            "get_approval (B)"
        ),
        None,
        "B must not see A's approval"
    );
    assert!(
        ok(
            store.list_pending_approvals(&b).await,
            "list_pending_approvals (B)"
        )
        .is_empty(),
        "B must not see A's pending approvals"
    );
    assert_eq!(
        ok(
            store.get_tool_execution(&b, &key).await,
            "get_tool_execution (B)"
        ),
        None,
        "B must not see A's tool execution"
    );
    assert!(
        ok(
            store.list_tool_executions(&b, &run.id).await,
            "list_tool_executions (B)"
        )
        .is_empty()
    );
    assert!(
        ok(
            store.list_usage(&b, &UsageQuery::all()).await,
            "list_usage (B)"
        )
        .is_empty(),
        "B must not see A's usage"
    );
    assert!(
        ok(
            store.list_audit(&b, &AuditQuery::all()).await,
            "list_audit (B)"
        )
        .is_empty(),
        "B must not see A's audit trail"
    );
    assert_eq!(
        ok(store.counter_get(&b, "budget").await, "counter_get (B)"),
        0,
        "B must not see A's counter"
    );
    assert_eq!(
        ok(store.get_memory(&b, &scope, "note").await, "get_memory (B)"),
        None,
        "B must not see A's memory"
    );
    assert!(ok(store.list_memory(&b, &scope).await, "list_memory (B)").is_empty());

    // Tenant B cannot change A's records.
    expect_err(
        store
            .append_messages(&b, &session.id, None, &[Message::user("intruder")])
            .await,
        ErrorKind::NotFound,
        "B appending to A's session",
    );
    expect_err(
        store
            .decide_approval(&b, &approval.id, &ApprovalDecision::approve("intruder"))
            .await,
        ErrorKind::NotFound,
        "B deciding A's approval",
    );
    let mut hijack = run.clone();
    hijack.tenant = b.clone();
    hijack.version = run.version + 1;
    hijack.reply = Some("hijacked".into());
    expect_err(
        store.update_run(&hijack.tenant, &hijack, run.version).await,
        ErrorKind::NotFound,
        "B updating A's run",
    );
    assert!(
        !ok(
            store.delete_memory(&b, &scope, "note").await,
            "delete_memory (B)"
        ),
        "B deleting A's memory must find nothing"
    );

    // Host-chosen ids are per tenant: B may use the same ones.
    let mut b_session = session.clone();
    b_session.tenant = b.clone();
    assert!(
        ok(
            store.create_session(&b_session.tenant, &b_session).await,
            "create_session (B)"
        ),
        "B may create a session with the id of A's session"
    );
    assert_eq!(
        ok(
            store
                .append_messages(&b, &session.id, None, &[Message::user("hello from B")])
                .await,
            "append_messages (B)"
        ),
        1,
        "B's session has its own sequence numbers"
    );
    ok(
        store
            .put_agent_config(&b, &agent_config(&agent, 1, "B's prompt"))
            .await,
        "B may put version 1 of an agent id that is final in A",
    );
    let mut b_execution = execution.clone();
    b_execution.tenant = b.clone();
    b_execution.status = ToolExecutionStatus::Started;
    ok(
        store
            .record_tool_execution(&b_execution.tenant, &b_execution)
            .await,
        "B may record an idempotency key that succeeded in A",
    );
    let b_add = ok(
        store.counter_add(&b, "budget", 20, Some(50)).await,
        "counter_add (B)",
    );
    assert!(
        b_add.applied && b_add.value == 20,
        "B's counter must not include A's value: {b_add:?}"
    );
    ok(
        store.put_memory(&b, &scope, "note", &json!("B's")).await,
        "put_memory (B)",
    );
    let b_audit = ok(
        store
            .append_audit(&b, NewAuditEntry::new(b.clone(), "k", "user:b", "x"))
            .await,
        "append_audit (B)",
    );
    assert_eq!(
        (b_audit.seq, b_audit.prev_hash.as_str()),
        (1, AUDIT_GENESIS_HASH),
        "B's audit chain is its own"
    );

    // A's records are intact.
    let a_messages = ok(
        store
            .load_messages(&a, &session.id, MessageWindow::All)
            .await,
        "load_messages (A)",
    );
    assert_eq!(
        texts(&a_messages),
        vec!["secret", "ok"],
        "A's messages are intact"
    );
    assert_eq!(
        ok(store.get_session(&a, &session.id).await, "get_session (A)"),
        Some(session.clone())
    );
    assert_eq!(
        ok(
            store.get_agent_config(&a, &agent, None).await,
            "get_agent_config (A)"
        ),
        Some(config)
    );
    assert_eq!(
        ok(store.get_run(&a, &run.id).await, "get_run (A)"),
        Some(run.clone()),
        "A's run is unchanged"
    );
    assert_eq!(
        ok(
            store.get_approval(&a, &approval.id).await,
            "get_approval (A)"
        ),
        Some(approval.clone()),
        "A's approval is still pending"
    );
    assert_eq!(
        ok(
            store.get_tool_execution(&a, &key).await,
            "get_tool_execution (A)"
        ),
        Some(execution)
    );
    assert_eq!(
        ok(
            store.list_usage(&a, &UsageQuery::all()).await,
            "list_usage (A)"
        ),
        vec![usage]
    );
    let a_audit = ok(
        store.list_audit(&a, &AuditQuery::all()).await,
        "list_audit (A)",
    );
    assert_eq!(a_audit.len(), 1, "A's audit trail has only A's entry");
    assert_eq!(verify_audit_chain(&a_audit), Ok(()));
    assert_eq!(
        ok(store.counter_get(&a, "budget").await, "counter_get (A)"),
        40
    );
    assert_eq!(
        ok(store.get_memory(&a, &scope, "note").await, "get_memory (A)"),
        Some(json!("A only"))
    );
    assert_eq!(
        ok(
            store.list_pending_approvals(&a).await,
            "list_pending_approvals (A)"
        ),
        vec![approval]
    );
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
}

/// An entry created with a nanosecond timestamp (as `Utc::now()` gives) still verifies after the
/// store's round trip: the chain hashes the time at the precision the store keeps.
pub async fn audit_chain_with_nanosecond_times(store: &dyn AuditStore) {
    let t = fresh_tenant();
    for i in 0..3u32 {
        let mut e = NewAuditEntry::new(t.clone(), "test", "agent:a", format!("act{i}"));
        e.at = Utc::now() + chrono::Duration::nanoseconds(i64::from(i) * 1_001 + 123);
        ok(
            store.append_audit(&t, e).await,
            "append an entry with a nanosecond time",
        );
    }
    let listed = ok(store.list_audit(&t, &AuditQuery::all()).await, "list audit");
    assert_eq!(listed.len(), 3);
    assert_eq!(
        verify_audit_chain(&listed),
        Ok(()),
        "a chain written with nanosecond times must verify after the round trip"
    );
}
