//! agentkit tools served over MCP: the caller's tenant and principal come from the transport's
//! authentication, and every call passes the same policy gate, idempotency and audit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentkit_core::id::{AgentId, ApprovalId, TenantId};
use agentkit_core::store::{
    ApprovalDecision, ApprovalStore, AuditQuery, AuditStore, InMemoryStore, StateStore,
};
use agentkit_core::tool::{FnTool, SideEffect, Tool, ToolSpec};
use agentkit_mcp::server::{BearerTokens, McpCaller, McpHttpConfig, McpToolServer};
use agentkit_mcp::{McpClient, McpError, McpServerConfig};
use agentkit_policy::PolicyEngine;
use agentkit_tools::ToolRegistry;
use agentkit_tools::http::HeaderSource;
use common::loopback;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

const POLICY: &str = r#"{
  "agents": {
    "support-bot": {"permissions": [{"action": "notes.*"}]},
    "finance-bot": {"permissions": [{"action": "notes.*"}, {"action": "billing.refund"}]}
  },
  "rules": [
    {"action": "billing.refund", "effect": "require_approval", "reason": "refunds need a human"}
  ]
}"#;

struct Fixture {
    store: Arc<InMemoryStore>,
    refunds: Arc<AtomicUsize>,
    url: String,
    _task: tokio::task::JoinHandle<()>,
}

fn tools(refunds: Arc<AtomicUsize>) -> ToolRegistry {
    let read: Arc<dyn Tool> = Arc::new(FnTool::new(
        ToolSpec::new(
            "notes.read",
            "Reads the caller's notes",
            json!({"type": "object", "properties": {}}),
        ),
        |ctx, _args| async move { Ok(json!({"tenant": ctx.scope.tenant.as_str(), "notes": 3})) },
    ));
    let refund: Arc<dyn Tool> = Arc::new(FnTool::new(
        ToolSpec::new(
            "billing.refund",
            "Refunds an order",
            json!({"type": "object", "properties": {"order": {"type": "string"}}, "required": ["order"]}),
        )
        .with_side_effect(SideEffect::External),
        move |_ctx, args| {
            let refunds = refunds.clone();
            async move {
                refunds.fetch_add(1, Ordering::SeqCst);
                Ok(json!({"refunded": args["order"]}))
            }
        },
    ));
    ToolRegistry::builder()
        .register(read)
        .register(refund)
        .build()
        .unwrap()
}

fn caller(tenant: &str, agent: &str) -> McpCaller {
    McpCaller::new(TenantId::new(tenant).unwrap(), AgentId::new(agent).unwrap())
}

async fn serve() -> Fixture {
    let store = Arc::new(InMemoryStore::new());
    let refunds = Arc::new(AtomicUsize::new(0));
    let registry = tools(refunds.clone());
    let policy = Arc::new(PolicyEngine::from_json(POLICY, store.clone()).unwrap());
    let executor = registry.executor(store.clone()).policy(policy).build();
    let server = McpToolServer::new(executor, store.clone(), "acme-tools");
    let tokens = BearerTokens::new()
        .with_token("tok-support", caller("acme", "support-bot"))
        .with_token("tok-finance", caller("acme", "finance-bot"))
        .with_token("tok-globex", caller("globex", "support-bot"));
    let service = server.http_service(Arc::new(tokens), McpHttpConfig::default());
    let router = axum::Router::new().route_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/mcp",
        listener.local_addr().unwrap().port()
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Fixture {
        store,
        refunds,
        url,
        _task: task,
    }
}

async fn client(url: &str, token: Option<&str>) -> Result<McpClient, McpError> {
    let mut config = McpServerConfig::http("acme", url);
    if let Some(token) = token {
        config = config.with_header(
            "Authorization",
            HeaderSource::Value(format!("Bearer {token}")),
        );
    }
    McpClient::builder(config)
        .outbound(loopback())
        .connect()
        .await
}

fn ctx(n: u32) -> agentkit_core::tool::ToolContext {
    agentkit_core::tool::ToolContext::new(
        agentkit_core::scope::Scope::new(
            TenantId::new("client-side").unwrap(),
            AgentId::new("remote").unwrap(),
            agentkit_core::id::SessionId::new("s").unwrap(),
            agentkit_core::id::RunId::generate(),
        ),
        format!("c{n}"),
        agentkit_core::id::IdempotencyKey::new(format!("key-{n}")).unwrap(),
    )
}

