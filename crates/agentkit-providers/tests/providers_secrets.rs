//! API keys never show up in traces (captured at TRACE, `log` records included), `Debug`
//! output or errors, even when a server echoes the key back.
#![cfg(any(feature = "openai", feature = "anthropic", feature = "ollama"))]
#![allow(clippy::unwrap_used)]

mod providers_common;

use std::error::Error as _;
use std::io::Write;
use std::sync::{Arc, Mutex};

use agentkit_core::prelude::*;
use agentkit_providers::{KeyRef, ProviderConfig, ProviderKind, build_embedder, build_provider};
use providers_common::*;
use serde_json::json;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::util::SubscriberInitExt;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-SECRET-never-log-me-4f2a9c";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every way an error can be printed.
fn all_text(e: &Error) -> String {
    let mut text = format!("{e} | {e:?}");
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(" | {s} | {s:?}"));
        source = s.source();
    }
    text
}

fn kinds() -> Vec<ProviderKind> {
    let mut kinds = Vec::new();
    if cfg!(feature = "openai") {
        kinds.extend([ProviderKind::OpenAi, ProviderKind::OpenAiCompatible]);
    }
    if cfg!(feature = "anthropic") {
        kinds.push(ProviderKind::Anthropic);
    }
    if cfg!(feature = "ollama") {
        kinds.push(ProviderKind::Ollama);
    }
    kinds
}

fn base(kind: ProviderKind, server: &MockServer) -> String {
    match kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => format!("{}/v1", server.uri()),
        _ => server.uri(),
    }
}

fn config(kind: ProviderKind, base_url: String) -> ProviderConfig {
    ProviderConfig::new(kind, "m")
        .with_base_url(base_url)
        .with_api_key(KeyRef::value(KEY))
        .with_dimensions(2)
}

/// The concrete provider's `Debug` output.
fn debug_provider(config: &ProviderConfig) -> String {
    match config.provider {
        #[cfg(feature = "openai")]
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => format!(
            "{:?} {:?}",
            agentkit_providers::openai::OpenAiProvider::from_config(config).unwrap(),
            agentkit_providers::openai::OpenAiEmbedder::from_config(config).unwrap()
        ),
        #[cfg(feature = "anthropic")]
        ProviderKind::Anthropic => format!(
            "{:?}",
            agentkit_providers::anthropic::AnthropicProvider::from_config(config).unwrap()
        ),
        #[cfg(feature = "ollama")]
        ProviderKind::Ollama => format!(
            "{:?} {:?}",
            agentkit_providers::ollama::OllamaProvider::from_config(config).unwrap(),
            agentkit_providers::ollama::OllamaEmbedder::from_config(config).unwrap()
        ),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn api_keys_never_appear_in_traces_debug_or_errors() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .try_init()
        .unwrap();

    // One success body all three wire formats accept (each reads its own fields).
    let ok = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
            "message": {"role": "assistant", "content": "hi"}, "done": true
        })))
        .mount(&ok)
        .await;

    let mut printed = Vec::new();
    for kind in kinds() {
        let r = build_provider(&config(kind, base(kind, &ok)))
            .unwrap()
            .complete(&full_request())
            .await
            .unwrap();
        assert_eq!(r.content, "hi", "{kind}");

        // A server that answers 401 and echoes the key it got, like a careless proxy.
        let echo = MockServer::start().await;
        let body = json!({"type": "error", "error": {
            "type": "authentication_error",
            "message": format!("Incorrect API key provided: {KEY}")
        }});
        Mock::given(any())
            .respond_with(ResponseTemplate::new(401).set_body_json(body.clone()))
            .mount(&echo)
            .await;
        let p = build_provider(&config(kind, base(kind, &echo))).unwrap();
        printed.push(format!("{:?}", config(kind, base(kind, &echo))));
        let e = p.complete(&full_request()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{kind}");
        assert!(e.to_string().contains("[REDACTED]"), "{e}");
        printed.push(all_text(&e));
        printed.push(all_text(&p.stream(&full_request()).await.err().unwrap()));
        // The key was really sent.
        let sent = &echo.received_requests().await.unwrap()[0];
        assert!(
            sent.headers
                .values()
                .any(|v| v.to_str().unwrap_or("").contains(KEY)),
            "{kind}: the key is sent"
        );

        // Errors inside streams and rate limits.
        let other = MockServer::start().await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "1")
                    .set_body_json(body.clone()),
            )
            .mount(&other)
            .await;
        let p = build_provider(&config(kind, base(kind, &other))).unwrap();
        printed.push(all_text(&p.complete(&full_request()).await.unwrap_err()));
        if kind != ProviderKind::Anthropic {
            let e = build_embedder(&config(kind, base(kind, &other)))
                .unwrap()
                .embed(&["x".into()])
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::RateLimited);
            printed.push(all_text(&e));
        }

        // Connection refused: the error carries the reqwest error as its source.
        let closed = match kind {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => "http://127.0.0.1:1/v1",
            _ => "http://127.0.0.1:1",
        };
        let refused = build_provider(&config(kind, closed.into())).unwrap();
        printed.push(all_text(
            &refused.complete(&full_request()).await.unwrap_err(),
        ));
        printed.push(debug_provider(&config(kind, base(kind, &other))));
    }

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.is_empty(), "the subscriber captured something");
    assert!(
        logs.contains("DEBUG"),
        "debug events were captured:\n{logs}"
    );
    assert!(!logs.contains(KEY), "the key leaked into traces:\n{logs}");
    for p in &printed {
        assert!(!p.contains(KEY), "the key leaked: {p}");
    }
    assert!(printed.iter().any(|p| p.contains("REDACTED")));
}

