//! The Ollama provider against a mock server speaking Ollama's native API.
#![cfg(feature = "ollama")]
#![allow(clippy::unwrap_used)]

mod providers_common;

use std::sync::Arc;

use agentkit_core::ErrorKind;
use agentkit_core::agent::AgentEvent;
use agentkit_core::message::Message;
use agentkit_core::model::{CompletionRequest, FinishReason, LlmProvider, StreamEvent, ToolChoice};
use agentkit_core::prelude::*;
use agentkit_providers::{ProviderConfig, ProviderKind, build_embedder, build_provider};
use futures::StreamExt;
use providers_common::*;
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn config(server: &MockServer) -> ProviderConfig {
    ProviderConfig::new(ProviderKind::Ollama, "qwen3:test")
        .with_base_url(server.uri())
        .with_context_window(32768)
        .with_keep_alive("10m")
}

fn provider(server: &MockServer) -> Arc<dyn LlmProvider> {
    build_provider(&config(server)).unwrap()
}

fn ndjson(lines: &[Value]) -> ResponseTemplate {
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    ResponseTemplate::new(200).set_body_raw(body, "application/x-ndjson")
}

fn line(content: &str) -> Value {
    json!({"model": "qwen3:test", "created_at": "2025-05-27T22:54:57.641643Z",
           "message": {"role": "assistant", "content": content}, "done": false})
}

fn done(reason: &str) -> Value {
    json!({"model": "qwen3:test", "created_at": "2025-05-27T22:54:58Z",
           "message": {"role": "assistant", "content": ""},
           "done_reason": reason, "done": true, "total_duration": 885095291,
           "load_duration": 3753500, "prompt_eval_count": 122, "prompt_eval_duration": 328493000,
           "eval_count": 33, "eval_duration": 552222000})
}

fn tool_call_line(name: &str, arguments: Value) -> Value {
    json!({"model": "qwen3:test", "created_at": "2025-05-27T22:54:57Z",
           "message": {"role": "assistant", "content": "",
                       "tool_calls": [{"function": {"name": name, "arguments": arguments}}]},
           "done": false})
}

#[tokio::test]
async fn sends_the_native_request_and_parses_tool_calls() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "qwen3:test", "created_at": "2024-07-22T20:33:28.123648Z",
            "message": {"role": "assistant", "content": "",
                "tool_calls": [
                    {"function": {"name": "crm.lookup_lead", "arguments": {"lead_id": 3}}},
                    {"id": "call_x", "function": {"index": 1, "name": "crm.lookup_lead", "arguments": {"lead_id": 4}}}
                ]},
            "done_reason": "stop", "done": true,
            "prompt_eval_count": 122, "eval_count": 33
        })))
        .mount(&server)
        .await;

    let mut request = full_request();
    request.tool_choice = ToolChoice::Auto;
    let r = provider(&server).complete(&request).await.unwrap();

    let received = server.received_requests().await.unwrap();
    assert!(received[0].headers.get("authorization").is_none());
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["model"], "model-x");
    assert_eq!(body["stream"], false);
    assert_eq!(body["keep_alive"], "10m");
    assert_eq!(
        body["options"],
        json!({"temperature": 0.25, "num_predict": 321, "num_ctx": 32768})
    );
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You are a CRM assistant."},
            {"role": "user", "content": "Who are leads 1 and 2?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"function": {"name": "crm.lookup_lead", "arguments": {"lead_id": 1}}},
                {"function": {"name": "crm.lookup_lead", "arguments": {"lead_id": 2}}}
            ]},
            {"role": "tool", "content": "{\"name\":\"Ada\"}", "tool_name": "crm.lookup_lead", "tool_call_id": "call_a"},
            {"role": "tool", "content": "no such lead", "tool_name": "crm.lookup_lead", "tool_call_id": "call_b"},
            {"role": "user", "content": "Thanks. And lead 3?"}
        ])
    );
    assert_eq!(
        body["tools"],
        json!([{"type": "function", "function": {"name": "crm.lookup_lead",
                "description": "Looks up a lead by id", "parameters": lookup_spec().parameters}}])
    );
    assert!(body.get("format").is_none());

    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.tool_calls.len(), 2);
    assert!(
        r.tool_calls[0].id.starts_with("call_"),
        "ids are made up when missing"
    );
    assert_ne!(r.tool_calls[0].id, r.tool_calls[1].id);
    assert_eq!(r.tool_calls[1].id, "call_x");
    assert_eq!(r.tool_calls[0].arguments, json!({"lead_id": 3}));
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (122, 33));
}

