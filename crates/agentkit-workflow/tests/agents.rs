//! Agent nodes: an agent turn on the run's context; when the agent's policy holds a tool call
//! for approval, the workflow waits for that decision and then continues the same agent run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use agentkit_core::agent::Agent;
use agentkit_core::exec::{ToolExecutor, ToolSet};
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::store::{ApprovalDecision, InMemoryStore, StateStore};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_core::tool::{FnTool, SideEffect, Tool, ToolSpec};
use agentkit_workflow::{InMemoryWorkflowStore, RunState, StartRequest, Wait, Workflows};
use serde_json::json;

#[tokio::test]
async fn an_agent_node_waits_for_its_agents_approval_and_continues() {
    let state: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let launched = Arc::new(Mutex::new(Vec::new()));
    let seen = launched.clone();
    let launch: Arc<dyn Tool> = Arc::new(FnTool::new(
        ToolSpec::new("ads.launch", "launches ads", json!({"type": "object"}))
            .with_side_effect(SideEffect::External),
        move |_ctx, args| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap().push(args);
                Ok(json!({"ad": "ad-1"}))
            }
        },
    ));
    let model = Arc::new(ScriptedModel::new([
        ScriptedResponse::tool_call("ads.launch", json!({"budget": 50})),
        ScriptedResponse::text("Launched ad-1."),
    ]));
    let marketer = Agent::builder()
        .id("marketer")
        .system_prompt("You launch campaigns.")
        .model(model, "scripted")
        .tool(launch)
        .policy(
            AllowListPolicy::new(["ads.*"])
                .require_approval_for(["ads.launch"])
                .into_arc(),
        )
        .store(state.clone())
        .build()
        .unwrap();
    let engine = Workflows::builder(Arc::new(InMemoryWorkflowStore::new()))
        .executor(ToolExecutor::builder(ToolSet::default(), state.clone()).build())
        .agent(marketer)
        .build();
    let def = serde_json::from_value(json!({
        "id": "campaign", "version": 1, "start": "plan", "inputs": ["product"],
        "nodes": [
            {"id": "plan", "kind": "agent", "agent": "marketer", "input": "Launch ads for ${product}"},
            {"id": "done", "kind": "transform", "set": {"reply": "${plan.reply}"}}
        ],
        "edges": [{"from": "plan", "to": "done"}]
    }))
    .unwrap();
    engine.publish("acme", &def).await.unwrap();
    let run = engine
        .start(
            "acme",
            StartRequest::new("campaign", json!({"product": "chips"})).unwrap(),
        )
        .await
        .unwrap()
        .run()
        .id
        .clone();
    engine.run_due("w").await.unwrap();
    let waiting = engine.get_run("acme", &run).await.unwrap().unwrap();
    assert_eq!(waiting.state, RunState::Waiting);
    let Some(Wait::Agent { run: agent_run }) = waiting.wait.clone() else {
        panic!("expected to wait for the agent: {waiting:?}");
    };
    assert!(
        launched.lock().unwrap().is_empty(),
        "nothing launched before the approval"
    );
    let tenant = "acme".parse().unwrap();
    let pending = state.list_pending_approvals(&tenant).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].run, agent_run,
        "the approval is the agent run's own"
    );
    // Deciding it through the engine continues the workflow.
    engine
        .decide_approval("acme", &pending[0].id, &ApprovalDecision::approve("cmo"))
        .await
        .unwrap();
    engine.run_due("w").await.unwrap();
    let done = engine.get_run("acme", &run).await.unwrap().unwrap();
    assert_eq!(done.state, RunState::Done, "{done:?}");
    assert_eq!(done.context["reply"], "Launched ad-1.");
    assert_eq!(*launched.lock().unwrap(), vec![json!({"budget": 50})]);
}
