//! HTTP tools: error text goes through the tool's redaction rules and never echoes its secrets
//! (secret headers, redacted arguments in the URL).
#![allow(missing_docs, clippy::unwrap_used)]

use agentkit_core::ErrorKind;
use agentkit_core::id::IdempotencyKey;
use agentkit_core::tool::{Tool, ToolContext};
use agentkit_tools::http::{HttpTool, HttpToolConfig, OutboundPolicy};
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn ctx() -> ToolContext {
    ToolContext::new(
        agentkit_core::testkit::scope("acme", "agent", "s1", "run-1"),
        "call_1",
        IdempotencyKey::from_static("run-1:1:0"),
    )
}

fn loopback_only() -> OutboundPolicy {
    OutboundPolicy::new().allow_network("127.0.0.1/32".parse().unwrap())
}

fn get(url: String) -> HttpToolConfig {
    HttpToolConfig::new("test.fetch", "Fetches a thing", url)
}

/// Every way an error can be printed.
fn all_text(e: &agentkit_core::Error) -> String {
    use std::error::Error as _;
    let mut text = format!("{e} | {e:?}");
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(" | {s} | {s:?}"));
        source = s.source();
    }
    text
}

#[tokio::test]
async fn error_snippets_go_through_the_redaction_rules() {
    let server = MockServer::start().await;
    Mock::given(path("/json"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid request",
            "api_token": "tok-SECRET-json-1",
            "account": {"password": "pw-SECRET-json-2", "id": 7}
        })))
        .mount(&server)
        .await;
    Mock::given(path("/text"))
        .respond_with(
            ResponseTemplate::new(500).set_body_string("failed: api_token=tok-SECRET-text-3"),
        )
        .mount(&server)
        .await;
    let tool = |route: &str| {
        HttpTool::new(
            get(format!("{}/{route}", server.uri()))
                .with_redacted(["api_token", "/account/password"]),
            loopback_only(),
        )
        .unwrap()
    };
    let e = tool("json").call(ctx(), json!({})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Tool);
    let text = all_text(&e);
    assert!(!text.contains("tok-SECRET-json-1"), "{text}");
    assert!(!text.contains("pw-SECRET-json-2"), "{text}");
    assert!(text.contains("[REDACTED]"), "{text}");
    assert!(
        text.contains("invalid request"),
        "what is not redacted stays: {text}"
    );

    // A body that is not JSON cannot be redacted field by field: it is withheld.
    let e = tool("text").call(ctx(), json!({})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Server);
    let text = all_text(&e);
    assert!(!text.contains("tok-SECRET-text-3"), "{text}");
    assert!(text.contains("HTTP 500"), "{text}");
}

#[tokio::test]
async fn error_snippets_never_echo_the_tools_secret_headers() {
    let server = MockServer::start().await;
    Mock::given(path("/echo"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_string("invalid credentials: Bearer agentkit-tools (expired)"),
        )
        .mount(&server)
        .await;
    // `CARGO_PKG_NAME` (`agentkit-tools`) stands in for a real secret variable.
    let tool = HttpTool::new(
        get(format!("{}/echo", server.uri())).with_secret_header(
            "Authorization",
            "CARGO_PKG_NAME",
            "Bearer ",
        ),
        loopback_only(),
    )
    .unwrap();
    let e = tool.call(ctx(), json!({})).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    let text = all_text(&e);
    assert!(!text.contains("agentkit-tools"), "{text}");
    assert!(text.contains("expired"), "{text}");
}

#[tokio::test]
async fn transport_errors_do_not_quote_redacted_arguments_from_the_url() {
    // Nothing listens on port 1: the connection is refused.
    let tool = HttpTool::new(
        get("http://127.0.0.1:1/lookup?key={key}".into())
            .with_parameters(json!({
                "type": "object",
                "properties": {"key": {"type": "string"}},
                "required": ["key"]
            }))
            .with_redacted(["key"]),
        loopback_only(),
    )
    .unwrap();
    let e = tool
        .call(ctx(), json!({"key": "arg-SECRET-in-query"}))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let text = all_text(&e);
    assert!(!text.contains("arg-SECRET-in-query"), "{text}");
    assert!(
        e.to_string()
            .contains("could not connect to http://127.0.0.1:1: "),
        "the origin and the cause are named: {e}"
    );
}
