//! The OpenAI provider against a mock server speaking the Chat Completions wire format.
#![cfg(feature = "openai")]
#![allow(clippy::unwrap_used)]

mod providers_common;

use std::sync::Arc;
use std::time::Duration;

use agentkit_core::ErrorKind;
use agentkit_core::agent::AgentEvent;
use agentkit_core::model::{FinishReason, LlmProvider, StreamEvent};
use agentkit_core::prelude::*;
use agentkit_providers::{KeyRef, ProviderConfig, ProviderKind, build_embedder, build_provider};
use futures::StreamExt;
use providers_common::*;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "sk-test-openai-0123456789";

fn config(server: &MockServer) -> ProviderConfig {
    ProviderConfig::new(ProviderKind::OpenAi, "gpt-test")
        .with_base_url(format!("{}/v1", server.uri()))
        .with_api_key(KeyRef::value(KEY))
}

fn provider(server: &MockServer) -> Arc<dyn LlmProvider> {
    build_provider(&config(server)).unwrap()
}

fn sse(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]
    })
}

fn tool_delta(index: usize, id: Option<&str>, name: Option<&str>, args: &str) -> Value {
    let mut call = json!({"index": index, "function": {"arguments": args}});
    if let Some(id) = id {
        call["id"] = json!(id);
        call["type"] = json!("function");
    }
    if let Some(name) = name {
        call["function"]["name"] = json!(name);
    }
    chunk(json!({"tool_calls": [call]}), None)
}

fn tool_call_response() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test-2025",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant", "content": null,
                "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "crm__lookup_lead", "arguments": "{\"lead_id\":3}"}},
                    {"id": "call_2", "type": "function",
                     "function": {"name": "crm__lookup_lead", "arguments": "{\"lead_id\": 4"}}
                ]
            },
            "finish_reason": "tool_calls"
        }],
        "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
                  "prompt_tokens_details": {"cached_tokens": 64}}
    })
}

fn text_response(text: &str) -> Value {
    json!({
        "id": "chatcmpl-2", "object": "chat.completion", "created": 2, "model": "gpt-test-2025",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 200, "completion_tokens": 9, "total_tokens": 209}
    })
}

#[tokio::test]
async fn sends_the_documented_request_and_parses_parallel_tool_calls() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(header("content-type", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(tool_call_response()))
        .expect(1)
        .mount(&server)
        .await;

    let r = provider(&server).complete(&full_request()).await.unwrap();

    let body = &bodies(&server).await[0];
    assert_eq!(body["model"], "model-x");
    assert_eq!(body["stream"], false);
    assert!(body.get("stream_options").is_none());
    assert_eq!(body["temperature"], 0.25);
    assert_eq!(
        body["max_completion_tokens"], 321,
        "OpenAI gets max_completion_tokens"
    );
    assert!(body.get("max_tokens").is_none());
    assert!(body.get("response_format").is_none());
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You are a CRM assistant."},
            {"role": "user", "content": "Who are leads 1 and 2?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "crm__lookup_lead", "arguments": "{\"lead_id\":1}"}},
                {"id": "call_b", "type": "function",
                 "function": {"name": "crm__lookup_lead", "arguments": "{\"lead_id\":2}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_a", "content": "{\"name\":\"Ada\"}"},
            {"role": "tool", "tool_call_id": "call_b", "content": "no such lead"},
            {"role": "user", "content": "Thanks. And lead 3?"}
        ])
    );
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {
            "name": "crm__lookup_lead",
            "description": "Looks up a lead by id",
            "parameters": lookup_spec().parameters
        }}])
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "function": {"name": "crm__lookup_lead"}})
    );

    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.model, "gpt-test-2025");
    assert_eq!(r.content, "");
    assert_eq!(r.tool_calls.len(), 2);
    assert_eq!(r.tool_calls[0].id, "call_1");
    assert_eq!(
        r.tool_calls[0].name, "crm.lookup_lead",
        "wire names map back"
    );
    assert_eq!(r.tool_calls[0].arguments, json!({"lead_id": 3}));
    assert_eq!(
        r.tool_calls[1].arguments,
        json!("{\"lead_id\": 4"),
        "invalid JSON arguments pass through as a string"
    );
    assert_eq!(
        (
            r.usage.input_tokens,
            r.usage.output_tokens,
            r.usage.cached_input_tokens
        ),
        (120, 30, 64)
    );
}

