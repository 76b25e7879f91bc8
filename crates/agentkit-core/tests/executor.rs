//! The governed executor through the public API: refusals are audited, a call left in doubt is
//! never silently re-run (a human resolves it; idempotent tools retry once it is stale), and a
//! call that outlives its timeout fails and is recorded as failed.
#![cfg(feature = "testkit")]
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use agentkit_core::exec::{
    CallOutcome, CallRequest, InDoubtResolution, RefusalKind, ToolExecutor, ToolSet,
};
use agentkit_core::id::{IdempotencyKey, TenantId};
use agentkit_core::message::ToolCall;
use agentkit_core::policy::CallCounters;
use agentkit_core::redact::hash_json;
use agentkit_core::scope::Scope;
use agentkit_core::store::{
    AuditQuery, InMemoryStore, StateStore, ToolClaim, ToolExecution, ToolExecutionStatus,
};
use agentkit_core::testkit::scope;
use agentkit_core::tool::{FnTool, SideEffect, Tool, ToolSpec};
use agentkit_core::{ErrorKind, SharedJson};
use serde_json::{Value, json};

fn charge_tool(calls: Arc<AtomicU32>, idempotent: bool, delay: Duration) -> Arc<dyn Tool> {
    Arc::new(FnTool::new(
        ToolSpec::new(
            "payments.charge",
            "Charges a card",
            json!({
                "type": "object",
                "properties": {"amount": {"type": "integer"}, "card": {"type": "string"}},
                "required": ["amount"]
            }),
        )
        .with_side_effect(SideEffect::External)
        .with_idempotent(idempotent)
        .with_redacted(["card"]),
        move |_ctx, args| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(delay).await;
                Ok(json!({"charged": args["amount"]}))
            }
        },
    ))
}

struct Fixture {
    store: Arc<dyn StateStore>,
    calls: Arc<AtomicU32>,
    scope: Scope,
}

fn fixture() -> Fixture {
    Fixture {
        store: Arc::new(InMemoryStore::new()),
        calls: Arc::new(AtomicU32::new(0)),
        scope: scope("acme", "billing", "s1", "run-1"),
    }
}

fn request(scope: &Scope, key: &str, arguments: Value) -> CallRequest {
    CallRequest::new(
        scope.clone(),
        ToolCall::new("call-1", "payments.charge", arguments),
        IdempotencyKey::new(key).unwrap(),
    )
}

async fn audit_kinds(store: &Arc<dyn StateStore>) -> Vec<(String, Option<String>)> {
    store
        .list_audit(&TenantId::from_static("acme"), &AuditQuery::all())
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.entry.kind, e.entry.decision))
        .collect()
}

/// What a process that died during a call leaves: the claim of key `run-1:1:0`, `started`.
async fn crash_mid_call(f: &Fixture, args: &Value) {
    let crashed = ToolExecution::started(
        &f.scope,
        IdempotencyKey::from_static("run-1:1:0"),
        "call-1",
        "payments.charge",
        args.clone(),
        hash_json(args),
    );
    let claim = f
        .store
        .claim_tool_execution(&f.scope.tenant, &crashed)
        .await
        .unwrap();
    assert_eq!(claim, ToolClaim::Claimed { attempt: 1 });
}

