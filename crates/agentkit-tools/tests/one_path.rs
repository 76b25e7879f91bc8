//! One governed path: the same tool call run by an agent (the model proposes it) and by the host
//! through the registry leaves identical execution, priced usage and audit records.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::id::{IdempotencyKey, RunId, TenantId};
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::prelude::*;
use agentkit_core::store::{
    AuditQuery, InMemoryStore, ToolExecutionStatus, UsageEvent, UsageKind, UsageMeter, UsageQuery,
    Usd,
};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse, scope};
use agentkit_tools::ToolRegistry;
use async_trait::async_trait;
use serde_json::{Value, json};

/// Prices every tool call at $0.25 (and nothing else), like a price table would.
struct FlatToolPrice;

#[async_trait]
impl UsageMeter for FlatToolPrice {
    async fn meter(&self, events: &mut [UsageEvent]) -> agentkit_core::Result<()> {
        for e in events.iter_mut().filter(|e| e.kind == UsageKind::ToolCall) {
            e.cost = Some(Usd::from_nanos(250_000_000));
            e.price_version = Some("flat-1".into());
        }
        Ok(())
    }
}

fn registry() -> ToolRegistry {
    let tool: Arc<dyn Tool> = Arc::new(FnTool::new(
        ToolSpec::new(
            "crm.create_lead",
            "Creates a lead",
            json!({
                "type": "object",
                "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
                "required": ["name", "email"]
            }),
        )
        .with_side_effect(SideEffect::Write)
        .with_redacted(["email"]),
        |_ctx, args| async move { Ok(json!({"id": 42, "name": args["name"]})) },
    ));
    ToolRegistry::builder().register(tool).build().unwrap()
}

/// What the records say, without ids, times and the tenant (which differ by construction).
async fn records(store: &Arc<dyn StateStore>, tenant: &TenantId) -> (Value, Value, Value) {
    let usage: Vec<Value> = store
        .list_usage(tenant, &UsageQuery::all().kind(UsageKind::ToolCall))
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            json!({"agent": e.agent, "kind": e.kind, "resource": e.resource,
                   "quantity": e.quantity, "cost": e.cost.map(Usd::nanos),
                   "price_version": e.price_version})
        })
        .collect();
    let audit: Vec<Value> = store
        .list_audit(tenant, &AuditQuery::all().kind("tool.call"))
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let e = e.entry;
            json!({"actor": e.actor, "action": e.action, "decision": e.decision,
                   "reason": e.reason, "agent": e.agent, "input": e.input, "output": e.output})
        })
        .collect();
    let run = RunId::from_static("run-1");
    let executions: Vec<Value> = store
        .list_tool_executions(tenant, &run)
        .await
        .unwrap()
        .into_iter()
        .map(|x| {
            assert_eq!(x.status, ToolExecutionStatus::Succeeded);
            json!({"key": x.idempotency_key, "agent": x.agent, "tool": x.tool,
                   "arguments_hash": x.arguments_hash, "attempt": x.attempt,
                   "input": x.input, "output": x.output, "status": x.status})
        })
        .collect();
    (json!(executions), json!(usage), json!(audit))
}

#[tokio::test]
async fn agent_and_registry_leave_identical_records() {
    let registry = registry();
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let policy = AllowListPolicy::new(["crm.*"]).into_arc();
    let meter: Arc<dyn UsageMeter> = Arc::new(FlatToolPrice);
    let args = json!({"name": "Ada", "email": "ada@example.com"});

    // Through the agent loop, in tenant `by-agent`: the key is `run-1:1:0`.
    let model = Arc::new(ScriptedModel::new([
        ScriptedResponse::tool_call("crm.create_lead", args.clone()),
        ScriptedResponse::text("Lead 42 created."),
    ]));
    let agent = Agent::builder()
        .id("sales")
        .model(model, "scripted")
        .tools(registry.for_agent(&agentkit_tools::Allowlist::new(["crm.*"])))
        .policy(policy.clone())
        .meter(meter.clone())
        .store(store.clone())
        .build()
        .unwrap();
    agent
        .run(RunRequest::new("by-agent", "s1", "add Ada").with_run_id(RunId::from_static("run-1")))
        .await
        .unwrap();

    // Through the registry, in tenant `by-host`, with the same key, policy and meter.
    let executor = registry
        .executor(store.clone())
        .policy(policy)
        .meter(Some(meter))
        .build();
    let ctx = ToolContext::new(
        scope("by-host", "sales", "s1", "run-1"),
        "call-1",
        IdempotencyKey::from_static("run-1:1:0"),
    );
    let done = registry
        .execute(&executor, ctx, "crm.create_lead", args)
        .await
        .unwrap();
    assert!(!done.replayed);

    let by_agent = records(&store, &TenantId::from_static("by-agent")).await;
    let by_host = records(&store, &TenantId::from_static("by-host")).await;
    assert_eq!(by_agent.0.as_array().unwrap().len(), 1, "{:#}", by_agent.0);
    assert_eq!(
        by_agent.1.as_array().unwrap().len(),
        1,
        "one priced tool_call event"
    );
    assert_eq!(
        by_agent.1[0]["cost"], 250_000_000,
        "the agent's tool call is priced"
    );
    assert_eq!(by_agent.2.as_array().unwrap().len(), 1);
    assert_eq!(by_agent.0, by_host.0, "execution records");
    assert_eq!(by_agent.1, by_host.1, "usage events (priced)");
    assert_eq!(by_agent.2, by_host.2, "audit entries");
    assert_eq!(by_host.0[0]["input"]["email"], "[REDACTED]");
}