#[tokio::test]
async fn output_schema_becomes_response_format_and_compatible_servers_get_max_tokens() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(text_response("{\"score\": 4}")))
        .mount(&server)
        .await;
    let strict = build_provider(&config(&server).with_strict_output_schema(true)).unwrap();
    let r = strict.complete(&schema_request()).await.unwrap();
    assert_eq!(r.content, "{\"score\": 4}");
    assert_eq!(r.finish_reason, FinishReason::Stop);

    let compatible = build_provider(
        &ProviderConfig::new(ProviderKind::OpenAiCompatible, "local-model")
            .with_base_url(format!("{}/v1/", server.uri()))
            .with_header("x-gateway-route", "blue")
            .with_name("vllm"),
    )
    .unwrap();
    assert_eq!(compatible.name(), "vllm");
    let mut request = schema_request().with_max_tokens(77);
    request.model = String::new();
    compatible.complete(&request).await.unwrap();

    let received = server.received_requests().await.unwrap();
    let first: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(
        first["response_format"],
        json!({"type": "json_schema", "json_schema": {
            "name": "rating__v1",
            "schema": schema_request().output_schema.unwrap().schema,
            "strict": true
        }})
    );
    assert!(first.get("tools").is_none() && first.get("tool_choice").is_none());

    let second: Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(
        second["model"], "local-model",
        "the config's model is the default"
    );
    assert_eq!(
        second["max_tokens"], 77,
        "compatible servers get max_tokens"
    );
    assert!(second.get("max_completion_tokens").is_none());
    assert_eq!(second["response_format"]["json_schema"]["strict"], false);
    assert!(
        received[1].headers.get("authorization").is_none(),
        "no key, no auth header"
    );
    assert_eq!(received[1].headers.get("x-gateway-route").unwrap(), "blue");
}