#[tokio::test]
async fn output_schema_is_the_format_and_tool_choice_filters_tools() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "qwen3:test", "message": {"role": "assistant", "content": "{\"score\": 3}"},
            "done_reason": "stop", "done": true
        })))
        .mount(&server)
        .await;
    let p =
        build_provider(&ProviderConfig::new(ProviderKind::Ollama, "m").with_base_url(server.uri()))
            .unwrap();
    p.complete(&schema_request()).await.unwrap();
    let with = |choice| {
        CompletionRequest::new("m", vec![Message::user("hi")])
            .with_tools(vec![
                lookup_spec(),
                ToolSpec::new("crm.note", "Adds a note", json!({"type": "object"})),
            ])
            .with_tool_choice(choice)
    };
    p.complete(&with(ToolChoice::None)).await.unwrap();
    p.complete(&with(ToolChoice::Tool("crm.note".into())))
        .await
        .unwrap();
    let sent = bodies(&server).await;
    assert_eq!(
        sent[0]["format"],
        schema_request().output_schema.unwrap().schema
    );
    assert!(sent[0].get("options").is_none() && sent[0].get("keep_alive").is_none());
    assert!(
        sent[1].get("tools").is_none(),
        "tool_choice none sends no tools"
    );
    assert_eq!(sent[2]["tools"].as_array().unwrap().len(), 1);
    assert_eq!(sent[2]["tools"][0]["function"]["name"], "crm.note");
}

#[tokio::test]
async fn streams_ndjson_with_tool_calls_and_final_counts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/chat"))
        .and(body_partial_json(json!({"stream": true})))
        .respond_with(ndjson(&[
            line("Checking"),
            line(" now."),
            tool_call_line("crm.lookup_lead", json!({"lead_id": 3})),
            tool_call_line("crm.lookup_lead", json!({"lead_id": 4})),
            done("stop"),
        ]))
        .mount(&server)
        .await;
    let events: Vec<StreamEvent> = drain(provider(&server).stream(&full_request()).await.unwrap())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(events[0], StreamEvent::TextDelta("Checking".into()));
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish(FinishReason::ToolCalls))
    );

    let r = assemble(provider(&server).stream(&full_request()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(r.content, "Checking now.");
    assert_eq!(r.tool_calls.len(), 2);
    assert_eq!(r.tool_calls[1].arguments, json!({"lead_id": 4}));
    assert_eq!((r.usage.input_tokens, r.usage.output_tokens), (122, 33));
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
async fn cut_malformed_and_error_streams() {
    let e = last_stream_error(ndjson(&[line("Hel"), line("lo")])).await;
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);

    let cut = format!(
        "{}\n{{\"model\": \"qwen3:test\", \"message\": {{\"con",
        line("Hel")
    );
    let e = last_stream_error(ResponseTemplate::new(200).set_body_raw(cut, "application/x-ndjson"))
        .await;
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);

    let e = last_stream_error(ndjson(&[
        line("Hel"),
        json!({"error": "an error was encountered while running the model: unexpected EOF"}),
    ]))
    .await;
    assert_eq!(e.kind(), ErrorKind::Server);
}

