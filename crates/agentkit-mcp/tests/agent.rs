//! An agent using an MCP server's tools through the one governed executor: a policy rule on
//! the server's (untrusted) destructive hint requires approval, the run suspends durably, a
//! fresh agent resumes it exactly once, and every call is audited and metered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use agentkit_core::agent::decide_approval;
use agentkit_core::id::TenantId;
use agentkit_core::prelude::*;
use agentkit_core::store::{
    ApprovalDecision, AuditQuery, AuditStore, InMemoryStore, UsageQuery, UsageStore,
};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_mcp::{McpClient, McpServerConfig, McpToolOverride};
use agentkit_policy::PolicyEngine;
use agentkit_tools::{Allowlist, ToolRegistry};
use common::{Crm, loopback, serve_http};
use serde_json::json;

/// Grants come from the host; the destructive *claim* only tightens (approval), never grants.
const POLICY: &str = r#"{
  "agents": {"support": {"permissions": [{"action": "crm.*"}]}},
  "rules": [
    {"action": "crm.*", "effect": "require_approval",
     "reason": "the MCP server says this tool is destructive",
     "hints": {"destructive": true}}
  ]
}"#;

fn agent(
    store: Arc<InMemoryStore>,
    model: ScriptedModel,
    tools: Vec<Arc<dyn agentkit_core::tool::Tool>>,
) -> Agent {
    Agent::builder()
        .id("support")
        .model(Arc::new(model), "scripted")
        .tools(tools)
        .store(store.clone())
        .policy(Arc::new(PolicyEngine::from_json(POLICY, store).unwrap()))
        .build()
        .unwrap()
}

#[tokio::test]
async fn mcp_tool_needing_approval_suspends_and_resumes_exactly_once() {
    let crm = Crm::new();
    let server = serve_http(crm.clone()).await;
    let client = McpClient::builder(McpServerConfig::http("crm", &server.url).with_tool(
        "delete_contact",
        McpToolOverride::new().side_effect(SideEffect::Write),
    ))
    .outbound(loopback())
    .connect()
    .await
    .unwrap();
    let registry = ToolRegistry::builder()
        .register_all(client.tools())
        .build()
        .unwrap();
    let tools = registry.for_agent(&Allowlist::new([
        "crm.search_contacts",
        "crm.delete_contact",
    ]));
    let store = Arc::new(InMemoryStore::new());

    let first = ScriptedModel::new([ScriptedResponse::tool_calls([
        ToolCall::new("c1", "crm.search_contacts", json!({"query": "Bob"})),
        ToolCall::new("c2", "crm.delete_contact", json!({"id": 7})),
    ])]);
    let out = agent(store.clone(), first, tools.clone())
        .run(RunRequest::new("acme", "s1", "Remove Bob's duplicate"))
        .await
        .unwrap();
    let RunOutcome::Suspended(suspended) = &out else {
        panic!("expected a suspension, got {out:?}")
    };
    // The read-only search ran; the destructive delete waits for a human.
    assert_eq!(crm.seen.searches.load(Ordering::SeqCst), 1);
    assert_eq!(crm.seen.deletes.load(Ordering::SeqCst), 0);
    let approval = suspended.approvals[0].clone();
    assert_eq!(approval.call.name, "crm.delete_contact");
    assert!(
        approval.reason.contains("destructive"),
        "{}",
        approval.reason
    );

    let acme = TenantId::new("acme").unwrap();
    decide_approval(
        &*store,
        &acme,
        &approval.id,
        &ApprovalDecision::approve("alice"),
    )
    .await
    .unwrap();
    // "Days later": a fresh agent over the same store resumes; twice, concurrently.
    let resume = |text: &'static str| {
        let store = store.clone();
        let tools = tools.clone();
        let id = approval.id.clone();
        async move {
            agent(
                store,
                ScriptedModel::new([ScriptedResponse::text(text)]),
                tools,
            )
            .resume_approval("acme", &id)
            .await
        }
    };
    let (a, b) = tokio::join!(resume("Deleted."), resume("Deleted."));
    assert!(a.is_ok() && b.is_ok(), "{a:?} {b:?}");
    assert_eq!(
        crm.seen.deletes.load(Ordering::SeqCst),
        1,
        "the approved MCP call ran exactly once"
    );

    // Audited and metered like any tool call.
    let calls = store
        .list_audit(&acme, &AuditQuery::all().kind("tool.call"))
        .await
        .unwrap();
    let names: Vec<_> = calls.iter().map(|e| e.entry.action.clone()).collect();
    assert!(
        names.contains(&"crm.search_contacts".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"crm.delete_contact".to_string()),
        "{names:?}"
    );
    let usage = store.list_usage(&acme, &UsageQuery::all()).await.unwrap();
    let tool_events = usage
        .iter()
        .filter(|u| u.kind == agentkit_core::store::UsageKind::ToolCall)
        .count();
    assert_eq!(tool_events, 2, "{usage:?}");
    client.close().await;
    server.shutdown().await;
}
