//! Idempotency claims, the governed executor over a backend, and one-tenant-per-call writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use futures::future::join_all;
use serde_json::json;

use super::support::{
    expect_err, fresh_tenant, key_of, new_session, new_tool_execution, ok, setup_run,
};
use crate::error::ErrorKind;
use crate::exec::{CallOutcome, CallRequest, ToolExecutor, ToolSet};
use crate::id::{AgentId, RunId, SessionId};
use crate::message::ToolCall;
use crate::scope::Scope;
use crate::store::{
    NewAuditEntry, StateStore, ToolClaim, ToolExecutionStatus, UsageEvent, UsageKind, UsageQuery,
};
use crate::tool::{FnTool, SideEffect, Tool, ToolSpec};

/// `claim_tool_execution` is atomic: of many concurrent claims of one key exactly one wins; a
/// `started` or `succeeded` record is never claimed again; a `failed` one is, for the same tool
/// and arguments only, with the attempt counted up.
pub async fn tool_claims_exactly_once(store: &dyn StateStore) {
    let t = fresh_tenant();
    let (_, run) = setup_run(store, &t).await;
    let key = key_of(format!("{}:claim", run.id));
    let mine = new_tool_execution(&run, &key, ToolExecutionStatus::Started);

    let claims = join_all((0..16).map(|_| store.claim_tool_execution(&t, &mine))).await;
    let mut winners = 0;
    for c in claims {
        match ok(c, "claim_tool_execution") {
            ToolClaim::Claimed { attempt } => {
                assert_eq!(attempt, 1, "the first claim is attempt 1");
                winners += 1;
            }
            ToolClaim::Existing(e) => assert_eq!(
                e.status,
                ToolExecutionStatus::Started,
                "losers see the winner's started record"
            ),
        }
    }
    assert_eq!(
        winners, 1,
        "exactly one of 16 concurrent claims of one key wins"
    );

    // Failed: claimable again (same tool and arguments), attempt 2; still exactly once.
    let mut failed = mine.clone();
    failed.status = ToolExecutionStatus::Failed;
    failed.error = Some("boom".into());
    ok(
        store.record_tool_execution(&t, &failed).await,
        "record(failed)",
    );
    let mut other_args = mine.clone();
    other_args.arguments_hash = "another-hash".into();
    assert!(
        matches!(
            ok(store.claim_tool_execution(&t, &other_args).await, "claim"),
            ToolClaim::Existing(_)
        ),
        "a failed execution is not claimed for other arguments"
    );
    let again = join_all((0..8).map(|_| store.claim_tool_execution(&t, &mine))).await;
    let attempts: Vec<u32> = again
        .into_iter()
        .filter_map(|c| match ok(c, "claim again") {
            ToolClaim::Claimed { attempt } => Some(attempt),
            ToolClaim::Existing(_) => None,
        })
        .collect();
    assert_eq!(
        attempts,
        [2],
        "a failed execution is claimed again exactly once, as attempt 2"
    );
    let stored = ok(store.get_tool_execution(&t, &key).await, "get").expect("record");
    assert_eq!(stored.status, ToolExecutionStatus::Started);
    assert_eq!(stored.attempt, 2);
    assert_eq!(stored.error, None, "a new claim clears the old error");

    // Succeeded: final, never claimed.
    let mut done = stored.clone();
    done.status = ToolExecutionStatus::Succeeded;
    done.output = Some(json!({"ok": true}).into());
    ok(
        store.record_tool_execution(&t, &done).await,
        "record(succeeded)",
    );
    match ok(
        store.claim_tool_execution(&t, &mine).await,
        "claim succeeded",
    ) {
        ToolClaim::Existing(e) => assert_eq!(*e, done, "the succeeded record is returned whole"),
        ToolClaim::Claimed { .. } => panic!("a succeeded execution was claimed again"),
    }

    // Claims are per tenant: the same key in another tenant is a different execution.
    let u = fresh_tenant();
    let (_, other_run) = setup_run(store, &u).await;
    let mut theirs = new_tool_execution(&other_run, &key, ToolExecutionStatus::Started);
    theirs.tenant = u.clone();
    assert!(
        matches!(
            ok(
                store.claim_tool_execution(&u, &theirs).await,
                "claim in another tenant"
            ),
            ToolClaim::Claimed { attempt: 1 }
        ),
        "the same key in another tenant is claimed independently"
    );
}