#[tokio::test]
async fn callers_are_authenticated_and_calls_are_governed_per_tenant() {
    let f = serve().await;
    // No token, or a wrong one: 401 before anything runs.
    let err = client(&f.url, None).await.unwrap_err();
    assert!(matches!(err, McpError::Unauthorized { .. }), "{err}");
    let err = client(&f.url, Some("nope")).await.unwrap_err();
    assert!(matches!(err, McpError::Unauthorized { .. }), "{err}");

    let support = client(&f.url, Some("tok-support")).await.unwrap();
    assert_eq!(
        support.tool_names(),
        ["acme.billing.refund", "acme.notes.read"]
    );
    let by_name = |c: &McpClient, name: &str| {
        c.tools()
            .into_iter()
            .find(|t| t.spec().name == name)
            .unwrap()
    };
    // The tenant is the token's, whatever the client's own scope says.
    let out = by_name(&support, "acme.notes.read")
        .call(ctx(1), json!({}))
        .await
        .unwrap();
    assert_eq!(out, json!({"tenant": "acme", "notes": 3}));
    let globex = client(&f.url, Some("tok-globex")).await.unwrap();
    let out = by_name(&globex, "acme.notes.read")
        .call(ctx(1), json!({}))
        .await
        .unwrap();
    assert_eq!(out, json!({"tenant": "globex", "notes": 3}));
    // Each tenant's audit trail holds its own call only.
    for tenant in ["acme", "globex"] {
        let calls = f
            .store
            .list_audit(
                &TenantId::new(tenant).unwrap(),
                &AuditQuery::all().kind("tool.call"),
            )
            .await
            .unwrap();
        assert_eq!(calls.len(), 1, "{tenant}");
        assert_eq!(
            calls[0].entry.agent.as_ref().unwrap().as_str(),
            "support-bot"
        );
    }
    // RBAC: support-bot holds no grant for refunds.
    let err = by_name(&support, "acme.billing.refund")
        .call(ctx(2), json!({"order": "o-1"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Denied by policy"), "{err}");
    assert_eq!(f.refunds.load(Ordering::SeqCst), 0);
    support.close().await;
    globex.close().await;
}

/// A raw rmcp client (not ours), to send `_meta` by hand.
async fn raw_client(url: &str, token: &str) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let transport = StreamableHttpClientTransport::with_client(
        http,
        StreamableHttpClientTransportConfig::with_uri(url.to_string()),
    );
    ().serve(transport).await.unwrap()
}

fn text_of(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect()
}

#[tokio::test]
async fn a_call_needing_approval_runs_once_after_a_human_approves() {
    let f = serve().await;
    let finance = raw_client(&f.url, "tok-finance").await;
    let args = json!({"order": "o-9"}).as_object().unwrap().clone();
    let first = finance
        .call_tool(CallToolRequestParams::new("billing.refund").with_arguments(args.clone()))
        .await
        .unwrap();
    assert_eq!(first.is_error, Some(true));
    let text = text_of(&first);
    assert!(text.contains("refunds need a human"), "{text}");
    assert_eq!(f.refunds.load(Ordering::SeqCst), 0);
    let acme = TenantId::new("acme").unwrap();
    let pending = f.store.list_pending_approvals(&acme).await.unwrap();
    assert_eq!(pending.len(), 1);
    let id: ApprovalId = pending[0].id.clone();
    assert!(text.contains(id.as_str()), "{text}");

    let with_approval = || {
        let mut meta = rmcp::model::RequestMetaObject::default();
        meta.0
            .insert("io.agentkit/approval".into(), Value::String(id.to_string()));
        let mut p = CallToolRequestParams::new("billing.refund").with_arguments(args.clone());
        p.meta = Some(meta);
        p
    };
    // Before a decision: refused, nothing runs.
    let early = finance.call_tool(with_approval()).await.unwrap();
    assert_eq!(early.is_error, Some(true), "{}", text_of(&early));
    assert_eq!(f.refunds.load(Ordering::SeqCst), 0);

    // A reviewer decides in the host (no run is suspended: the caller is a remote client).
    f.store
        .decide_approval(&acme, &id, &ApprovalDecision::approve("alice"))
        .await
        .unwrap();
    let done = finance.call_tool(with_approval()).await.unwrap();
    assert_ne!(done.is_error, Some(true), "{}", text_of(&done));
    assert_eq!(done.structured_content, Some(json!({"refunded": "o-9"})));
    // Again with the same approval: replayed from the record, not refunded twice.
    let again = finance.call_tool(with_approval()).await.unwrap();
    assert_eq!(again.structured_content, Some(json!({"refunded": "o-9"})));
    assert_eq!(f.refunds.load(Ordering::SeqCst), 1);
    // Another tenant cannot use acme's approval.
    let globex = raw_client(&f.url, "tok-globex").await;
    let stolen = globex.call_tool(with_approval()).await;
    assert!(
        stolen.is_err() || stolen.as_ref().unwrap().is_error == Some(true),
        "{stolen:?}"
    );
    assert_eq!(f.refunds.load(Ordering::SeqCst), 1);
    let _ = finance.cancel().await;
    let _ = globex.cancel().await;
}

#[tokio::test]
async fn stdio_serving_acts_as_the_fixed_caller() {
    let store = Arc::new(InMemoryStore::new());
    let refunds = Arc::new(AtomicUsize::new(0));
    let policy = Arc::new(PolicyEngine::from_json(POLICY, store.clone()).unwrap());
    let executor = tools(refunds)
        .executor(store.clone())
        .policy(policy)
        .build();
    let server = McpToolServer::new(executor, store.clone(), "acme-tools")
        .with_instructions("Notes and refunds for Acme.");
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let (server_read, server_write) = tokio::io::split(server_io);
    let serving = tokio::spawn(async move {
        server
            .serve_io(caller("acme", "support-bot"), server_read, server_write)
            .await
    });
    let client = ().serve(client_io).await.unwrap();
    let info = client.peer_info().unwrap();
    assert_eq!(
        info.instructions.as_deref(),
        Some("Notes and refunds for Acme.")
    );
    let listed = client.list_all_tools().await.unwrap();
    let refund = listed.iter().find(|t| t.name == "billing.refund").unwrap();
    let ann = refund.annotations.as_ref().unwrap();
    assert_eq!(ann.read_only_hint, Some(false));
    assert_eq!(ann.destructive_hint, Some(true));
    let read = client
        .call_tool(CallToolRequestParams::new("notes.read"))
        .await
        .unwrap();
    assert_eq!(
        read.structured_content,
        Some(json!({"tenant": "acme", "notes": 3}))
    );
    // Unknown tools are a JSON-RPC error (invalid params), per the spec.
    let err = client
        .call_tool(CallToolRequestParams::new("notes.delete_all"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unknown tool"), "{err}");
    let audit = store
        .list_audit(
            &TenantId::new("acme").unwrap(),
            &AuditQuery::all().kind("tool.call"),
        )
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    let _ = client.cancel().await;
    serving.await.unwrap().unwrap();
    let _: &dyn StateStore = &*store;
}

#[tokio::test]
async fn oauth_without_an_authorizer_or_metadata_is_a_typed_error() {
    let f = serve().await;
    // The server answers 401; the client has OAuth configured but no way to ask the user.
    let config = McpServerConfig::http("acme", &f.url).with_oauth(
        agentkit_mcp::McpOAuthConfig::new("http://localhost:9/callback"),
    );
    let err = McpClient::builder(config.clone())
        .outbound(loopback())
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, McpError::Config { reason, .. } if reason.contains("authorizer")),
        "{err}"
    );
    // With an authorizer: this server publishes no OAuth metadata, so discovery fails, typed.
    let err = McpClient::builder(config)
        .outbound(loopback())
        .authorizer(Arc::new(agentkit_mcp::RedirectAuthorizer::new()))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, McpError::Handshake { reason, .. } if reason.starts_with("OAuth")),
        "{err}"
    );
    assert_eq!(f.refunds.load(Ordering::SeqCst), 0);
}
