//! An agent using an MCP server's tools, one of them behind human approval.
//!
//! A CRM's tools are served over MCP (Streamable HTTP on loopback, bearer-token
//! authenticated: agentkit's own server side); the agent's host connects to it with
//! `McpClient`, registers its tools under the `crm` namespace, and runs a (scripted, offline)
//! model that searches and then deletes a contact. The policy requires approval for deletes:
//! the run suspends, a reviewer approves, and a fresh agent resumes it; the delete runs once.
//!
//! ```sh
//! cargo run -p agentkit-mcp --example mcp_agent
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentkit_core::agent::decide_approval;
use agentkit_core::prelude::*;
use agentkit_core::store::{ApprovalDecision, InMemoryStore};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_core::tool::{FnTool, Tool, ToolSpec};
use agentkit_mcp::server::{BearerTokens, McpCaller, McpHttpConfig, McpToolServer};
use agentkit_mcp::{McpClient, McpServerConfig, McpToolOverride};
use agentkit_policy::PolicyEngine;
use agentkit_tools::http::{HeaderSource, OutboundPolicy};
use agentkit_tools::{Allowlist, ToolRegistry};
use serde_json::json;

const POLICY: &str = r#"{
  "agents": {"support": {"permissions": [{"action": "crm.*"}]}},
  "rules": [{"action": "crm.delete_contact", "effect": "require_approval",
             "reason": "deleting a customer record needs a human"}]
}"#;

/// The CRM side: its own tools, served over MCP. Returns the URL and a delete counter.
async fn crm_server() -> Result<(String, Arc<AtomicUsize>), Box<dyn std::error::Error>> {
    let deletes = Arc::new(AtomicUsize::new(0));
    let search: Arc<dyn Tool> = Arc::new(FnTool::new(
        ToolSpec::new(
            "search_contacts",
            "Searches contacts by name",
            json!({"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}),
        ),
        |_ctx, args| async move { Ok(json!({"matches": [{"id": 7, "name": args["query"]}]})) },
    ));
    let counter = deletes.clone();
    let delete: Arc<dyn Tool> = Arc::new(FnTool::new(
        ToolSpec::new(
            "delete_contact",
            "Deletes a contact",
            json!({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}),
        )
        .with_side_effect(SideEffect::Write),
        move |_ctx, args| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                Ok(json!({"deleted": args["id"]}))
            }
        },
    ));
    let store = Arc::new(InMemoryStore::new());
    let executor = agentkit_core::exec::ToolExecutor::builder(
        agentkit_core::exec::ToolSet::new([search, delete])?,
        store.clone(),
    )
    .build();
    let server = McpToolServer::new(executor, store, "crm");
    let tokens = BearerTokens::new().with_token(
        "crm-token-for-acme",
        McpCaller::new(TenantId::new("acme")?, AgentId::new("acme-support-desk")?),
    );
    let service = server.http_service(Arc::new(tokens), McpHttpConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://127.0.0.1:{}/mcp", listener.local_addr()?.port());
    tokio::spawn(async move {
        let router = axum::Router::new().route_service("/mcp", service);
        let _ = axum::serve(listener, router).await;
    });
    Ok((url, deletes))
}

fn agent(store: Arc<InMemoryStore>, model: ScriptedModel, tools: Vec<Arc<dyn Tool>>) -> Agent {
    Agent::builder()
        .id("support")
        .model(Arc::new(model), "scripted")
        .tools(tools)
        .store(store.clone())
        .policy(Arc::new(
            PolicyEngine::from_json(POLICY, store).expect("policy"),
        ))
        .build()
        .expect("agent")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, deletes) = crm_server().await?;

    // The agent's host: connect, register the server's tools under `crm`.
    let config = McpServerConfig::http("crm", &url)
        .with_header(
            "Authorization",
            HeaderSource::Value("Bearer crm-token-for-acme".into()),
        )
        .with_tool(
            "search_contacts",
            McpToolOverride::new().side_effect(SideEffect::Read),
        )
        .with_tool(
            "delete_contact",
            McpToolOverride::new().side_effect(SideEffect::Write),
        );
    let crm = McpClient::builder(config)
        .outbound(OutboundPolicy::new().allow_network("127.0.0.0/8".parse()?))
        .connect()
        .await?;
    println!(
        "connected to the CRM's MCP server ({}), tools: {:?}",
        crm.protocol_version().await.unwrap_or_default(),
        crm.tool_names()
    );
    let registry = ToolRegistry::builder().register_all(crm.tools()).build()?;
    let tools = registry.for_agent(&Allowlist::new(["crm.*"]));
    let store = Arc::new(InMemoryStore::new());

    let model = ScriptedModel::new([
        ScriptedResponse::tool_call("crm.search_contacts", json!({"query": "Bob Duplicate"})),
        ScriptedResponse::tool_call("crm.delete_contact", json!({"id": 7})),
    ]);
    let out = agent(store.clone(), model, tools.clone())
        .run(RunRequest::new(
            "acme",
            "ticket-42",
            "Remove Bob's duplicate contact",
        ))
        .await?;
    let RunOutcome::Suspended(suspended) = &out else {
        return Err(format!("expected the run to wait for approval, got {out:?}").into());
    };
    let approval = suspended.approvals[0].clone();
    println!(
        "run suspended: `{}` needs approval ({}); deletes so far: {}",
        approval.call.name,
        approval.reason,
        deletes.load(Ordering::SeqCst)
    );

    // A reviewer approves; later, a fresh agent resumes the run.
    decide_approval(
        &*store,
        &TenantId::new("acme")?,
        &approval.id,
        &ApprovalDecision::approve("alice"),
    )
    .await?;
    let model = ScriptedModel::new([ScriptedResponse::text(
        "Bob's duplicate contact is deleted.",
    )]);
    let resumed = agent(store, model, tools)
        .resume_approval("acme", &approval.id)
        .await?;
    println!("resumed: {}", resumed.reply().unwrap_or_default());
    println!("deletes on the CRM: {}", deletes.load(Ordering::SeqCst));
    assert_eq!(deletes.load(Ordering::SeqCst), 1);
    crm.close().await;
    Ok(())
}