const HEADER_SECRET: &str = "hdr-SECRET-gateway-token-77c1";
const BEARER_TOKEN: &str = "tok-SECRET-behind-bearer-5d1e";
const URL_PASSWORD: &str = "urlpass-SECRET-91be";
const QUERY_SECRET: &str = "qs-SECRET-c0ffee";

fn with_secret_headers(config: ProviderConfig) -> ProviderConfig {
    config
        .with_header("x-gateway-key", HEADER_SECRET)
        .with_header("x-proxy-authorization", format!("Bearer {BEARER_TOKEN}"))
}

#[test]
fn custom_header_values_stay_out_of_debug_and_serialized_configs() {
    let c = with_secret_headers(
        ProviderConfig::new(ProviderKind::OpenAiCompatible, "m").with_base_url("http://h:1/v1"),
    );
    let debug = format!("{c:?}");
    assert!(debug.contains("x-gateway-key"), "names are kept: {debug}");
    assert!(!debug.contains(HEADER_SECRET), "{debug}");
    assert!(!debug.contains(BEARER_TOKEN), "{debug}");
    match serde_json::to_string(&c) {
        Ok(json) => {
            assert!(!json.contains(HEADER_SECRET), "serialized: {json}");
            assert!(!json.contains(BEARER_TOKEN), "serialized: {json}");
        }
        Err(e) => assert!(!e.to_string().contains(HEADER_SECRET), "{e}"),
    }
    // Read from a file, the same.
    let parsed: ProviderConfig = serde_json::from_value(json!({
        "provider": "ollama", "model": "m", "headers": {"x-gateway-key": HEADER_SECRET}
    }))
    .unwrap();
    assert!(!format!("{parsed:?}").contains(HEADER_SECRET));
    assert!(
        serde_json::to_string(&parsed).map_or(true, |s| !s.contains(HEADER_SECRET)),
        "a parsed config does not write its header values back out"
    );
}

#[tokio::test]
async fn a_server_echoing_a_custom_header_value_has_it_scrubbed() {
    for kind in kinds() {
        let echo = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(401).set_body_json(json!({"error": {
                "type": "authentication_error",
                "message": format!("bad gateway key {HEADER_SECRET} (token {BEARER_TOKEN})")
            }})))
            .mount(&echo)
            .await;
        let p = build_provider(&with_secret_headers(config(kind, base(kind, &echo)))).unwrap();
        let e = p.complete(&full_request()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthenticated, "{kind}");
        let text = all_text(&e);
        assert!(!text.contains(HEADER_SECRET), "{kind}: {text}");
        assert!(!text.contains(BEARER_TOKEN), "{kind}: {text}");
        let text = all_text(&p.stream(&full_request()).await.err().unwrap());
        assert!(!text.contains(HEADER_SECRET), "{kind}: {text}");

        // A plain-text answer that echoes them, as a proxy might.
        let plain = MockServer::start().await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(502)
                    .set_body_string(format!("upstream refused x-gateway-key={HEADER_SECRET}")),
            )
            .mount(&plain)
            .await;
        let p = build_provider(&with_secret_headers(config(kind, base(kind, &plain)))).unwrap();
        let text = all_text(&p.complete(&full_request()).await.unwrap_err());
        assert!(!text.contains(HEADER_SECRET), "{kind}: {text}");
        assert!(text.contains("[REDACTED]"), "{kind}: {text}");
    }
}

