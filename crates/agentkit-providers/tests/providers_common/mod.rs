//! Helpers shared by the provider tests (mock servers speaking each provider's wire format).
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use agentkit_core::message::{Message, ToolCall};
use agentkit_core::model::{CompletionRequest, OutputSchema, StreamEvent, ToolChoice};
use agentkit_core::prelude::*;
use futures::StreamExt;
use serde_json::{Value, json};
use wiremock::MockServer;

/// The tool every test offers: a namespaced name (mapped on the wire) and a real schema.
pub fn lookup_spec() -> ToolSpec {
    ToolSpec::new(
        "crm.lookup_lead",
        "Looks up a lead by id",
        json!({
            "type": "object",
            "properties": {"lead_id": {"type": "integer"}},
            "required": ["lead_id"],
            "additionalProperties": false
        }),
    )
}

/// The lookup tool; records the arguments it is called with.
pub fn lookup_tool() -> (Arc<dyn Tool>, Arc<Mutex<Vec<Value>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let tool = FnTool::new(lookup_spec(), move |_ctx, args| {
        s.lock().unwrap().push(args.clone());
        async move { Ok(json!({"lead_id": args["lead_id"], "name": "Ada"})) }
    });
    (Arc::new(tool), seen)
}

/// A conversation with everything in it: system prompt, user, assistant text plus two tool
/// calls, both results (one an error), and a follow-up user message.
pub fn full_request() -> CompletionRequest {
    CompletionRequest::new(
        "model-x",
        vec![
            Message::system("You are a CRM assistant."),
            Message::user("Who are leads 1 and 2?"),
            Message::Assistant {
                content: "Let me check.".into(),
                tool_calls: vec![
                    ToolCall::new("call_a", "crm.lookup_lead", json!({"lead_id": 1})),
                    ToolCall::new("call_b", "crm.lookup_lead", json!({"lead_id": 2})),
                ],
            },
            Message::tool_result("call_a", "crm.lookup_lead", r#"{"name":"Ada"}"#),
            Message::tool_error("call_b", "crm.lookup_lead", "no such lead"),
            Message::user("Thanks. And lead 3?"),
        ],
    )
    .with_tools(vec![lookup_spec()])
    .with_tool_choice(ToolChoice::Tool("crm.lookup_lead".into()))
    .with_temperature(0.25)
    .with_max_tokens(321)
}

/// A request with an output schema.
pub fn schema_request() -> CompletionRequest {
    CompletionRequest::new("model-x", vec![Message::user("Rate it")]).with_output_schema(
        OutputSchema {
            name: "rating.v1".into(),
            schema: json!({"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}),
        },
    )
}

/// JSON bodies of every request the server received, in order.
pub async fn bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

/// An SSE body of unnamed `data:` events.
pub fn sse_data(events: &[Value]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

/// An SSE body of named events (`event: <type>` + `data:`), Anthropic style.
pub fn sse_named(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap()))
        .collect()
}

/// Every event of a stream, errors included.
pub async fn drain(stream: agentkit_core::model::CompletionStream) -> Vec<Result<StreamEvent>> {
    stream.collect().await
}

/// Assembles a stream that must succeed.
pub async fn assemble(
    stream: agentkit_core::model::CompletionStream,
) -> Result<agentkit_core::model::CompletionResponse> {
    let mut acc = agentkit_core::model::StreamAccumulator::new();
    let mut stream = stream;
    while let Some(e) = stream.next().await {
        acc.push(&e?)?;
    }
    acc.finish()
}
