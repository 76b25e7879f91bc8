//! An agent as a tool of another agent.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::agent::{Agent, RunRequest};
use agentkit_core::id::{IdempotencyKey, SessionId, TenantId};
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::store::{InMemoryStore, RunStatus, RunStore, SessionStore, StateStore};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_core::tool::{FnTool, SideEffect, Tool, ToolContext, ToolSpec};
use agentkit_tools::{AgentTool, ToolMetadata};
use serde_json::json;

fn researcher(store: &Arc<InMemoryStore>, model: Arc<ScriptedModel>) -> Agent {
    Agent::builder()
        .id("researcher")
        .model(model, "scripted")
        .store(store.clone() as Arc<dyn StateStore>)
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_inner_agent_answers_in_a_child_session() {
    let store = Arc::new(InMemoryStore::new());
    let inner_model = Arc::new(ScriptedModel::new([ScriptedResponse::text(
        "The capital of France is Paris.",
    )]));
    let tool = AgentTool::new(
        ToolMetadata::new("agents.researcher", "Answers research questions"),
        researcher(&store, inner_model.clone()),
    )
    .unwrap();
    assert_eq!(
        tool.spec().parameters["required"],
        json!(["input"]),
        "the arguments are {{input: string}}"
    );
    let outer_model = Arc::new(ScriptedModel::new([
        ScriptedResponse::tool_call("agents.researcher", json!({"input": "Capital of France?"})),
        ScriptedResponse::text("Paris."),
    ]));
    let agent = Agent::builder()
        .id("concierge")
        .model(outer_model.clone(), "scripted")
        .tool(Arc::new(tool))
        .store(store.clone() as Arc<dyn StateStore>)
        .build()
        .unwrap();
    let outcome = agent
        .run(RunRequest::new(
            "acme",
            "s1",
            "What is the capital of France?",
        ))
        .await
        .unwrap();
    let report = outcome.report().unwrap();
    assert_eq!(report.reply, "Paris.");
    let result: serde_json::Value = serde_json::from_str(&report.tool_calls[0].result).unwrap();
    assert_eq!(result["status"], "completed");
    assert_eq!(result["reply"], "The capital of France is Paris.");

    // The inner run lives in a child session of the parent's, with a run id derived from the
    // call's idempotency key.
    let tenant = TenantId::from_static("acme");
    let child = SessionId::from_static("s1/researcher");
    assert!(store.get_session(&tenant, &child).await.unwrap().is_some());
    let inner_run = result["run"].as_str().unwrap();
    assert_eq!(inner_run, format!("{}:1:0/researcher", report.run));
    assert_eq!(inner_model.calls(), 1);
}

#[tokio::test]
async fn a_suspended_inner_run_is_reported_and_not_run_twice() {
    let store = Arc::new(InMemoryStore::new());
    let delete = Arc::new(FnTool::new(
        ToolSpec::new(
            "crm.delete_lead",
            "Deletes a lead",
            json!({"type": "object"}),
        )
        .with_side_effect(SideEffect::Write),
        |_ctx, _args| async move { Ok(json!("deleted")) },
    ));
    let inner_model = Arc::new(ScriptedModel::new([ScriptedResponse::tool_call(
        "crm.delete_lead",
        json!({"id": 7}),
    )]));
    let inner = Agent::builder()
        .id("cleaner")
        .model(inner_model.clone(), "scripted")
        .tool(delete)
        .policy(
            AllowListPolicy::allow_all()
                .require_approval_for(["crm.delete_*"])
                .into_arc(),
        )
        .store(store.clone() as Arc<dyn StateStore>)
        .build()
        .unwrap();
    let tool = AgentTool::new(
        ToolMetadata::new("agents.cleaner", "Cleans up the CRM"),
        inner,
    )
    .unwrap();
    assert_eq!(
        tool.spec().side_effect,
        SideEffect::Write,
        "at least as strong as the inner agent's tools"
    );
    let ctx = ToolContext::new(
        agentkit_core::testkit::scope("acme", "concierge", "s1", "parent-run"),
        "call_1",
        IdempotencyKey::from_static("parent-run:1:0"),
    );
    let out = tool
        .call(ctx.clone(), json!({"input": "delete lead 7"}))
        .await
        .unwrap();
    assert_eq!(out["status"], "suspended");
    assert_eq!(out["approvals"][0]["tool"], "crm.delete_lead");
    let message = out["message"].as_str().unwrap();
    assert!(
        message.contains("waiting for a human to approve 1 of its actions"),
        "{message}"
    );
    let run = store
        .get_run(
            &TenantId::from_static("acme"),
            &agentkit_core::id::RunId::from_static("parent-run:1:0/cleaner"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.status, RunStatus::Suspended);

    // The same call again (a retry, a replay): reported from the record, nothing runs.
    let again = tool
        .call(ctx, json!({"input": "delete lead 7"}))
        .await
        .unwrap();
    assert_eq!(again["status"], "suspended");
    assert_eq!(
        again["approvals"][0]["approval"],
        out["approvals"][0]["approval"]
    );
    assert_eq!(inner_model.calls(), 1);
}
