//! The client against an implementation we did not write: the npm reference server
//! `@modelcontextprotocol/server-everything`, started as a child process over stdio. Needs
//! Node.js 22 and the package (`AGENTKIT_MCP_NODE`, `AGENTKIT_MCP_NPM_DIR`; `.ci/run` installs
//! both); skips locally with a printed reason without them, fails under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use agentkit_core::ErrorKind;
use agentkit_core::id::{AgentId, IdempotencyKey, RunId, SessionId, TenantId};
use agentkit_core::scope::Scope;
use agentkit_core::tool::{Tool, ToolContext};
use agentkit_mcp::{McpClient, McpServerConfig, McpToolOverride};
use agentkit_tools::RetryPolicy;
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

/// The pids of processes whose environment holds `marker`.
fn pids_with(marker: &str) -> Vec<u32> {
    let needle = format!("AGENTKIT_MCP_TEST_MARKER={marker}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect()
}

fn tool(client: &McpClient, name: &str) -> std::sync::Arc<dyn Tool> {
    client
        .tools()
        .into_iter()
        .find(|t| t.spec().name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", client.tool_names()))
}

async fn gone(pid: u32) -> bool {
    for _ in 0..100 {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The reference server as a child process, marked in its environment so the test can find
/// its pid; `None` (skip) without Node.js and the package.
fn everything() -> Option<(McpServerConfig, String)> {
    let (node, script) = common::npm_server_everything()?;
    let marker = format!("{}", RunId::generate());
    let config = McpServerConfig::stdio(
        "everything",
        node.to_str().unwrap(),
        [script.to_str().unwrap(), "stdio"],
    )
    .with_env("AGENTKIT_MCP_TEST_MARKER", &marker);
    Some((config, marker))
}

#[tokio::test]
async fn the_reference_server_over_stdio_works_and_shuts_down_without_a_zombie() {
    let Some((config, marker)) = everything() else {
        return;
    };
    let client = McpClient::connect(config).await.unwrap();
    let version = client.protocol_version().await.unwrap();
    assert!(
        ["2025-11-25", "2025-06-18", "2026-07-28"].contains(&version.as_str()),
        "{version}"
    );
    let names = client.tool_names();
    assert!(names.contains(&"everything.echo".to_string()), "{names:?}");
    assert!(
        names.contains(&"everything.get-sum".to_string()),
        "{names:?}"
    );

    let echo = tool(&client, "everything.echo");
    let out = echo
        .call(ctx(1), json!({"message": "hello"}))
        .await
        .unwrap();
    assert_eq!(out, json!("Echo: hello"));
    let sum = tool(&client, "everything.get-sum");
    // Its annotations arrive as hints; the side effect stays the host's default.
    let hints = sum.spec().hints.unwrap();
    assert_eq!(hints.read_only, Some(true));
    assert_eq!(
        sum.spec().side_effect,
        agentkit_core::tool::SideEffect::External
    );
    let out = sum.call(ctx(2), json!({"a": 2, "b": 3})).await.unwrap();
    assert!(out.as_str().unwrap().contains('5'), "{out}");
    // Structured content comes back as the output.
    let structured = tool(&client, "everything.get-structured-content");
    let out = structured
        .call(ctx(3), json!({"location": "New York"}))
        .await
        .unwrap();
    assert!(out.is_object(), "{out}");

    let pids = pids_with(&marker);
    assert_eq!(pids.len(), 1, "one child process: {pids:?}");
    client.close().await;
    assert!(
        gone(pids[0]).await,
        "the child was not reaped (zombie or still running)"
    );
}

#[tokio::test]
async fn a_server_that_dies_mid_call_is_a_typed_error_and_the_next_call_reconnects() {
    let Some((config, marker)) = everything() else {
        return;
    };
    let client = McpClient::connect(config).await.unwrap();
    let long = tool(&client, "everything.trigger-long-running-operation");
    let call = tokio::spawn(async move {
        long.call(ctx(1), json!({"duration": 30, "steps": 30}))
            .await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pids = pids_with(&marker);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let err = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the call must end when the server dies")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(
        err.to_string().contains("may or may not have taken effect"),
        "{err}"
    );
    assert!(gone(pids[0]).await, "the dead child was not reaped");

    // The next call starts a new server process.
    let echo = tool(&client, "everything.echo");
    let out = echo
        .call(ctx(2), json!({"message": "again"}))
        .await
        .unwrap();
    assert_eq!(out, json!("Echo: again"));
    let new = pids_with(&marker);
    assert_eq!(new.len(), 1);
    assert_ne!(new[0], pids[0]);
    client.close().await;
    assert!(gone(new[0]).await);
}

#[tokio::test]
async fn an_idempotent_tool_with_a_retry_policy_survives_a_server_death() {
    let Some((config, marker)) = everything() else {
        return;
    };
    // The host declares the operation idempotent and retryable; the server's own
    // `idempotentHint` would not be enough.
    let config = config.with_tool(
        "trigger-long-running-operation",
        McpToolOverride::new()
            .idempotent()
            .retry(RetryPolicy::retries(2)),
    );
    let client = McpClient::connect(config).await.unwrap();
    let long = tool(&client, "everything.trigger-long-running-operation");
    let call =
        tokio::spawn(async move { long.call(ctx(1), json!({"duration": 2, "steps": 2})).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = pids_with(&marker);
    assert_eq!(first.len(), 1, "{first:?}");
    std::process::Command::new("kill")
        .args(["-9", &first[0].to_string()])
        .status()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the retried call must finish")
        .unwrap()
        .unwrap();
    assert!(out.as_str().unwrap().contains("completed"), "{out}");
    let second = pids_with(&marker);
    assert_eq!(second.len(), 1);
    assert_ne!(second[0], first[0], "the retry ran on a new server process");
    client.close().await;
    assert!(gone(second[0]).await);
}