/// A base URL with credentials (and, for servers that take one, a query string).
fn credential_url(kind: ProviderKind, authority: &str) -> String {
    match kind {
        ProviderKind::OpenAi => format!("http://alice:{URL_PASSWORD}@{authority}/v1"),
        ProviderKind::OpenAiCompatible => {
            format!("http://alice:{URL_PASSWORD}@{authority}/v1?api-key={QUERY_SECRET}")
        }
        _ => format!("http://alice:{URL_PASSWORD}@{authority}"),
    }
}

fn assert_no_url_secret(what: &str, text: &str) {
    assert!(!text.contains(URL_PASSWORD), "{what}: {text}");
    assert!(!text.contains(QUERY_SECRET), "{what}: {text}");
}

#[tokio::test]
async fn url_credentials_never_appear_in_errors_or_debug() {
    let slow = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(3)))
        .mount(&slow)
        .await;
    let slow_authority = slow.address().to_string();
    for kind in kinds() {
        // Connection refused.
        let c = config(kind, credential_url(kind, "127.0.0.1:1"));
        assert_no_url_secret("config debug", &format!("{c:?}"));
        assert_no_url_secret("provider debug", &debug_provider(&c));
        let p = build_provider(&c).unwrap();
        let e = p.complete(&full_request()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{kind}: {e}");
        assert_no_url_secret("refused", &all_text(&e));
        assert_no_url_secret(
            "refused stream",
            &all_text(&p.stream(&full_request()).await.err().unwrap()),
        );

        // A timeout.
        let c = config(kind, credential_url(kind, &slow_authority))
            .with_timeout(std::time::Duration::from_millis(300));
        let e = build_provider(&c)
            .unwrap()
            .complete(&full_request())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{kind}: {e}");
        assert_no_url_secret("timeout", &all_text(&e));
    }

    // A base URL that breaks its provider's convention is quoted without its secrets.
    let e = ProviderConfig::new(ProviderKind::OpenAi, "m")
        .with_base_url(format!(
            "https://alice:{URL_PASSWORD}@gw.example/openai?key={QUERY_SECRET}"
        ))
        .resolved_base_url()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert_no_url_secret("convention", &all_text(&e));
}

/// Custom header values and credentials in the base URL are secrets too: never in `Debug`,
/// serialization, or any error (a refused connection, a server echoing them).
#[tokio::test]
async fn header_values_and_url_credentials_never_appear_in_debug_serialization_or_errors() {
    const HEADER: &str = "hdr-SECRET-org-token-77";
    const PASSWORD: &str = "pw-SECRET-in-url-31";
    for kind in kinds() {
        let path = match kind {
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => "/v1",
            _ => "",
        };
        let with_secrets = |url: String| {
            ProviderConfig::new(kind, "m")
                .with_base_url(url)
                .with_header("x-org-token", HEADER)
                .with_api_key(KeyRef::value(KEY))
                .with_dimensions(2)
        };
        let mut printed = Vec::new();

        // A refused connection to a URL with credentials.
        let closed = with_secrets(format!("http://admin:{PASSWORD}@127.0.0.1:1{path}"));
        printed.push(format!("{closed:?}"));
        let mut keyless = closed.clone();
        keyless.api_key = None;
        let mut header_only = keyless.clone();
        header_only.base_url = Some(format!("http://127.0.0.1:1{path}"));
        let mut url_only = keyless.clone();
        url_only.headers.clear();
        let mut plain = header_only.clone();
        plain.headers.clear();
        for (what, c) in [("headers", &header_only), ("URL credentials", &url_only)] {
            assert!(
                serde_json::to_string(c).is_err(),
                "{kind}: a config with {what} does not serialize"
            );
        }
        assert!(
            serde_json::to_string(&plain).is_ok(),
            "{kind}: a plain config does"
        );
        let e = build_provider(&closed)
            .unwrap()
            .complete(&full_request())
            .await
            .unwrap_err();
        printed.push(all_text(&e));

        // A server that echoes the header value.
        let echo = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({
                "error": {"type": "invalid_request_error", "message": format!("bad org {HEADER}")}
            })))
            .mount(&echo)
            .await;
        let config = with_secrets(base(kind, &echo));
        let p = build_provider(&config).unwrap();
        let e = p.complete(&full_request()).await.unwrap_err();
        printed.push(all_text(&e));
        printed.push(debug_provider(&config));
        let sent = &echo.received_requests().await.unwrap()[0];
        assert_eq!(
            sent.headers["x-org-token"], HEADER,
            "{kind}: the header is sent"
        );

        for text in &printed {
            assert!(
                !text.contains(HEADER),
                "{kind}: header value leaked: {text}"
            );
            assert!(
                !text.contains(PASSWORD),
                "{kind}: URL password leaked: {text}"
            );
        }
    }
}
