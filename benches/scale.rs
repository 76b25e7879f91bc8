//! Run with: `cargo bench --bench scale` (options: `-- --sessions 10000 --turns 3 --model-ms 100`).
//!
//! Scale, not speed: what a host running many conversations at once sees.
//!
//! 1. **Memory per idle session**: sessions that each had one turn (question, tool call, tool
//!    result, answer — every record kept: session, 4 messages, run record, execution record, 5
//!    usage events, audit entry) and are now idle, in the in-memory store; the agent itself
//!    holds nothing per session. Bytes are counted by `stats_alloc`'s global allocator (live bytes
//!    after the sessions exist minus before), for 1,000, 10,000 and 100,000 sessions.
//! 2. **Concurrent sessions**: `--sessions` sessions (default 10,000) each run `--turns` turns
//!    one after another, all sessions at once, on a 2-worker Tokio runtime. The model takes
//!    `--model-ms` (default 100 ms) per turn, as two calls of half that each (the tool call,
//!    then the answer); it answers from the request (no shared script), so interleaving cannot
//!    change a conversation. Reported: throughput (turns/s) against the ideal (sessions ÷ model
//!    time per turn), p50/p99/max turn latency, and a check that every session holds exactly
//!    its turns' messages, in order. The baseline is the same load through a hand loop (the
//!    same model and tool calls, messages in a `Vec`, no records).
#![allow(missing_docs, clippy::unwrap_used)]

use std::alloc::System;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentkit::model::{CompletionRequest, CompletionResponse, ProviderCapabilities};
use agentkit::prelude::*;
use async_trait::async_trait;
use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

/// Counts heap bytes (`stats_alloc`: the system allocator with counters).
#[global_allocator]
static ALLOC: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Live heap bytes now.
fn live_bytes() -> isize {
    let s = ALLOC.stats();
    s.bytes_allocated as isize - s.bytes_deallocated as isize + s.bytes_reallocated
}

/// A model that proposes the lookup for a question and answers once the tool result is in,
/// after `delay` per call.
struct PacedModel {
    delay: Duration,
}

#[async_trait]
impl LlmProvider for PacedModel {
    fn name(&self) -> &str {
        "paced"
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::default()
    }

    async fn complete(&self, request: &CompletionRequest) -> agentkit::Result<CompletionResponse> {
        tokio::time::sleep(self.delay).await;
        let usage = Usage {
            input_tokens: 40,
            output_tokens: 12,
            ..Usage::default()
        };
        Ok(match request.messages.last() {
            Some(Message::Tool { .. }) => {
                CompletionResponse::new("Lead 42 is Ada, qualified.", Vec::new(), usage)
            }
            _ => CompletionResponse::new(
                "",
                vec![ToolCall::new(
                    "call_1",
                    "crm.lookup_lead",
                    json!({"lead_id": 42}),
                )],
                usage,
            ),
        })
    }
}

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

fn agent(store: Arc<dyn StateStore>, delay: Duration) -> Agent {
    Agent::builder()
        .id("bench")
        .system_prompt("You are a CRM assistant.")
        .model(Arc::new(PacedModel { delay }), "m")
        .tool(lookup_tool())
        .store(store)
        .memory(MemoryPolicy::LastMessages { count: 20 })
        .build()
        .unwrap()
}

fn question(turn: usize) -> String {
    format!("Turn {turn}: who is lead 42?")
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing else we know.
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    memory_per_session(&rt);
    let sessions = arg("--sessions", 10_000);
    let turns = arg("--turns", 3);
    let model_ms = arg("--model-ms", 100) as u64;
    concurrent(&rt, sessions, turns, model_ms);
}

