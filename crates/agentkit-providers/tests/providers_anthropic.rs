//! The Anthropic provider against a mock server speaking the Messages API wire format.
#![cfg(feature = "anthropic")]
#![allow(clippy::unwrap_used)]

mod providers_common;

use std::sync::Arc;
use std::time::Duration;

use agentkit_core::ErrorKind;
use agentkit_core::message::Message;
use agentkit_core::model::{CompletionRequest, FinishReason, LlmProvider, StreamEvent, ToolChoice};
use agentkit_core::prelude::*;
use agentkit_providers::{KeyRef, ProviderConfig, ProviderKind, build_provider};
use providers_common::*;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-ant-test-0123456789";

fn config(server: &MockServer) -> ProviderConfig {
    ProviderConfig::new(ProviderKind::Anthropic, "claude-test")
        .with_base_url(server.uri())
        .with_api_key(KeyRef::value(KEY))
}

fn provider(server: &MockServer) -> Arc<dyn LlmProvider> {
    build_provider(&config(server)).unwrap()
}

fn sse(events: &[Value]) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(sse_named(events), "text/event-stream")
}

fn tool_use_response() -> Value {
    json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test-2025",
        "content": [
            {"type": "text", "text": "Looking up both."},
            {"type": "tool_use", "id": "toolu_01", "name": "crm__lookup_lead", "input": {"lead_id": 3}},
            {"type": "tool_use", "id": "toolu_02", "name": "crm__lookup_lead", "input": {"lead_id": 4}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 100, "output_tokens": 40,
                  "cache_read_input_tokens": 50, "cache_creation_input_tokens": 10}
    })
}

fn text_response(text: &str) -> Value {
    json!({
        "id": "msg_02", "type": "message", "role": "assistant", "model": "claude-test-2025",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 150, "output_tokens": 8}
    })
}

#[tokio::test]
async fn sends_the_documented_request_and_parses_tool_use() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tool_use_response()))
        .expect(1)
        .mount(&server)
        .await;

    let mut request = full_request();
    // A retrieved-context system message after the prompt joins the top-level system.
    std::sync::Arc::make_mut(&mut request.messages)
        .insert(1, Message::system("<retrieved_context/>"));
    let r = provider(&server).complete(&request).await.unwrap();

    let received = server.received_requests().await.unwrap();
    assert!(received[0].headers.get("authorization").is_none());
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["model"], "model-x");
    assert_eq!(body["max_tokens"], 321);
    assert_eq!(body["stream"], false);
    assert_eq!(body["temperature"], 0.25);
    assert_eq!(
        body["system"],
        "You are a CRM assistant.\n\n<retrieved_context/>"
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "Who are leads 1 and 2?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_a", "name": "crm__lookup_lead", "input": {"lead_id": 1}},
                {"type": "tool_use", "id": "call_b", "name": "crm__lookup_lead", "input": {"lead_id": 2}}
            ]},
            // Both results and the next user text in one user message.
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_a", "content": "{\"name\":\"Ada\"}"},
                {"type": "tool_result", "tool_use_id": "call_b", "content": "no such lead", "is_error": true},
                {"type": "text", "text": "Thanks. And lead 3?"}
            ]}
        ])
    );
    assert_eq!(
        body["tools"],
        json!([{"name": "crm__lookup_lead", "description": "Looks up a lead by id",
                "input_schema": lookup_spec().parameters}])
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "crm__lookup_lead"})
    );

    assert_eq!(r.content, "Looking up both.");
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.model, "claude-test-2025");
    assert_eq!(
        r.tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("toolu_01", "crm.lookup_lead", json!({"lead_id": 3})),
            ("toolu_02", "crm.lookup_lead", json!({"lead_id": 4})),
        ]
    );
    // Cache reads and writes count as input; reads are the cached part.
    assert_eq!(
        (
            r.usage.input_tokens,
            r.usage.output_tokens,
            r.usage.cached_input_tokens
        ),
        (160, 40, 50)
    );
}