#[tokio::test]
async fn http_errors_map_to_typed_errors() {
    for (status, body, kind) in [
        (
            404,
            json!({"error": "model \"qwen3:test\" not found, try pulling it first"}),
            ErrorKind::InvalidConfig,
        ),
        (
            400,
            json!({"error": "invalid message format"}),
            ErrorKind::InvalidInput,
        ),
        (
            500,
            json!({"error": "model requires more system memory (9.5 GiB) than is available (4.0 GiB)"}),
            ErrorKind::Server,
        ),
        (
            503,
            json!({"error": "server busy, please try again.  maximum pending requests exceeded"}),
            ErrorKind::Overloaded,
        ),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        let p = provider(&server);
        assert_eq!(
            p.complete(&full_request()).await.unwrap_err().kind(),
            kind,
            "{status}"
        );
        assert_eq!(
            p.stream(&full_request()).await.err().unwrap().kind(),
            kind,
            "{status}"
        );
    }
}

#[tokio::test]
async fn an_agent_turn_with_a_tool_call_runs_through_the_provider() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ndjson(&[
            tool_call_line("crm.lookup_lead", json!({"lead_id": 42})),
            done("stop"),
        ]))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ndjson(&[line("Lead 42 "), line("is Ada."), done("stop")]))
        .with_priority(2)
        .mount(&server)
        .await;
    let (tool, seen) = lookup_tool();
    let agent = Agent::builder()
        .id("crm")
        .system_prompt("You are a CRM assistant.")
        .model(provider(&server), "qwen3:test")
        .tool(tool)
        .build()
        .unwrap();
    let mut events = agent.run_stream(RunRequest::new("acme", "s1", "Who is lead 42?"));
    let mut outcome = None;
    while let Some(e) = events.next().await {
        if let AgentEvent::Done(o) = e.unwrap() {
            outcome = Some(o);
        }
    }
    assert_eq!(outcome.unwrap().reply(), Some("Lead 42 is Ada."));
    assert_eq!(*seen.lock().unwrap(), vec![json!({"lead_id": 42})]);
    let sent = bodies(&server).await;
    let messages = sent[1]["messages"].as_array().unwrap();
    let last = &messages[messages.len() - 1];
    assert_eq!(last["role"], "tool");
    assert_eq!(last["tool_name"], "crm.lookup_lead");
    let call = &messages[messages.len() - 2]["tool_calls"][0]["function"];
    assert_eq!(call["arguments"], json!({"lead_id": 42}));
}

#[tokio::test]
async fn embeddings_are_batched_and_checked() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/api/embed"))
        .and(body_partial_json(json!({"input": ["a", "b"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "nomic-embed-text", "embeddings": [[0.1, 0.2], [0.3, 0.4]],
            "total_duration": 14143917, "load_duration": 1019500, "prompt_eval_count": 8
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/embed"))
        .and(body_partial_json(json!({"input": ["c"]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "nomic-embed-text", "embeddings": [[0.5, 0.6, 0.7]]
        })))
        .mount(&server)
        .await;
    let mut cfg = ProviderConfig::new(ProviderKind::Ollama, "nomic-embed-text")
        .with_base_url(server.uri())
        .with_batch_size(2);
    assert_eq!(
        build_embedder(&cfg).err().unwrap().kind(),
        ErrorKind::InvalidConfig,
        "dimensions are required"
    );
    cfg = cfg.with_dimensions(2);
    let e = build_embedder(&cfg).unwrap();
    let v = e.embed(&["a".into(), "b".into()]).await.unwrap();
    assert_eq!(v, vec![vec![0.1, 0.2], vec![0.3, 0.4]]);
    assert_eq!(
        bodies(&server).await[0],
        json!({"model": "nomic-embed-text", "input": ["a", "b"]})
    );
    let err = e.embed(&["c".into()]).await.unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::InvalidConfig,
        "3 dimensions, 2 configured: {err}"
    );
    assert!(e.embed(&[]).await.unwrap().is_empty());
}
