//! HTTP tools: requests from configuration, outbound (SSRF) protection after DNS and on every
//! redirect, secrets, response mapping, size cap and timeout. Test servers run on 127.0.0.1, so
//! tests that need to reach one allow exactly that address.
#![allow(missing_docs, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentkit_core::ErrorKind;
use agentkit_core::agent::{Agent, RunRequest};
use agentkit_core::id::IdempotencyKey;
use agentkit_core::message::Message;
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_core::tool::{SideEffect, Tool, ToolContext};
use agentkit_tools::http::{
    BodyMode, HttpMethod, HttpTool, HttpToolConfig, OutboundPolicy, ResponseMapping,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn ctx() -> ToolContext {
    ToolContext::new(
        agentkit_core::testkit::scope("acme", "agent", "s1", "run-1"),
        "call_1",
        IdempotencyKey::from_static("run-1:1:0"),
    )
}

/// Allows the loopback address the test servers listen on, nothing else private.
fn loopback_only() -> OutboundPolicy {
    OutboundPolicy::new().allow_network("127.0.0.1/32".parse().unwrap())
}

fn get(url: String) -> HttpToolConfig {
    HttpToolConfig::new("test.fetch", "Fetches a thing", url)
}

#[test]
fn literal_private_and_metadata_addresses_are_refused() {
    for (url, reason) in [
        ("http://127.0.0.1:8080/admin", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://10.0.0.1/internal", "private network"),
        ("http://100.64.1.1/", "CGNAT"),
        ("http://[::1]/", "loopback"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "cloud metadata"),
        ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
        ("http://0.0.0.0:8080/", "unspecified"),
    ] {
        let err = HttpTool::new(get(url.into()), OutboundPolicy::new()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{url}");
        assert!(err.to_string().contains(reason), "{url}: {err}");
    }
    // Allowing a wide network does not open the metadata endpoint.
    let wide = OutboundPolicy::new().allow_network("169.254.0.0/16".parse().unwrap());
    assert!(HttpTool::new(get("http://169.254.169.254/".into()), wide).is_err());
    // Domain lists apply too.
    let err = HttpTool::new(
        get("https://internal.corp.example/x".into()),
        OutboundPolicy::new().deny_domains(["*.corp.example"]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("deny list"), "{err}");
}

/// A policy from a config file is normalised like one from the builder: upper case and a
/// trailing dot match, and IPv4-mapped or -translated IPv6 forms of refused addresses are refused.
#[test]
fn config_loaded_domain_lists_are_normalised_and_embedded_ipv4_is_refused() {
    let policy: OutboundPolicy = serde_json::from_value(json!({
        "deny_domains": ["EVIL.example.", "*.Internal.Example"],
    }))
    .unwrap();
    for host in [
        "evil.example",
        "EVIL.EXAMPLE.",
        "api.internal.example",
        "Api.INTERNAL.example.",
    ] {
        assert!(policy.check_domain(host).is_err(), "{host} must be denied");
    }
    assert!(policy.check_domain("good.example").is_ok());
    let url = url::Url::parse("https://EVIL.example./x").unwrap();
    assert!(policy.check_url(&url).is_err());
    let allow: OutboundPolicy =
        serde_json::from_value(json!({"allow_domains": ["API.Example.COM."]})).unwrap();
    assert!(allow.check_domain("api.example.com").is_ok());
    assert!(allow.check_domain("other.example.com").is_err());

    for ip in [
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:0:7f00:1",
        "::ffff:0:a00:1",
    ] {
        assert!(
            OutboundPolicy::new().check_ip(ip.parse().unwrap()).is_err(),
            "{ip} must be refused"
        );
    }
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_after_dns_resolution() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"secret": "internal"})))
        .mount(&server)
        .await;
    let port = server.address().port();
    // `localhost` is not an address literal: only the resolver can tell it is loopback.
    let tool = HttpTool::new(
        get(format!("http://localhost:{port}/admin")),
        OutboundPolicy::new(),
    )
    .unwrap();
    let err = tool.call(ctx(), json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    let text = err.to_string();
    assert!(
        text.contains("host `localhost` resolves only to addresses that are not allowed"),
        "{text}"
    );
    assert!(text.contains("127.0.0.1 (loopback)"), "{text}");
    assert!(server.received_requests().await.unwrap().is_empty());

    // Through an agent, the refusal is a tool error the model reads.
    let model = Arc::new(ScriptedModel::new([
        ScriptedResponse::tool_call("test.fetch", json!({})),
        ScriptedResponse::text("I cannot reach it."),
    ]));
    let agent = Agent::builder()
        .id("a")
        .model(model.clone(), "scripted")
        .tool(Arc::new(tool))
        .build()
        .unwrap();
    agent
        .run(RunRequest::new("acme", "s1", "fetch"))
        .await
        .unwrap();
    let shown = model.requests()[1]
        .messages
        .iter()
        .find_map(|m| match m {
            Message::Tool {
                content,
                is_error: true,
                ..
            } => Some(content.clone()),
            _ => None,
        })
        .unwrap();
    assert!(shown.contains("outbound request refused"), "{shown}");
}

#[tokio::test]
async fn a_redirect_to_a_private_address_is_refused_without_connecting() {
    let server = MockServer::start().await;
    Mock::given(path("/to-metadata"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", "http://169.254.169.254/latest/meta-data/iam/"),
        )
        .mount(&server)
        .await;
    Mock::given(path("/to-private"))
        .respond_with(
            ResponseTemplate::new(307).insert_header("Location", "http://10.0.0.1/internal"),
        )
        .mount(&server)
        .await;
    for (route, reason) in [
        (
            "to-metadata",
            "169.254.169.254 is refused (cloud metadata endpoint)",
        ),
        ("to-private", "10.0.0.1 is refused (private network)"),
    ] {
        let tool =
            HttpTool::new(get(format!("{}/{route}", server.uri())), loopback_only()).unwrap();
        let started = Instant::now();
        let err = tool.call(ctx(), json!({})).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{route}: {err}");
        assert!(err.to_string().contains(reason), "{route}: {err}");
        // Refused before connecting: an attempt to reach 10.0.0.1 would hang until the
        // connect timeout instead.
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn allowed_redirects_are_followed_without_forwarding_secrets_to_another_origin() {
    let first = MockServer::start().await;
    let second = MockServer::start().await;
    Mock::given(path("/start"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", format!("{}/final", second.uri()).as_str()),
        )
        .mount(&first)
        .await;
    Mock::given(path("/final"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"ok": true})))
        .mount(&second)
        .await;
    // `CARGO_PKG_NAME` is set for every test process: a stand-in for a real secret variable.
    let config = get(format!("{}/start", first.uri()))
        .with_secret_header("Authorization", "CARGO_PKG_NAME", "Bearer ")
        .with_header("X-Api-Key", "public-key");
    let tool = HttpTool::new(config, loopback_only()).unwrap();
    assert!(
        !format!("{tool:?}").contains("agentkit-tools"),
        "Debug never shows secrets"
    );
    let out = tool.call(ctx(), json!({})).await.unwrap();
    assert_eq!(out, json!({"ok": true}));

    let sent = &first.received_requests().await.unwrap()[0];
    assert_eq!(sent.headers["authorization"], "Bearer agentkit-tools");
    let forwarded = &second.received_requests().await.unwrap()[0];
    assert!(
        forwarded.headers.get("authorization").is_none(),
        "the secret stays with its origin"
    );
    assert_eq!(forwarded.headers["x-api-key"], "public-key");
}

#[tokio::test]
async fn arguments_fill_the_url_and_body_and_the_response_is_mapped() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "data": {"id": "c-9", "name": "Ada", "internal": {"score": 3}},
            "meta": {"request": "x"}
        })))
        .mount(&server)
        .await;
    let config = HttpToolConfig::new(
        "crm.add_contact",
        "Adds a contact to a list",
        format!("{}/lists/{{list}}/contacts?source={{source}}", server.uri()),
    )
    .with_method(HttpMethod::Post)
    .with_parameters(json!({
        "type": "object",
        "properties": {
            "list": {"type": "string"},
            "source": {"type": "string"},
            "name": {"type": "string"}
        },
        "required": ["list", "source", "name"]
    }))
    .with_idempotency_header("Idempotency-Key")
    .with_response(ResponseMapping {
        select: Some("/data".into()),
        fields: [
            ("id".to_string(), "/id".to_string()),
            ("score".to_string(), "/internal/score".to_string()),
        ]
        .into_iter()
        .collect(),
    });
    let tool = HttpTool::new(config, loopback_only()).unwrap();
    assert_eq!(tool.spec().side_effect, SideEffect::External);
    let out = tool
        .call(
            ctx(),
            json!({"list": "vip/../admin", "source": "a&b=c", "name": "Ada"}),
        )
        .await
        .unwrap();
    assert_eq!(out, json!({"id": "c-9", "score": 3}));
    let sent = &server.received_requests().await.unwrap()[0];
    assert_eq!(sent.url.path(), "/lists/vip%2F..%2Fadmin/contacts");
    assert_eq!(sent.url.query(), Some("source=a%26b%3Dc"));
    assert_eq!(sent.headers["idempotency-key"], "run-1:1:0");
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(
        body,
        json!({"name": "Ada"}),
        "URL arguments are not repeated in the body"
    );
}