#[tokio::test]
async fn max_tokens_is_always_sent_and_tool_choice_maps() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(text_response("{\"score\": 5}")))
        .mount(&server)
        .await;
    let p = provider(&server);
    let r = p.complete(&schema_request()).await.unwrap();
    assert_eq!(r.finish_reason, FinishReason::Stop);
    let with_tools = |choice| {
        CompletionRequest::new("", vec![Message::user("hi")])
            .with_tools(vec![lookup_spec()])
            .with_tool_choice(choice)
    };
    for choice in [ToolChoice::Auto, ToolChoice::Required, ToolChoice::None] {
        p.complete(&with_tools(choice)).await.unwrap();
    }
    let configured = build_provider(&config(&server).with_max_tokens(1000)).unwrap();
    configured
        .complete(&with_tools(ToolChoice::Auto))
        .await
        .unwrap();

    let sent = bodies(&server).await;
    assert_eq!(
        sent[0]["max_tokens"], 4096,
        "the default when nothing sets one"
    );
    let system = sent[0]["system"].as_str().unwrap();
    assert!(
        system.contains("rating.v1") && system.contains("\"score\""),
        "{system}"
    );
    assert!(sent[0].get("tools").is_none() && sent[0].get("tool_choice").is_none());
    assert_eq!(
        sent[1]["model"], "claude-test",
        "the config's model is the default"
    );
    assert_eq!(sent[1]["tool_choice"], json!({"type": "auto"}));
    assert_eq!(sent[2]["tool_choice"], json!({"type": "any"}));
    assert_eq!(sent[3]["tool_choice"], json!({"type": "none"}));
    assert_eq!(sent[4]["max_tokens"], 1000);
}

fn stream_events() -> Vec<Value> {
    vec![
        json!({"type": "message_start", "message": {
            "id": "msg_01", "type": "message", "role": "assistant", "content": [],
            "model": "claude-test", "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": 472, "output_tokens": 2, "cache_read_input_tokens": 100}}}),
        json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        json!({"type": "ping"}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Checking "}}),
        json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "both."}}),
        json!({"type": "content_block_stop", "index": 0}),
        json!({"type": "content_block_start", "index": 1, "content_block":
            {"type": "tool_use", "id": "toolu_01", "name": "crm__lookup_lead", "input": {}}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"lead_"}}),
        // An event type this client does not know is ignored.
        json!({"type": "content_block_annotation", "index": 1, "note": "from a newer API"}),
        json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "id\": 3}"}}),
        json!({"type": "content_block_stop", "index": 1}),
        json!({"type": "content_block_start", "index": 2, "content_block":
            {"type": "tool_use", "id": "toolu_02", "name": "crm__lookup_lead", "input": {}}}),
        json!({"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": "{\"lead_id\": 4}"}}),
        json!({"type": "content_block_stop", "index": 2}),
        json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null},
               "usage": {"output_tokens": 89}}),
        json!({"type": "message_stop"}),
    ]
}

#[tokio::test]
async fn streams_text_and_tool_input_deltas() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_partial_json(json!({"stream": true})))
        .respond_with(sse(&stream_events()))
        .mount(&server)
        .await;
    let events: Vec<StreamEvent> = drain(provider(&server).stream(&full_request()).await.unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(events.contains(&StreamEvent::ToolCallDelta {
        index: 0,
        id: Some("toolu_01".into()),
        name: Some("crm.lookup_lead".into()),
        arguments_delta: String::new(),
    }));
    assert!(events.contains(&StreamEvent::ToolCallDelta {
        index: 1,
        id: None,
        name: None,
        arguments_delta: "{\"lead_id\": 4}".into(),
    }));
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish(FinishReason::ToolCalls))
    );

    let r = assemble(provider(&server).stream(&full_request()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(r.content, "Checking both.");
    assert_eq!(
        r.tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("toolu_01", "crm.lookup_lead", json!({"lead_id": 3})),
            ("toolu_02", "crm.lookup_lead", json!({"lead_id": 4})),
        ]
    );
    assert_eq!(
        (
            r.usage.input_tokens,
            r.usage.output_tokens,
            r.usage.cached_input_tokens
        ),
        (572, 89, 100)
    );
}

async fn last_stream_error(template: ResponseTemplate) -> Error {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(template)
        .mount(&server)
        .await;
    let events = drain(provider(&server).stream(&full_request()).await.unwrap()).await;
    assert_eq!(
        events.iter().filter(|e| e.is_err()).count(),
        1,
        "{events:?}"
    );
    events.into_iter().last().unwrap().unwrap_err()
}