#[tokio::test]
async fn refusals_before_the_policy_are_audited_and_run_nothing() {
    let f = fixture();
    let tools = ToolSet::new([charge_tool(f.calls.clone(), false, Duration::ZERO)]).unwrap();
    let executor = ToolExecutor::builder(tools, f.store.clone())
        .max_calls_per_turn(1)
        .build();

    let unknown = CallRequest::new(
        f.scope.clone(),
        ToolCall::new("c", "payments.refund", json!({"card": "4111 1111"})),
        IdempotencyKey::from_static("k-unknown"),
    );
    match executor.execute(unknown).await.unwrap() {
        CallOutcome::Refused { kind, message } => {
            assert_eq!(kind, RefusalKind::UnknownTool);
            assert!(message.contains("payments.charge"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let invalid = request(
        &f.scope,
        "k-invalid",
        json!({"amount": "ten", "card": "4111"}),
    );
    assert!(matches!(
        executor.execute(invalid).await.unwrap(),
        CallOutcome::Refused {
            kind: RefusalKind::InvalidArguments,
            ..
        }
    ));
    let second = request(&f.scope, "k-cap", json!({"amount": 1})).with_counters(CallCounters {
        calls_this_turn: 2,
        calls_this_run: 2,
        identical_calls_this_run: 0,
    });
    assert!(matches!(
        executor.execute(second).await.unwrap(),
        CallOutcome::Refused {
            kind: RefusalKind::TooManyCalls,
            ..
        }
    ));
    assert_eq!(f.calls.load(Ordering::SeqCst), 0, "nothing ran");

    let audit = f
        .store
        .list_audit(&TenantId::from_static("acme"), &AuditQuery::all())
        .await
        .unwrap();
    assert_eq!(audit.len(), 3, "each refusal is audited");
    assert!(audit.iter().all(|e| e.entry.kind == "tool.refused"));
    // The unknown tool's arguments are kept only as a hash (no redaction rules are known).
    assert_eq!(
        audit[0].entry.input,
        json!({"arguments_hash": hash_json(&json!({"card": "4111 1111"}))})
    );
    // A known tool's arguments pass through its redaction rules.
    assert_eq!(audit[1].entry.input["card"], "[REDACTED]");
    assert!(
        audit[2]
            .entry
            .reason
            .as_deref()
            .unwrap()
            .starts_with("too_many_calls")
    );
}

/// A claim left `started` (the process died mid-call) stands for an effect that may have
/// happened: a non-idempotent tool is not run again until a person resolves it.
#[tokio::test]
async fn a_call_in_doubt_waits_for_a_human_then_runs_once_more() {
    let f = fixture();
    let tools = ToolSet::new([charge_tool(f.calls.clone(), false, Duration::ZERO)]).unwrap();
    let executor = ToolExecutor::builder(tools, f.store.clone())
        .in_doubt_after(Duration::ZERO)
        .build();
    let args = json!({"amount": 40});
    crash_mid_call(&f, &args).await;
    let tenant = f.scope.tenant.clone();

    match executor
        .execute(request(&f.scope, "run-1:1:0", args.clone()))
        .await
        .unwrap()
    {
        CallOutcome::InDoubt { execution } => assert_eq!(execution.attempt, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        f.calls.load(Ordering::SeqCst),
        0,
        "not re-run while in doubt"
    );

    let key = IdempotencyKey::from_static("run-1:1:0");
    let resolved = executor
        .resolve_in_doubt(
            &tenant,
            &key,
            InDoubtResolution::NotRun {
                note: "no charge in the payment provider".into(),
            },
            "alice",
        )
        .await
        .unwrap();
    assert_eq!(resolved.status, ToolExecutionStatus::Failed);
    let again = executor
        .resolve_in_doubt(
            &tenant,
            &key,
            InDoubtResolution::NotRun { note: "x".into() },
            "bob",
        )
        .await
        .unwrap_err();
    assert_eq!(
        again.kind(),
        ErrorKind::Conflict,
        "only an execution in doubt is resolved"
    );

    assert!(matches!(
        executor
            .execute(request(&f.scope, "run-1:1:0", args))
            .await
            .unwrap(),
        CallOutcome::Succeeded {
            replayed: false,
            ..
        }
    ));
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    let record = f
        .store
        .get_tool_execution(&tenant, &key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.attempt, 2);
    assert_eq!(record.status, ToolExecutionStatus::Succeeded);
    let kinds = audit_kinds(&f.store).await;
    assert!(kinds.contains(&("tool.resolved".into(), Some("failed".into()))));
}

/// A call's redacted input and output are one value in its execution record and its audit
/// entry: an in-memory store keeps every record for the life of the process, so a copy would
/// be kept twice (a small JSON object is over 600 bytes).
#[tokio::test]
async fn a_calls_execution_record_and_audit_entry_share_its_input_and_output() {
    let f = fixture();
    let tools = ToolSet::new([charge_tool(f.calls.clone(), false, Duration::ZERO)]).unwrap();
    let executor = ToolExecutor::builder(tools, f.store.clone()).build();
    let outcome = executor
        .execute(request(
            &f.scope,
            "run-1:1:0",
            json!({"amount": 40, "card": "4242424242424242"}),
        ))
        .await
        .unwrap();
    assert!(
        matches!(outcome, CallOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    let tenant = &f.scope.tenant;
    let record = f
        .store
        .get_tool_execution(tenant, &IdempotencyKey::from_static("run-1:1:0"))
        .await
        .unwrap()
        .unwrap();
    let audit = f
        .store
        .list_audit(tenant, &AuditQuery::all().kind("tool.call"))
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    let entry = &audit[0].entry;
    assert_eq!(record.input, json!({"amount": 40, "card": "[REDACTED]"}));
    assert_eq!(record.output, Some(json!({"charged": 40}).into()));
    assert!(SharedJson::ptr_eq(&record.input, &entry.input));
    assert!(SharedJson::ptr_eq(
        record.output.as_ref().unwrap(),
        &entry.output
    ));
}

#[tokio::test]
async fn an_in_doubt_call_resolved_as_succeeded_is_replayed() {
    let f = fixture();
    let tools = ToolSet::new([charge_tool(f.calls.clone(), false, Duration::ZERO)]).unwrap();
    let executor = ToolExecutor::builder(tools, f.store.clone()).build();
    let args = json!({"amount": 40});
    let key = IdempotencyKey::from_static("run-1:1:0");
    crash_mid_call(&f, &args).await;
    executor
        .resolve_in_doubt(
            &f.scope.tenant,
            &key,
            InDoubtResolution::Succeeded {
                output: json!({"charged": 40}),
            },
            "alice",
        )
        .await
        .unwrap();
    match executor
        .execute(request(&f.scope, "run-1:1:0", args))
        .await
        .unwrap()
    {
        CallOutcome::Succeeded { output, replayed } => {
            assert!(replayed);
            assert_eq!(output, json!({"charged": 40}));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(f.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_idempotent_call_in_doubt_is_retried_once_stale() {
    let f = fixture();
    let tools = ToolSet::new([charge_tool(f.calls.clone(), true, Duration::ZERO)]).unwrap();
    let executor = ToolExecutor::builder(tools, f.store.clone())
        .in_doubt_after(Duration::ZERO)
        .build();
    let args = json!({"amount": 5});
    crash_mid_call(&f, &args).await;
    assert!(matches!(
        executor
            .execute(request(&f.scope, "run-1:1:0", args))
            .await
            .unwrap(),
        CallOutcome::Succeeded {
            replayed: false,
            ..
        }
    ));
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    let record = f
        .store
        .get_tool_execution(&f.scope.tenant, &IdempotencyKey::from_static("run-1:1:0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.attempt, 2, "the abandoned attempt is counted");
}

#[tokio::test(start_paused = true)]
async fn a_call_past_its_timeout_fails_and_is_recorded_failed() {
    let f = fixture();
    let tools =
        ToolSet::new([charge_tool(f.calls.clone(), false, Duration::from_secs(60))]).unwrap();
    let executor = ToolExecutor::builder(tools, f.store.clone())
        .timeout(Duration::from_secs(5))
        .build();
    match executor
        .execute(request(&f.scope, "run-1:1:0", json!({"amount": 1})))
        .await
        .unwrap()
    {
        CallOutcome::Failed { error } => assert_eq!(error.kind(), ErrorKind::Timeout),
        other => panic!("{other:?}"),
    }
    let record = f
        .store
        .get_tool_execution(&f.scope.tenant, &IdempotencyKey::from_static("run-1:1:0"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, ToolExecutionStatus::Failed);
}
