//! Run with: `cargo bench --bench turn`
//!
//! Agent turn overhead: one user input, a scripted model proposing one tool call, the tool, and
//! the final answer — through the full agent (allow-list, schema validation, policy, idempotency
//! key, execution record, usage events, audit entry, run record, message deltas, in-memory
//! store) against a hand-written loop making the same model and tool calls with no framework.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use agentkit::model::CompletionRequest;
use agentkit::prelude::*;
use agentkit::testkit::{ScriptedModel, ScriptedResponse};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

fn lookup_tool() -> Arc<dyn Tool> {
    Arc::new(FnTool::new(
        ToolSpec::new(
            "crm.lookup_lead",
            "Looks up a lead by id",
            json!({
                "type": "object",
                "properties": {"lead_id": {"type": "integer", "minimum": 1}},
                "required": ["lead_id"],
                "additionalProperties": false
            }),
        ),
        |_ctx, args| async move {
            Ok(json!({"lead_id": args["lead_id"], "name": "Ada", "stage": "qualified"}))
        },
    ))
}

fn script() -> Vec<ScriptedResponse> {
    vec![
        ScriptedResponse::tool_call("crm.lookup_lead", json!({"lead_id": 42})),
        ScriptedResponse::text("Lead 42 is Ada, qualified."),
    ]
}

const PROMPT: &str = "You are a CRM assistant.";

/// The same calls an agent makes, written by hand: no validation, policy or records.
async fn hand_loop(model: &dyn LlmProvider, tool: &dyn Tool, specs: &Arc<[ToolSpec]>, n: u64) {
    let mut messages = vec![Message::system(PROMPT), Message::user("Who is lead 42?")];
    let request = CompletionRequest::new("m", messages.clone()).with_tools(specs.clone());
    let response = model.complete(&request).await.unwrap();
    messages.push(response.to_message());
    for call in &response.tool_calls {
        let ctx = ToolContext::new(
            "bench".into(),
            "a".into(),
            format!("s{n}").into(),
            RunId::generate(),
            call.id.clone(),
            "k".into(),
        );
        let out = tool.call(ctx, call.arguments.clone()).await.unwrap();
        messages.push(Message::tool_result(&call.id, &call.name, out.to_string()));
    }
    let request = CompletionRequest::new("m", messages).with_tools(specs.clone());
    black_box(model.complete(&request).await.unwrap());
}

fn agent(store: Arc<dyn StateStore>) -> Agent {
    Agent::builder()
        .id("bench")
        .system_prompt(PROMPT)
        .model(Arc::new(ScriptedModel::repeating(script())), "m")
        .tool(lookup_tool())
        .store(store)
        .memory(MemoryPolicy::LastMessages { count: 20 })
        .build()
        .unwrap()
}

fn turn(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("turn_one_tool_call");

    let model = ScriptedModel::repeating(script());
    let tool = lookup_tool();
    let specs: Arc<[ToolSpec]> = vec![tool.spec().clone()].into();
    let n = AtomicU64::new(0);
    group.bench_function("baseline_hand_loop", |b| {
        b.to_async(&rt)
            .iter(|| hand_loop(&model, &*tool, &specs, n.fetch_add(1, Ordering::Relaxed)))
    });

    let a = agent(Arc::new(InMemoryStore::new()));
    group.bench_function("agentkit_new_session", |b| {
        b.to_async(&rt).iter(|| async {
            let s = n.fetch_add(1, Ordering::Relaxed);
            black_box(
                a.run(RunRequest::new("bench", format!("s{s}"), "Who is lead 42?"))
                    .await
                    .unwrap(),
            );
        })
    });
    group.finish();

    // History length: the window keeps the cost flat as a session grows.
    let mut group = c.benchmark_group("turn_history");
    for len in [10usize, 100, 1000] {
        let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
        let a = agent(store.clone());
        let session = SessionId::from(format!("h{len}"));
        rt.block_on(async {
            while store
                .load_messages(
                    &"bench".into(),
                    &session,
                    agentkit::store::MessageWindow::All,
                )
                .await
                .map(|m| m.len())
                .unwrap_or(0)
                < len
            {
                a.run(RunRequest::new("bench", session.clone(), "Who is lead 42?"))
                    .await
                    .unwrap();
            }
        });
        group.bench_function(format!("messages_{len}"), |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    a.run(RunRequest::new("bench", session.clone(), "Who is lead 42?"))
                        .await
                        .unwrap(),
                );
            })
        });
    }
    group.finish();
}

criterion_group!(benches, turn);
criterion_main!(benches);