#[tokio::test]
async fn a_cut_stream_a_malformed_line_and_error_events() {
    let all = stream_events();
    let e = last_stream_error(sse(&all[..9])).await;
    assert_eq!(
        e.kind(),
        ErrorKind::MalformedResponse,
        "cut after a partial tool input"
    );

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse(&all[..12]))
        .mount(&server)
        .await;
    let e = assemble(provider(&server).stream(&full_request()).await.unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);

    let body = sse_named(&all[..4])
        + "event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\n\n";
    let e =
        last_stream_error(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")).await;
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);

    let mut events = all[..4].to_vec();
    events.push(
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    assert_eq!(
        last_stream_error(sse(&events)).await.kind(),
        ErrorKind::Overloaded
    );
    events.pop();
    events.push(json!({"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}));
    assert_eq!(
        last_stream_error(sse(&events)).await.kind(),
        ErrorKind::Server
    );
}

fn anthropic_error(status: u16, kind: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .set_body_json(json!({"type": "error", "error": {"type": kind, "message": message}}))
}

async fn error_for(template: ResponseTemplate) -> Error {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(template)
        .mount(&server)
        .await;
    let p = provider(&server);
    let complete = p.complete(&full_request()).await.unwrap_err();
    let stream = p.stream(&full_request()).await.err().unwrap();
    assert_eq!(complete.kind(), stream.kind());
    complete
}

#[tokio::test]
async fn http_errors_map_to_typed_errors() {
    let e = error_for(anthropic_error(
        401,
        "authentication_error",
        "invalid x-api-key",
    ))
    .await;
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    let e = error_for(anthropic_error(403, "permission_error", "no access")).await;
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);

    let e = error_for(
        anthropic_error(
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        )
        .insert_header("retry-after", "13"),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(13)));

    let e = error_for(anthropic_error(
        400,
        "invalid_request_error",
        "prompt is too long: 208310 tokens > 200000 maximum",
    ))
    .await;
    assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);

    let e = error_for(anthropic_error(
        400,
        "invalid_request_error",
        "max_tokens: Field required",
    ))
    .await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = error_for(anthropic_error(
        413,
        "request_too_large",
        "Request exceeds the maximum allowed number of bytes.",
    ))
    .await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    let e = error_for(anthropic_error(500, "api_error", "Internal server error")).await;
    assert!(
        matches!(
            e,
            Error::Server {
                status: Some(500),
                ..
            }
        ),
        "{e:?}"
    );

    let e = error_for(anthropic_error(529, "overloaded_error", "Overloaded")).await;
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert!(e.is_retryable());
}

#[tokio::test]
async fn missing_fields_are_malformed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"id": "msg", "type": "message"})),
        )
        .mount(&server)
        .await;
    let e = provider(&server)
        .complete(&full_request())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MalformedResponse, "{e}");
}

#[tokio::test]
async fn an_agent_turn_with_a_tool_call_runs_through_the_provider() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "tool_use", "id": "toolu_42", "name": "crm__lookup_lead", "input": {"lead_id": 42}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 300, "output_tokens": 30}
        })))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(text_response("Lead 42 is Ada.")))
        .with_priority(2)
        .mount(&server)
        .await;

    let (tool, seen) = lookup_tool();
    let agent = Agent::builder()
        .id("crm")
        .system_prompt("You are a CRM assistant.")
        .model(provider(&server), "claude-test")
        .tool(tool)
        .build()
        .unwrap();
    let out = agent
        .run(RunRequest::new("acme", "s1", "Who is lead 42?"))
        .await
        .unwrap();
    assert_eq!(out.reply(), Some("Lead 42 is Ada."));
    assert_eq!(*seen.lock().unwrap(), vec![json!({"lead_id": 42})]);

    let sent = bodies(&server).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1]["system"], "You are a CRM assistant.");
    let messages = sent[1]["messages"].as_array().unwrap();
    assert_eq!(
        messages[messages.len() - 2],
        json!({"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_42", "name": "crm__lookup_lead", "input": {"lead_id": 42}}
        ]})
    );
    let last = &messages[messages.len() - 1];
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(last["content"][0]["tool_use_id"], "toolu_42");
}
