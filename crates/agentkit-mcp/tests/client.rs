//! The MCP client against an rmcp-based server on loopback: tool registration, calls,
//! protocol negotiation, timeouts and cancellation, list changes, invalid tools, the outbound
//! policy and secret headers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentkit_core::id::{AgentId, IdempotencyKey, RunId, SessionId, TenantId};
use agentkit_core::scope::Scope;
use agentkit_core::tool::{SideEffect, ToolContext};
use agentkit_core::{Error, ErrorKind};
use agentkit_mcp::{McpClient, McpError, McpServerConfig, McpToolOverride, ProtocolPreference};
use agentkit_tools::http::{HeaderSource, OutboundPolicy};
use agentkit_tools::{Allowlist, ToolRegistry};
use common::{Crm, loopback, serve_http};
use rmcp::model::{JsonObject, Tool};
use serde_json::json;

fn ctx(n: u32) -> ToolContext {
    let scope = Scope::new(
        TenantId::new("acme").unwrap(),
        AgentId::new("support").unwrap(),
        SessionId::new("s1").unwrap(),
        RunId::generate(),
    );
    ToolContext::new(
        scope,
        format!("c{n}"),
        IdempotencyKey::new(format!("k-{n}")).unwrap(),
    )
}

async fn connect(url: &str, protocol: ProtocolPreference) -> McpClient {
    McpClient::builder(McpServerConfig::http("crm", url).with_protocol(protocol))
        .outbound(loopback())
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn tools_are_namespaced_governed_and_callable_in_both_protocol_eras() {
    for (protocol, expected) in [
        (ProtocolPreference::Auto, "2026-07-28"),
        (ProtocolPreference::Legacy, "2025-11-25"),
    ] {
        let crm = Crm::new();
        let server = serve_http(crm.clone()).await;
        let client = connect(&server.url, protocol).await;
        assert_eq!(client.protocol_version().await.as_deref(), Some(expected));
        assert_eq!(
            client.server_info().await,
            Some(("crm-test-server".into(), "1.2.3".into()))
        );
        assert_eq!(
            client.tool_names(),
            [
                "crm.delete_contact",
                "crm.mutate",
                "crm.search_contacts",
                "crm.slow_report"
            ]
        );
        let tools = client.tools();
        let search = tools
            .iter()
            .find(|t| t.spec().name == "crm.search_contacts")
            .unwrap();
        // The server says read-only; the host did not: the tool stays `external`, and the claim
        // is carried as a hint only.
        assert_eq!(search.spec().side_effect, SideEffect::External);
        assert_eq!(search.spec().hints.unwrap().read_only, Some(true));
        let out = search.call(ctx(1), json!({"query": "Ada"})).await.unwrap();
        assert_eq!(out, json!("1 contact matches `Ada`: Ada Lovelace (id 7)"));
        // The idempotency key travels in `_meta`.
        assert_eq!(*crm.seen.idempotency_keys.lock().unwrap(), ["k-1"]);

        let delete = tools
            .iter()
            .find(|t| t.spec().name == "crm.delete_contact")
            .unwrap();
        assert_eq!(
            delete.call(ctx(2), json!({"id": 7})).await.unwrap(),
            json!({"deleted": 7})
        );
        // A tool error result goes back to the model as a tool error.
        let err = delete.call(ctx(3), json!({"id": 404})).await.unwrap_err();
        assert!(
            matches!(err, Error::Tool(ref m) if m == "no contact 404"),
            "{err}"
        );
        client.close().await;
        let err = search
            .call(ctx(4), json!({"query": "x"}))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        server.shutdown().await;
    }
}

#[tokio::test]
async fn host_overrides_govern_side_effects_and_the_registry_validates_arguments() {
    let server = serve_http(Crm::new()).await;
    let config = McpServerConfig::http("crm", &server.url)
        .with_tool(
            "search_contacts",
            McpToolOverride::new().side_effect(SideEffect::Read),
        )
        .with_tool(
            "delete_contact",
            McpToolOverride::new()
                .side_effect(SideEffect::Write)
                .description("Deletes one contact by id (irreversible)")
                .redact(["id"]),
        );
    let client = McpClient::builder(config)
        .outbound(loopback())
        .connect()
        .await
        .unwrap();
    let registry = ToolRegistry::builder()
        .register_all(client.tools())
        .build()
        .unwrap();
    let search = registry.get("crm.search_contacts").unwrap();
    assert_eq!(search.spec().side_effect, SideEffect::Read);
    let delete = registry.get("crm.delete_contact").unwrap();
    assert_eq!(delete.spec().side_effect, SideEffect::Write);
    assert_eq!(
        delete.spec().description,
        "Deletes one contact by id (irreversible)"
    );
    assert_eq!(delete.spec().redact, ["id"]);
    // Allow-lists filter MCP tools like any other.
    let visible: Vec<_> = registry
        .for_agent(&Allowlist::new(["crm.search_*"]))
        .iter()
        .map(|t| t.spec().name.clone())
        .collect();
    assert_eq!(visible, ["crm.search_contacts"]);
    // The server's schema is compiled: the executor refuses arguments that break it.
    let store = Arc::new(agentkit_core::store::InMemoryStore::new());
    let executor = registry.executor(store).build();
    let call =
        agentkit_core::message::ToolCall::new("c1", "crm.search_contacts", json!({"query": ""}));
    let outcome = executor
        .execute(agentkit_core::exec::CallRequest::new(
            ctx(1).scope,
            call,
            IdempotencyKey::new("v1").unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(outcome.label(), "refused", "{outcome:?}");
    client.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_call_times_out_and_is_cancelled_on_the_server() {
    let crm = Crm::new();
    let server = serve_http(crm.clone()).await;
    let client = McpClient::builder(
        McpServerConfig::http("crm", &server.url).with_timeout(Duration::from_millis(300)),
    )
    .outbound(loopback())
    .connect()
    .await
    .unwrap();
    let slow = client
        .tools()
        .into_iter()
        .find(|t| t.spec().name == "crm.slow_report")
        .unwrap();
    let err = slow.call(ctx(1), json!({"ms": 20_000})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    // The client sent `notifications/cancelled`; the server's handler saw it.
    for _ in 0..100 {
        if crm.seen.cancelled_slow_calls.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(crm.seen.cancelled_slow_calls.load(Ordering::SeqCst), 1);

    // The caller's cancellation (a cancelled run) cancels the call the same way.
    let mut c = ctx(2);
    let token = tokio_util::sync::CancellationToken::new();
    c.cancellation = token.clone();
    let call = tokio::spawn({
        let slow = slow.clone();
        async move { slow.call(c, json!({"ms": 20_000})).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    token.cancel();
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");
    for _ in 0..100 {
        if crm.seen.cancelled_slow_calls.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(crm.seen.cancelled_slow_calls.load(Ordering::SeqCst), 2);
    client.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn list_changes_are_picked_up_without_widening_allowlists_and_changed_tools_are_refused() {
    for protocol in [ProtocolPreference::Auto, ProtocolPreference::Legacy] {
        let crm = Crm::new();
        let server = serve_http(crm.clone()).await;
        let client = connect(&server.url, protocol).await;
        let registry = ToolRegistry::builder()
            .register_all(client.tools())
            .build()
            .unwrap();
        let allow = Allowlist::new(["crm.search_*", "crm.mutate"]);
        let agent_tools = registry.for_agent(&allow);
        let search = agent_tools
            .iter()
            .find(|t| t.spec().name == "crm.search_contacts")
            .unwrap()
            .clone();
        let mutate = agent_tools
            .iter()
            .find(|t| t.spec().name == "crm.mutate")
            .unwrap();
        let mut changes = client.changes();
        changes.borrow_and_update();

        // The server adds a tool and says so: the client re-reads the list.
        mutate.call(ctx(1), json!({"what": "add"})).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .unwrap_or_else(|_| panic!("{protocol:?}: no list_changed picked up"))
            .unwrap();
        assert!(
            client
                .tool_names()
                .contains(&"crm.drop_all_contacts".to_string())
        );
        // A registry rebuilt from the new list still gives the agent only its allow-list.
        let rebuilt = ToolRegistry::builder()
            .register_all(client.tools())
            .build()
            .unwrap();
        let names: Vec<_> = rebuilt
            .for_agent(&allow)
            .iter()
            .map(|t| t.spec().name.clone())
            .collect();
        assert_eq!(names, ["crm.mutate", "crm.search_contacts"], "{protocol:?}");
        // Unchanged tools keep working.
        search.call(ctx(2), json!({"query": "Ada"})).await.unwrap();

        // The server rewrites a registered tool's description: calls through the old
        // registration are refused before anything reaches the server.
        mutate
            .call(ctx(3), json!({"what": "change_search"}))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .unwrap()
            .unwrap();
        let searches = crm.seen.searches.load(Ordering::SeqCst);
        let err = search
            .call(ctx(4), json!({"query": "Ada"}))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotExecuted, "{err}");
        assert!(
            err.to_string().contains("changed on its MCP server"),
            "{err}"
        );
        assert_eq!(crm.seen.searches.load(Ordering::SeqCst), searches);
        client.close().await;
        server.shutdown().await;
    }
}

#[tokio::test]
async fn invalid_tools_are_a_typed_error_at_registration() {
    let bad_schema = Tool::new(
        "broken",
        "A schema that is not JSON Schema",
        Arc::new(
            json!({"type": "object", "properties": {"x": {"type": 12}}})
                .as_object()
                .unwrap()
                .clone(),
        ),
    );
    let bad_name = Tool::new("bad/name", "Slash in the name", Arc::new(JsonObject::new()));
    let server = serve_http(Crm::with_tools(vec![common::search_tool(), bad_schema])).await;
    let err = McpClient::builder(McpServerConfig::http("crm", &server.url))
        .outbound(loopback())
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, McpError::InvalidTool { tool, .. } if tool == "broken"),
        "{err}"
    );
    assert_eq!(Error::from(err).kind(), ErrorKind::InvalidConfig);
    server.shutdown().await;

    let server = serve_http(Crm::with_tools(vec![common::search_tool(), bad_name])).await;
    let client = McpClient::builder(McpServerConfig::http("crm", &server.url))
        .outbound(loopback())
        .skip_invalid_tools(true)
        .connect()
        .await
        .unwrap();
    assert_eq!(client.tool_names(), ["crm.search_contacts"]);
    let rejected = client.rejected_tools();
    assert_eq!(rejected.len(), 1);
    assert!(
        rejected[0].to_string().contains("bad/name"),
        "{}",
        rejected[0]
    );
    client.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_outbound_policy_applies_to_the_server_url() {
    let server = serve_http(Crm::new()).await;
    // The default policy: public addresses only.
    let err = McpClient::connect(McpServerConfig::http("crm", &server.url))
        .await
        .unwrap_err();
    assert!(matches!(err, McpError::Refused { .. }), "{err}");
    assert!(err.to_string().contains("loopback"), "{err}");
    // A name that resolves to loopback is refused after DNS resolution too.
    let by_name = server.url.replace("127.0.0.1", "localhost");
    let err = McpClient::builder(McpServerConfig::http("crm", &by_name))
        .outbound(OutboundPolicy::new())
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, McpError::Handshake { .. } | McpError::Closed { .. }),
        "{err}"
    );
    server.shutdown().await;
}

/// A `tracing` writer that keeps everything written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secret_headers_never_reach_the_logs() {
    // `CARGO_PKG_DESCRIPTION` (set by cargo for the test) stands in for a secret variable.
    const SECRET_ENV: &str = "CARGO_PKG_DESCRIPTION";
    let secret = std::env::var(SECRET_ENV).unwrap();
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let crm = Crm::new();
    let server = serve_http(crm.clone()).await;
    let config = McpServerConfig::http("crm", &server.url).with_header(
        "Authorization",
        HeaderSource::Secret {
            secret_env: SECRET_ENV.into(),
            prefix: "Bearer ".into(),
        },
    );
    let client = McpClient::builder(config)
        .outbound(loopback())
        .connect()
        .await
        .unwrap();
    let search = client
        .tools()
        .into_iter()
        .find(|t| t.spec().name == "crm.search_contacts")
        .unwrap();
    search.call(ctx(1), json!({"query": "Ada"})).await.unwrap();
    let debug = format!("{client:?}");
    client.close().await;
    server.shutdown().await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!text.is_empty(), "the test captured no logs");
    // The server got it; the logs (at TRACE) and the client's Debug did not.
    assert_eq!(
        crm.seen.authorization.lock().unwrap().as_deref(),
        Some(format!("Bearer {secret}").as_str())
    );
    assert!(
        !text.contains(&secret),
        "the secret header reached the logs"
    );
    assert!(!debug.contains(&secret), "{debug}");
}