#[tokio::test]
async fn streams_text_and_assembles_tool_arguments_split_across_chunks() {
    let server = MockServer::start().await;
    let mut body = sse_data(&[
        chunk(json!({"role": "assistant", "content": ""}), None),
        chunk(json!({"content": "Checking "}), None),
        chunk(json!({"content": "both."}), None),
        tool_delta(0, Some("call_1"), Some("crm__lookup_lead"), ""),
        tool_delta(0, None, None, "{\"lead"),
        tool_delta(1, Some("call_2"), Some("crm__lookup_lead"), "{\"lead_id\""),
        tool_delta(0, None, None, "_id\": 3}"),
    ]);
    // Keep-alive comments and event types we do not know are skipped.
    body.push_str(": keep-alive\n\nevent: heartbeat\ndata: not json\n\n");
    body.push_str(&sse_data(&[
        tool_delta(1, None, None, ": 4}"),
        chunk(json!({}), Some("tool_calls")),
        // The usage-only final chunk of `stream_options.include_usage`.
        json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
               "model": "gpt-test", "choices": [],
               "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70,
                         "prompt_tokens_details": {"cached_tokens": 10}}}),
    ]));
    body.push_str("data: [DONE]\n\n");
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_partial_json(
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        ))
        .respond_with(sse(body))
        .mount(&server)
        .await;

    let events: Vec<StreamEvent> = drain(provider(&server).stream(&full_request()).await.unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(events[0], StreamEvent::TextDelta("Checking ".into()));
    assert!(events.contains(&StreamEvent::ToolCallDelta {
        index: 1,
        id: Some("call_2".into()),
        name: Some("crm.lookup_lead".into()),
        arguments_delta: "{\"lead_id\"".into(),
    }));
    let n = events.len();
    assert!(matches!(events[n - 2], StreamEvent::Usage(_)));
    assert_eq!(events[n - 1], StreamEvent::Finish(FinishReason::ToolCalls));

    let r = assemble(provider(&server).stream(&full_request()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(r.content, "Checking both.");
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(
        r.tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("call_1", "crm.lookup_lead", json!({"lead_id": 3})),
            ("call_2", "crm.lookup_lead", json!({"lead_id": 4})),
        ]
    );
    assert_eq!(
        (
            r.usage.input_tokens,
            r.usage.output_tokens,
            r.usage.cached_input_tokens
        ),
        (50, 20, 10)
    );
}

#[tokio::test]
async fn streamed_invalid_tool_arguments_pass_through_as_a_string() {
    let server = MockServer::start().await;
    let body = sse_data(&[
        tool_delta(
            0,
            Some("call_1"),
            Some("crm__lookup_lead"),
            "{\"lead_id\": ",
        ),
        tool_delta(0, None, None, "three}"),
        chunk(json!({}), Some("tool_calls")),
    ]) + "data: [DONE]\n\n";
    Mock::given(method("POST"))
        .respond_with(sse(body))
        .mount(&server)
        .await;
    let r = assemble(provider(&server).stream(&full_request()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(r.tool_calls[0].arguments, json!("{\"lead_id\": three}"));
}

async fn stream_error(body: String) -> Error {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse(body))
        .mount(&server)
        .await;
    let events = drain(provider(&server).stream(&full_request()).await.unwrap()).await;
    let errors: Vec<&Error> = events.iter().filter_map(|e| e.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "exactly one error, at the end: {events:?}");
    assert!(events.last().unwrap().is_err());
    events.into_iter().last().unwrap().unwrap_err()
}

#[tokio::test]
async fn a_stream_cut_off_midway_is_malformed() {
    let cut = sse_data(&[
        chunk(json!({"content": "Partial"}), None),
        tool_delta(0, Some("call_1"), Some("crm__lookup_lead"), "{\"lead"),
    ]);
    assert_eq!(
        stream_error(cut.clone()).await.kind(),
        ErrorKind::MalformedResponse
    );

    // The same through the accumulator, as the agent consumes it.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse(
            cut + "data: {\"choices\": [{\"index\": 0, \"delta\": {\"con"
        ))
        .mount(&server)
        .await;
    let e = assemble(provider(&server).stream(&full_request()).await.unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
}

#[tokio::test]
async fn a_malformed_data_line_is_malformed_not_a_panic() {
    let body = sse_data(&[chunk(json!({"content": "ok"}), None)])
        + "data: {\"choices\": [ this is not json\n\n"
        + &sse_data(&[chunk(json!({}), Some("stop"))])
        + "data: [DONE]\n\n";
    let e = stream_error(body).await;
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
    assert!(e.to_string().contains("not valid JSON"), "{e}");
}

#[tokio::test]
async fn a_bad_first_line_is_retried_when_nothing_was_delivered() {
    use agentkit_providers::resilience::{ProviderExt, RetryPolicy};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(sse("data: {\"choices\": [ not json\n\n".into()))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(sse(sse_data(&[
            chunk(json!({"content": "second try"}), None),
            chunk(json!({}), Some("stop")),
        ]) + "data: [DONE]\n\n"))
        .with_priority(2)
        .mount(&server)
        .await;
    let p = provider(&server).with_retry(
        RetryPolicy::attempts(2)
            .with_delays(Duration::from_millis(1), Duration::from_millis(1))
            .without_jitter(),
    );
    let r = assemble(p.stream(&full_request()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(r.content, "second try");
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn errors_inside_a_stream_are_typed() {
    let body = sse_data(&[
        chunk(json!({"content": "Hel"}), None),
        json!({"error": {"message": "The server had an error while processing your request.",
                         "type": "server_error", "param": null, "code": null}}),
    ]);
    assert_eq!(stream_error(body).await.kind(), ErrorKind::Server);
    let body = "event: error\ndata: {\"error\": {\"message\": \"Overloaded\", \"type\": \"overloaded_error\"}}\n\n".to_string();
    assert_eq!(stream_error(body).await.kind(), ErrorKind::Overloaded);
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
    assert_eq!(complete.kind(), stream.kind(), "complete and stream agree");
    complete
}

fn openai_error(status: u16, message: &str, kind: &str, code: Option<&str>) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}}),
    )
}