fn memory_per_session(rt: &tokio::runtime::Runtime) {
    println!("## memory per idle session (in-memory store; one finished turn each)");
    println!("| sessions | live bytes | bytes per session |");
    println!("|---|---|---|");
    for n in [1_000usize, 10_000, 100_000] {
        let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
        let a = agent(store.clone(), Duration::ZERO);
        let before = live_bytes();
        rt.block_on(async {
            for s in 0..n {
                a.run(RunRequest::new("bench", format!("s{s}"), question(0)))
                    .await
                    .unwrap();
            }
        });
        let after = live_bytes();
        let bytes = after - before;
        println!(
            "| {n} | {bytes} | {} |",
            bytes / isize::try_from(n).unwrap()
        );
        drop(a);
        drop(store);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn concurrent(rt: &tokio::runtime::Runtime, sessions: usize, turns: usize, model_ms: u64) {
    let per_call = Duration::from_millis(model_ms) / 2;
    let ideal = sessions as f64 / (model_ms as f64 / 1000.0);
    println!(
        "\n## {sessions} concurrent sessions × {turns} turns, model {model_ms} ms per turn \
         (2 calls), 2 worker threads; ideal {ideal:.0} turns/s"
    );
    println!("| driver | turns/s | of ideal | p50 | p99 | max | wall |");
    println!("|---|---|---|---|---|---|---|");

    // Baseline: the hand loop.
    let model = Arc::new(PacedModel { delay: per_call });
    let tool = lookup_tool();
    let (latencies, wall) = rt.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..sessions)
            .map(|s| {
                let (model, tool) = (model.clone(), tool.clone());
                tokio::spawn(async move {
                    let specs: Arc<[ToolSpec]> = vec![tool.spec().clone()].into();
                    let mut history = vec![Message::system("You are a CRM assistant.")];
                    let mut lat = Vec::with_capacity(turns);
                    for turn in 0..turns {
                        let t0 = Instant::now();
                        history.push(Message::user(question(turn)));
                        let request =
                            CompletionRequest::new("m", history.clone()).with_tools(specs.clone());
                        let response = model.complete(&request).await.unwrap();
                        history.push(response.to_message());
                        for call in &response.tool_calls {
                            let ctx = ToolContext::new(
                                agentkit::testkit::scope(
                                    "bench",
                                    "a",
                                    format!("s{s}"),
                                    RunId::generate(),
                                ),
                                call.id.clone(),
                                agentkit::id::IdempotencyKey::from_static("k"),
                            );
                            let out = tool.call(ctx, call.arguments.clone()).await.unwrap();
                            history.push(Message::tool_result(
                                &call.id,
                                &call.name,
                                out.to_string(),
                            ));
                        }
                        let request =
                            CompletionRequest::new("m", history.clone()).with_tools(specs.clone());
                        let response = model.complete(&request).await.unwrap();
                        history.push(response.to_message());
                        lat.push(t0.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::with_capacity(sessions * turns);
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        (all, started.elapsed())
    });
    report("hand loop", latencies, wall, sessions * turns, ideal);

    // agentkit: every turn governed and recorded in the in-memory store.
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let a = agent(store.clone(), per_call);
    let (latencies, wall) = rt.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..sessions)
            .map(|s| {
                let a = a.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(turns);
                    for turn in 0..turns {
                        let t0 = Instant::now();
                        let outcome = a
                            .run(RunRequest::new("bench", format!("s{s}"), question(turn)))
                            .await
                            .unwrap();
                        assert!(matches!(outcome, RunOutcome::Completed(_)));
                        lat.push(t0.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut all = Vec::with_capacity(sessions * turns);
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        (all, started.elapsed())
    });
    report(
        "agentkit (in-memory store)",
        latencies,
        wall,
        sessions * turns,
        ideal,
    );

    // No lost or reordered messages.
    rt.block_on(async {
        let tenant = TenantId::from_static("bench");
        for s in 0..sessions {
            let session = SessionId::new(format!("s{s}")).unwrap();
            let messages = store
                .load_messages(&tenant, &session, agentkit::store::MessageWindow::All)
                .await
                .unwrap();
            assert_eq!(
                messages.len(),
                4 * turns,
                "session {s}: every message is stored"
            );
            for (i, m) in messages.iter().enumerate() {
                assert_eq!(m.seq, i as u64 + 1, "session {s}: no gaps");
                if i % 4 == 0 {
                    assert_eq!(m.message.text(), question(i / 4), "session {s}: turn order");
                }
            }
        }
    });
    println!("every session holds its {turns} turns' messages, in order");
}

fn report(driver: &str, mut latencies: Vec<Duration>, wall: Duration, turns: usize, ideal: f64) {
    latencies.sort();
    let rate = turns as f64 / wall.as_secs_f64();
    println!(
        "| {driver} | {rate:.0} | {:.1} % | {:.1} ms | {:.1} ms | {:.1} ms | {:.2} s |",
        100.0 * rate / ideal,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        wall.as_secs_f64(),
    );
}