/// Every write takes the tenant as its first argument, and a record (or any record of a batch)
/// of another tenant is refused with `InvalidInput` before anything is written.
pub async fn writes_never_span_tenants(store: &dyn StateStore) {
    let t = fresh_tenant();
    let u = fresh_tenant();
    let session = new_session(&u);
    expect_err(
        store.create_session(&t, &session).await,
        ErrorKind::InvalidInput,
        "create_session with another tenant's record",
    );
    assert_eq!(
        ok(store.get_session(&u, &session.id).await, "get_session"),
        None,
        "a refused write wrote nothing"
    );
    let (_, run) = setup_run(store, &t).await;
    let execution = new_tool_execution(
        &run,
        &key_of(format!("{}:x", run.id)),
        ToolExecutionStatus::Started,
    );
    expect_err(
        store.claim_tool_execution(&u, &execution).await,
        ErrorKind::InvalidInput,
        "claim_tool_execution for another tenant",
    );
    expect_err(
        store.record_tool_execution(&u, &execution).await,
        ErrorKind::InvalidInput,
        "record_tool_execution for another tenant",
    );
    expect_err(
        store.create_run(&u, &run).await,
        ErrorKind::InvalidInput,
        "create_run for another tenant",
    );
    let agent = AgentId::from_static("support");
    let mixed = [
        UsageEvent::new(t.clone(), agent.clone(), UsageKind::ToolCall, 1),
        UsageEvent::new(u.clone(), agent.clone(), UsageKind::ToolCall, 1),
    ];
    expect_err(
        store.append_usage(&t, &mixed).await,
        ErrorKind::InvalidInput,
        "a usage batch mixing two tenants",
    );
    for tenant in [&t, &u] {
        assert!(
            ok(
                store.list_usage(tenant, &UsageQuery::all()).await,
                "list_usage"
            )
            .is_empty(),
            "a refused usage batch wrote nothing"
        );
    }
    expect_err(
        store
            .append_audit(&t, NewAuditEntry::new(u.clone(), "k", "user:x", "y"))
            .await,
        ErrorKind::InvalidInput,
        "append_audit with another tenant's entry",
    );
}

fn counting_tool(calls: Arc<AtomicU32>) -> Arc<dyn Tool> {
    Arc::new(FnTool::new(
        ToolSpec::new(
            "payments.charge",
            "Charges a card",
            json!({"type": "object", "properties": {"amount": {"type": "integer"}}}),
        )
        .with_side_effect(SideEffect::External),
        move |_ctx, args| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok(json!({"charged": args["amount"]}))
            }
        },
    ))
}

/// The governed executor over this backend: concurrent executions of one key run the tool
/// once; a replay with other arguments is [`ErrorKind::IdempotencyConflict`] and runs nothing.
pub async fn executor_runs_each_key_once(store: Arc<dyn StateStore>) {
    let t = fresh_tenant();
    let (session, run) = setup_run(&*store, &t).await;
    let calls = Arc::new(AtomicU32::new(0));
    let tools = ToolSet::new([counting_tool(calls.clone())]).expect("tool set");
    let executor = ToolExecutor::builder(tools, store.clone()).build();
    let scope = Scope::new(
        t.clone(),
        session.agent.clone(),
        session.id.clone(),
        run.id.clone(),
    );
    let key = key_of(format!("{}:1:0", run.id));
    let call = ToolCall::new("c1", "payments.charge", json!({"amount": 40}));
    let request = CallRequest::new(scope.clone(), call.clone(), key.clone());

    let outcomes = join_all((0..8).map(|_| executor.execute(request.clone()))).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "8 concurrent executions of one key ran the tool once"
    );
    let mut ran = 0;
    for o in outcomes {
        match ok(o, "execute") {
            CallOutcome::Succeeded {
                replayed: false, ..
            } => ran += 1,
            CallOutcome::Succeeded { replayed: true, .. } | CallOutcome::InDoubt { .. } => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(ran, 1, "exactly one execution reports that it ran");
    match ok(executor.execute(request.clone()).await, "execute again") {
        CallOutcome::Succeeded { output, replayed } => {
            assert!(replayed, "a finished key is replayed");
            assert_eq!(output, json!({"charged": 40}));
        }
        other => panic!("unexpected outcome {other:?}"),
    }

    let changed = ToolCall::new("c1", "payments.charge", json!({"amount": 4000}));
    expect_err(
        executor
            .execute(CallRequest::new(scope.clone(), changed, key.clone()))
            .await,
        ErrorKind::IdempotencyConflict,
        "a replay with changed arguments",
    );
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a conflicting replay ran nothing"
    );

    // One execution record, one metered usage event and one audit entry for the one run.
    let executions = ok(
        store.list_tool_executions(&t, &run.id).await,
        "list executions",
    );
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].status, ToolExecutionStatus::Succeeded);
    let usage = ok(
        store
            .list_usage(&t, &UsageQuery::all().kind(UsageKind::ToolCall))
            .await,
        "list usage",
    );
    assert_eq!(usage.len(), 1, "only the execution that ran is metered");
    let other_scope = Scope::new(
        fresh_tenant(),
        AgentId::from_static("support"),
        SessionId::from_static("s"),
        RunId::generate(),
    );
    assert!(
        ok(
            store
                .list_tool_executions(&other_scope.tenant, &run.id)
                .await,
            "list in another tenant"
        )
        .is_empty()
    );
}

/// Every executor check ([`run_all`](super::run_all) covers the store-only ones).
pub async fn run_executor_checks(store: Arc<dyn StateStore>) {
    executor_runs_each_key_once(store).await;
}