#[tokio::test]
async fn http_errors_map_to_typed_errors() {
    let e = error_for(openai_error(
        401,
        "Incorrect API key provided: sk-test-***6789.",
        "invalid_request_error",
        Some("invalid_api_key"),
    ))
    .await;
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(!e.is_retryable());

    let e = error_for(
        openai_error(
            429,
            "Rate limit reached for requests",
            "requests",
            Some("rate_limit_exceeded"),
        )
        .insert_header("retry-after", "2"),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));

    let e = error_for(
        openai_error(
            429,
            "Rate limit reached for tokens",
            "tokens",
            Some("rate_limit_exceeded"),
        )
        .insert_header("retry-after", "20")
        .insert_header("retry-after-ms", "1250"),
    )
    .await;
    assert_eq!(
        e.retry_after(),
        Some(Duration::from_millis(1250)),
        "ms wins"
    );

    let e = error_for(openai_error(
        429,
        "You exceeded your current quota, please check your plan and billing details.",
        "insufficient_quota",
        Some("insufficient_quota"),
    ))
    .await;
    assert_eq!(
        e.kind(),
        ErrorKind::PermissionDenied,
        "no retry fixes billing"
    );

    let e = error_for(openai_error(
        400,
        "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
        "invalid_request_error",
        Some("context_length_exceeded"),
    ))
    .await;
    assert_eq!(e.kind(), ErrorKind::ContextLengthExceeded);

    let e = error_for(openai_error(
        400,
        "Invalid 'messages[1].role'",
        "invalid_request_error",
        None,
    ))
    .await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    let e = error_for(openai_error(
        404,
        "The model `gpt-nope` does not exist or you do not have access to it.",
        "invalid_request_error",
        Some("model_not_found"),
    ))
    .await;
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);

    let e = error_for(openai_error(
        500,
        "The server had an error",
        "server_error",
        None,
    ))
    .await;
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
    assert!(e.is_retryable());

    let e = error_for(ResponseTemplate::new(502).set_body_string("<html>Bad gateway</html>")).await;
    assert!(
        matches!(
            e,
            Error::Server {
                status: Some(502),
                ..
            }
        ),
        "{e:?}"
    );

    let e = error_for(
        openai_error(
            503,
            "The engine is currently overloaded, please try again later",
            "server_error",
            None,
        )
        .insert_header("retry-after", "1"),
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));

    let e = error_for(ResponseTemplate::new(529).set_body_string("overloaded")).await;
    assert_eq!(e.kind(), ErrorKind::Overloaded);
}

#[tokio::test]
async fn bad_bodies_are_malformed_responses() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"choices\": [ nope"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": "x", "choices": []})))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"choices": [{"index": 0, "finish_reason": "stop"}]})),
        )
        .mount(&server)
        .await;
    let p = provider(&server);
    for _ in 0..3 {
        let e = p.complete(&full_request()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MalformedResponse, "{e}");
    }
}