#[tokio::test]
async fn http_errors_become_typed_errors() {
    let server = MockServer::start().await;
    Mock::given(path("/limited"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .mount(&server)
        .await;
    Mock::given(path("/broken"))
        .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
        .mount(&server)
        .await;
    Mock::given(path("/missing"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such contact"))
        .mount(&server)
        .await;
    let call = |route: &str| {
        let tool =
            HttpTool::new(get(format!("{}/{route}", server.uri())), loopback_only()).unwrap();
        async move { tool.call(ctx(), json!({})).await.unwrap_err() }
    };
    let limited = call("limited").await;
    assert_eq!(limited.kind(), ErrorKind::RateLimited);
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(call("broken").await.kind(), ErrorKind::Server);
    let missing = call("missing").await;
    assert_eq!(missing.kind(), ErrorKind::Tool);
    assert!(
        missing
            .to_string()
            .contains("404 Not Found: no such contact"),
        "{missing}"
    );
}

/// A server that streams a chunked body (no `Content-Length`) of `chunks` KiB.
async fn chunked_server(chunks: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for _ in 0..chunks {
                    let chunk = format!("400\r\n{}\r\n", "x".repeat(1024));
                    if socket.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                }
                let _ = socket.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn the_response_size_cap_is_enforced_while_streaming() {
    let url = chunked_server(64).await;
    let tool = HttpTool::new(
        get(format!("{url}/big")).with_max_response_bytes(4096),
        loopback_only(),
    )
    .unwrap();
    let err = tool.call(ctx(), json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Tool);
    assert!(
        err.to_string().contains("larger than the 4096-byte limit"),
        "{err}"
    );
    // Under the cap, the body is read whole (not JSON and unmapped: returned as text).
    let small = chunked_server(2).await;
    let tool = HttpTool::new(
        get(format!("{small}/ok")).with_max_response_bytes(4096),
        loopback_only(),
    )
    .unwrap();
    assert_eq!(
        tool.call(ctx(), json!({}))
            .await
            .unwrap()
            .as_str()
            .unwrap()
            .len(),
        2048
    );

    // With a `Content-Length` over the cap, nothing is read at all.
    let server = MockServer::start().await;
    Mock::given(path("/big"))
        .respond_with(ResponseTemplate::new(200).set_body_string("y".repeat(10_000)))
        .mount(&server)
        .await;
    let tool = HttpTool::new(
        get(format!("{}/big", server.uri())).with_max_response_bytes(1000),
        loopback_only(),
    )
    .unwrap();
    assert!(
        tool.call(ctx(), json!({}))
            .await
            .unwrap_err()
            .to_string()
            .contains("1000-byte limit")
    );
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let server = MockServer::start().await;
    Mock::given(path("/slow"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&server)
        .await;
    let tool = HttpTool::new(
        get(format!("{}/slow", server.uri())).with_timeout(Duration::from_millis(200)),
        loopback_only(),
    )
    .unwrap();
    let started = Instant::now();
    let err = tool.call(ctx(), json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn configuration_reads_from_json_and_rejects_unknown_keys() {
    let config: HttpToolConfig = serde_json::from_value(json!({
        "name": "crm.get_contact",
        "description": "Fetches a contact",
        "url": "https://api.crm.example/contacts/{id}",
        "headers": {"Authorization": {"secret_env": "CRM_TOKEN", "prefix": "Bearer "}},
        "body": "none",
        "rate_limit": "30/min",
        "redact": ["email"]
    }))
    .unwrap();
    assert_eq!(config.method, HttpMethod::Get);
    assert_eq!(config.body, Some(BodyMode::None));
    let tool = HttpTool::new(config, OutboundPolicy::new()).unwrap();
    assert_eq!(
        tool.spec().parameters["required"],
        json!(["id"]),
        "without `parameters`, every placeholder is a required argument"
    );
    assert_eq!(tool.spec().side_effect, SideEffect::Read);
    assert!(
        serde_json::from_value::<HttpToolConfig>(json!({
            "name": "a.b", "description": "x", "url": "https://x.example", "timeout": 5
        }))
        .is_err()
    );
    let missing_secret = HttpToolConfig::new("a.b", "x", "https://x.example/").with_secret_header(
        "Authorization",
        "AGENTKIT_TEST_UNSET_VARIABLE",
        "",
    );
    assert!(
        HttpTool::new(missing_secret, OutboundPolicy::new()).is_ok(),
        "secrets are read per call"
    );
}

/// An error response is quoted without what the tool's redaction rules mask and without a
/// secret header value the server echoed back.
#[tokio::test]
async fn error_snippets_are_redacted() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid customer",
            "customer": {"ssn": "123-45-6789"},
            "debug": "auth was Bearer agentkit-tools"
        })))
        .mount(&server)
        .await;
    // `CARGO_PKG_NAME` (= "agentkit-tools") stands in for a real secret variable.
    let config = get(format!("{}/customers", server.uri()))
        .with_secret_header("Authorization", "CARGO_PKG_NAME", "Bearer ")
        .with_redacted(["ssn"]);
    let tool = HttpTool::new(config, loopback_only()).unwrap();
    let err = tool.call(ctx(), json!({})).await.unwrap_err().to_string();
    assert!(err.contains("invalid customer"), "{err}");
    assert!(!err.contains("123-45-6789"), "{err}");
    assert!(!err.contains("agentkit-tools"), "{err}");
}
