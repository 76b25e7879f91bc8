//! A server that breaks the protocol (a Python stdio server written for this test, speaking
//! newline-delimited JSON-RPC): every failure is a typed error, never a panic or a hang.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use agentkit_core::ErrorKind;
use agentkit_core::id::{AgentId, IdempotencyKey, RunId, SessionId, TenantId};
use agentkit_core::scope::Scope;
use agentkit_core::tool::{Tool, ToolContext};
use agentkit_mcp::{McpClient, McpServerConfig};
use serde_json::json;

fn ctx(n: u32) -> ToolContext {
    let scope = Scope::new(
        TenantId::new("acme").unwrap(),
        AgentId::new("a").unwrap(),
        SessionId::new("s").unwrap(),
        RunId::generate(),
    );
    ToolContext::new(
        scope,
        format!("c{n}"),
        IdempotencyKey::new(format!("k{n}")).unwrap(),
    )
}

async fn broken() -> Option<McpClient> {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: python3 is missing"
        );
        eprintln!("skipping: python3 is not installed");
        return None;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/broken_mcp_server.py"
    );
    let config =
        McpServerConfig::stdio("broken", "python3", [script]).with_timeout(Duration::from_secs(3));
    Some(McpClient::connect(config).await.unwrap())
}

fn tool(client: &McpClient, name: &str) -> std::sync::Arc<dyn Tool> {
    client
        .tools()
        .into_iter()
        .find(|t| t.spec().name == name)
        .unwrap()
}

#[tokio::test]
async fn malformed_answers_are_typed_errors() {
    let Some(client) = broken().await else { return };
    // The server does not know `server/discover`: the client fell back to `initialize`.
    assert_eq!(
        client.protocol_version().await.as_deref(),
        Some("2025-11-25")
    );
    let echo = tool(&client, "broken.echo");
    assert_eq!(echo.call(ctx(1), json!({})).await.unwrap(), json!("ok"));

    let err = tool(&client, "broken.wrong_shape")
        .call(ctx(2), json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::MalformedResponse, "{err}");

    let err = tool(&client, "broken.garbage")
        .call(ctx(3), json!({}))
        .await
        .unwrap_err();
    // The transport drops a line that is not JSON-RPC, so the call ends at its time limit
    // (and is cancelled on the server).
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    // Whatever the server did, the client still works (reconnecting if it had to).
    assert_eq!(echo.call(ctx(4), json!({})).await.unwrap(), json!("ok"));

    let err = tool(&client, "broken.exit")
        .call(ctx(5), json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(echo.call(ctx(6), json!({})).await.unwrap(), json!("ok"));
    client.close().await;
}