#[tokio::test]
async fn timeouts_and_refused_connections_are_typed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(text_response("late"))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let slow = build_provider(&config(&server).with_timeout(Duration::from_millis(200))).unwrap();
    let e = slow.complete(&full_request()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_retryable());

    let refused = build_provider(
        &ProviderConfig::new(ProviderKind::OpenAi, "m")
            .with_base_url("http://127.0.0.1:1/v1")
            .with_api_key(KeyRef::value(KEY)),
    )
    .unwrap();
    let e = refused.complete(&full_request()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn an_agent_turn_with_a_tool_call_runs_through_the_provider() {
    let server = MockServer::start().await;
    let first = sse_data(&[
        tool_delta(0, Some("call_42"), Some("crm__lookup_lead"), "{\"lead_"),
        tool_delta(0, None, None, "id\": 42}"),
        chunk(json!({}), Some("tool_calls")),
        json!({"choices": [], "usage": {"prompt_tokens": 80, "completion_tokens": 12, "total_tokens": 92}}),
    ]) + "data: [DONE]\n\n";
    let second = sse_data(&[
        chunk(json!({"content": "Lead 42 "}), None),
        chunk(json!({"content": "is Ada."}), Some("stop")),
        json!({"choices": [], "usage": {"prompt_tokens": 110, "completion_tokens": 5, "total_tokens": 115}}),
    ]) + "data: [DONE]\n\n";
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse(first))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse(second))
        .with_priority(2)
        .mount(&server)
        .await;

    let (tool, seen) = lookup_tool();
    let agent = Agent::builder()
        .id("crm")
        .system_prompt("You are a CRM assistant.")
        .model(provider(&server), "gpt-test")
        .tool(tool)
        .build()
        .unwrap();
    let mut events = agent.run_stream(RunRequest::new("acme", "s1", "Who is lead 42?"));
    let mut text = String::new();
    let mut outcome = None;
    while let Some(e) = events.next().await {
        match e.unwrap() {
            AgentEvent::TextDelta(t) => text.push_str(&t),
            AgentEvent::Done(o) => outcome = Some(o),
            _ => {}
        }
    }
    assert_eq!(outcome.unwrap().reply(), Some("Lead 42 is Ada."));
    assert_eq!(text, "Lead 42 is Ada.");
    assert_eq!(*seen.lock().unwrap(), vec![json!({"lead_id": 42})]);

    let sent = bodies(&server).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["tools"][0]["function"]["name"], "crm__lookup_lead");
    let messages = sent[1]["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(
        messages[n - 2]["tool_calls"][0],
        json!({"id": "call_42", "type": "function",
               "function": {"name": "crm__lookup_lead", "arguments": "{\"lead_id\":42}"}})
    );
    assert_eq!(messages[n - 1]["role"], "tool");
    assert_eq!(messages[n - 1]["tool_call_id"], "call_42");
    let result: Value = serde_json::from_str(messages[n - 1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result["name"], "Ada");
}

#[tokio::test]
async fn embeddings_are_batched_ordered_and_checked() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .and(body_partial_json(json!({"input": ["a", "b"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "model": "text-embedding-3-small",
            // Out of order on purpose: `index` decides.
            "data": [
                {"object": "embedding", "index": 1, "embedding": [0.0, 1.0, 0.0]},
                {"object": "embedding", "index": 0, "embedding": [1.0, 0.0, 0.0]}
            ],
            "usage": {"prompt_tokens": 2, "total_tokens": 2}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .and(body_partial_json(json!({"input": ["c"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.0, 0.0, 1.0]}],
            "usage": {"prompt_tokens": 1, "total_tokens": 1}
        })))
        .mount(&server)
        .await;
    let mut cfg = config(&server).with_dimensions(3).with_batch_size(2);
    cfg.model = "text-embedding-3-small".into();
    let e = build_embedder(&cfg).unwrap();
    assert_eq!(e.dimensions(), 3);
    let v = e
        .embed(&["a".into(), "b".into(), "c".into()])
        .await
        .unwrap();
    assert_eq!(
        v,
        vec![
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.0, 0.0, 1.0]
        ]
    );
    let sent = bodies(&server).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0],
        json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float", "dimensions": 3})
    );

    // A model returning another length than configured is a configuration error.
    let mut wrong = cfg.clone().with_dimensions(4);
    wrong.batch_size = None;
    let e = build_embedder(&wrong).unwrap();
    let err = e.embed(&["c".into()]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{err}");

    // Known models need no dimensions; unknown ones do.
    let mut known = config(&server);
    known.model = "text-embedding-3-large".into();
    assert_eq!(build_embedder(&known).unwrap().dimensions(), 3072);
    let mut unknown = config(&server);
    unknown.model = "my-embedder".into();
    assert_eq!(
        build_embedder(&unknown).err().unwrap().kind(),
        ErrorKind::InvalidConfig
    );
}
