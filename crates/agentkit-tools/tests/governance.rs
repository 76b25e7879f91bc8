//! Metadata enforcement: timeouts, per-tenant rate limits, retries of idempotent tools,
//! cancellation, and the registry's own idempotent execution path.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use agentkit_core::id::{IdempotencyKey, TenantId};
use agentkit_core::store::{InMemoryStore, ToolExecutionStatus, ToolExecutionStore};
use agentkit_core::tool::{SideEffect, Tool, ToolContext};
use agentkit_core::{Error, ErrorKind};
use agentkit_tools::{GovernedTool, RateLimit, RetryPolicy, ToolMetadata, ToolRegistry};
use serde_json::{Value, json};

fn ctx_for(tenant: &str, key: &str) -> ToolContext {
    ToolContext::new(
        agentkit_core::testkit::scope(tenant, "agent", "s1", "run-1"),
        "call_1",
        IdempotencyKey::new(key).unwrap(),
    )
}

fn ctx(tenant: &str) -> ToolContext {
    ctx_for(tenant, "run-1:1:0")
}

fn counting(
    meta: ToolMetadata,
    behaviour: impl Fn(usize) -> agentkit_core::Result<Value> + Send + Sync + 'static,
) -> (GovernedTool, Arc<AtomicUsize>) {
    counting_with(meta, json!({"type": "object"}), behaviour)
}

fn counting_with(
    meta: ToolMetadata,
    parameters: Value,
    behaviour: impl Fn(usize) -> agentkit_core::Result<Value> + Send + Sync + 'static,
) -> (GovernedTool, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let behaviour = Arc::new(behaviour);
    let tool = GovernedTool::from_json(meta, parameters, move |_ctx, _args| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        let behaviour = behaviour.clone();
        async move { behaviour(n) }
    })
    .unwrap();
    (tool, calls)
}

#[tokio::test(start_paused = true)]
async fn a_slow_tool_times_out() {
    let tool = GovernedTool::from_json(
        ToolMetadata::new("crm.export", "Exports everything")
            .with_timeout(Duration::from_millis(200)),
        json!({"type": "object"}),
        |_ctx, _args| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(json!("done"))
        },
    )
    .unwrap();
    let started = tokio::time::Instant::now();
    let err = tool.call(ctx("acme"), json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(
        err.to_string(),
        "timed out: tool `crm.export` did not finish within 200 ms"
    );
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[tokio::test]
async fn rate_limits_are_per_tenant_and_tool() {
    let meta = |name: &str| {
        ToolMetadata::new(name, "Sends an SMS")
            .with_side_effect(SideEffect::External)
            .with_rate_limit(RateLimit::per_minute(2))
    };
    let (sms, calls) = counting(meta("sms.send"), |_| Ok(json!("sent")));
    let (other, _) = counting(meta("sms.send_bulk"), |_| Ok(json!("sent")));
    sms.call(ctx("acme"), json!({})).await.unwrap();
    sms.call(ctx("acme"), json!({})).await.unwrap();
    let err = sms.call(ctx("acme"), json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    let wait = err.retry_after().unwrap();
    assert!(
        wait > Duration::from_secs(20) && wait <= Duration::from_secs(30),
        "{wait:?}"
    );
    assert!(err.to_string().contains("`sms.send`"), "{err}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "a limited call does not run"
    );
    // Another tenant has its own budget for the same tool...
    sms.call(ctx("globex"), json!({})).await.unwrap();
    sms.call(ctx("globex"), json!({})).await.unwrap();
    // ...and another tool its own budget for the same tenant.
    other.call(ctx("acme"), json!({})).await.unwrap();
    // Clones share the limiter (the registry hands out clones of one tool).
    let clone = sms.clone();
    assert!(clone.call(ctx("acme"), json!({})).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn idempotent_tools_retry_retryable_errors() {
    let meta = ToolMetadata::new("crm.lookup", "Looks up")
        .with_retry(RetryPolicy::retries(3).without_jitter());
    let (tool, calls) = counting(meta, |n| {
        if n < 3 {
            Err(Error::Unavailable {
                message: format!("attempt {n}: connection reset"),
                source: None,
            })
        } else {
            Ok(json!({"attempt": n}))
        }
    });
    let out = tool.call(ctx("acme"), json!({})).await.unwrap();
    assert_eq!(out, json!({"attempt": 3}));
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // Errors that are not retryable are returned at once.
    let meta = ToolMetadata::new("crm.lookup2", "Looks up").with_retry(RetryPolicy::retries(3));
    let (tool, calls) = counting(meta, |_| Err(Error::Tool("no such lead".into())));
    assert!(tool.call(ctx("acme"), json!({})).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_tool_that_is_not_idempotent_cannot_declare_retries() {
    let err = GovernedTool::from_json(
        ToolMetadata::new("billing.charge", "Charges")
            .with_side_effect(SideEffect::External)
            .with_retry(RetryPolicy::retries(2)),
        json!({"type": "object"}),
        |_ctx, _args| async move { Ok(json!(null)) },
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(
        err.to_string().contains("needs an idempotent tool"),
        "{err}"
    );
}

#[tokio::test]
async fn a_cancelled_call_stops() {
    let tool = GovernedTool::from_json(
        ToolMetadata::new("crm.export", "Exports"),
        json!({"type": "object"}),
        |_ctx, _args| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(json!("done"))
        },
    )
    .unwrap();
    let c = ctx("acme");
    let token = c.cancellation.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        token.cancel();
    });
    let err = tool.call(c, json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
}

#[tokio::test]
async fn the_registry_executes_once_per_idempotency_key() {
    let (tool, calls) = counting_with(
        ToolMetadata::new("crm.create_lead", "Creates")
            .with_side_effect(SideEffect::Write)
            .with_redacted(["email"]),
        json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
            "required": ["name", "email"]
        }),
        |n| Ok(json!({"id": n, "email": "ada@example.com"})),
    );
    let registry = ToolRegistry::builder().register(tool).build().unwrap();
    let store = InMemoryStore::new();
    let executor = registry.executor(Arc::new(store.clone())).build();
    let args = json!({"name": "Ada", "email": "ada@example.com"});

    let first = registry
        .execute(
            &executor,
            ctx_for("acme", "host:1"),
            "crm.create_lead",
            args.clone(),
        )
        .await
        .unwrap();
    assert!(!first.replayed);
    assert_eq!(first.output["id"], 1);
    let second = registry
        .execute(
            &executor,
            ctx_for("acme", "host:1"),
            "crm.create_lead",
            args.clone(),
        )
        .await
        .unwrap();
    assert!(second.replayed);
    assert_eq!(second.output, json!({"id": 1, "email": "[REDACTED]"}));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Keys are per tenant: the same key in another tenant is another execution.
    registry
        .execute(
            &executor,
            ctx_for("globex", "host:1"),
            "crm.create_lead",
            args,
        )
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let record = store
        .get_tool_execution(
            &TenantId::from_static("acme"),
            &IdempotencyKey::from_static("host:1"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, ToolExecutionStatus::Succeeded);
    assert_eq!(record.input["email"], "[REDACTED]");

    // Invalid arguments are refused before running, naming each failing field.
    let err = registry
        .execute(
            &executor,
            ctx_for("acme", "host:2"),
            "crm.create_lead",
            json!({"name": 1}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("/name: 1 is not of type \"string\""), "{err}");
    assert!(err.contains("\"email\" is a required property"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
