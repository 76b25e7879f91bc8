//! The agent on `SqliteStore`: a run suspended for approval survives closing the database, is
//! resumed exactly once by concurrent resumers after reopening, and leaves a verifiable audit
//! chain and its usage behind (the agent writes real, nanosecond `Utc::now()` timestamps).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentkit_core::agent::decide_approval;
use agentkit_core::prelude::*;
use agentkit_core::store::{
    AuditQuery, AuditStore, MessageWindow, RunStatus, RunStore, SessionStore, ToolExecutionStatus,
    ToolExecutionStore, UsageQuery, UsageStore, verify_audit_chain,
};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_store_sqlite::SqliteStore;
use serde_json::json;

fn campaign_tool(calls: Arc<AtomicUsize>) -> Arc<dyn Tool> {
    let spec = ToolSpec::new(
        "marketing.create_campaign",
        "Creates an ad campaign draft",
        json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "budget": {"type": "number"}},
            "required": ["name", "budget"]
        }),
    )
    .with_side_effect(SideEffect::External);
    Arc::new(FnTool::new(spec, move |_ctx, _arguments| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok(json!({"campaign": "cmp_1"})) }
    }))
}

fn agent(store: &SqliteStore, model: ScriptedModel, tool: Arc<dyn Tool>) -> Agent {
    Agent::builder()
        .id("marketing")
        .system_prompt("You run ads.")
        .model(Arc::new(model), "m")
        .tool(tool)
        .store(Arc::new(store.clone()))
        .policy(
            AllowListPolicy::new(["marketing.*"])
                .require_approval_for(["marketing.create_campaign"])
                .into_arc(),
        )
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_run_survives_reopening_and_resumes_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.db");
    let calls = Arc::new(AtomicUsize::new(0));
    let tool = campaign_tool(Arc::clone(&calls));
    let tenant = TenantId::from_static("acme");

    let (run, approval) = {
        let store = SqliteStore::open(&path).await.unwrap();
        let model = ScriptedModel::new([ScriptedResponse::tool_call(
            "marketing.create_campaign",
            json!({"name": "spring", "budget": 10}),
        )]);
        let out = agent(&store, model, Arc::clone(&tool))
            .run(RunRequest::new("acme", "s1", "launch the spring campaign"))
            .await
            .unwrap();
        assert_eq!(out.approvals().len(), 1, "the call waits for a human");
        (out.run_id().clone(), out.approvals()[0].id.clone())
    };
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // Another process, later.
    let store = SqliteStore::open(&path).await.unwrap();
    let suspended = store.get_run(&tenant, &run).await.unwrap().unwrap();
    assert_eq!(suspended.status, RunStatus::Suspended);
    assert_eq!(suspended.pending.len(), 1);
    decide_approval(
        &store,
        &tenant,
        &approval,
        &ApprovalDecision::approve("bob"),
    )
    .await
    .unwrap();

    let resumers = (0..6).map(|_| {
        let model = ScriptedModel::repeating([ScriptedResponse::text("Campaign created.")]);
        let a = agent(&store, model, Arc::clone(&tool));
        let run = run.clone();
        tokio::spawn(async move { a.resume("acme", &run).await })
    });
    let mut completed = 0;
    for r in futures::future::join_all(resumers).await {
        // Losers are told the run was already resumed (an outcome without a reply).
        if r.unwrap().unwrap().reply() == Some("Campaign created.") {
            completed += 1;
        }
    }
    assert_eq!(completed, 1, "exactly one resumer continues the run");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the approved call ran once"
    );

    let done = store.get_run(&tenant, &run).await.unwrap().unwrap();
    assert_eq!(done.status, RunStatus::Completed);
    let executions = store.list_tool_executions(&tenant, &run).await.unwrap();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].status, ToolExecutionStatus::Succeeded);
    let history = store
        .load_messages(
            &tenant,
            &agentkit_core::id::SessionId::from_static("s1"),
            MessageWindow::All,
        )
        .await
        .unwrap();
    assert_eq!(
        history.last().map(|m| m.message.text()),
        Some("Campaign created.")
    );
    let audit = store.list_audit(&tenant, &AuditQuery::all()).await.unwrap();
    assert!(
        audit.iter().any(|e| e.entry.kind == "approval.decided"),
        "{audit:?}"
    );
    assert_eq!(
        verify_audit_chain(&audit),
        Ok(()),
        "the agent's audit chain verifies"
    );
    assert!(
        !store
            .list_usage(&tenant, &UsageQuery::all())
            .await
            .unwrap()
            .is_empty()
    );
}
