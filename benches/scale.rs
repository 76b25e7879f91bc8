//! Run with: `cargo bench --bench scale` (options: `-- --sessions 10000 --turns 10 --model-ms 100 --no-memory`).
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

/// Heap allocations made so far (freed or not; reallocations not counted).
fn allocations() -> usize {
    ALLOC.stats().allocations
}

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
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
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
    if !std::env::args().any(|a| a == "--no-memory") {
        memory_per_session(&rt);
    }
    let sessions = arg("--sessions", 10_000);
    let turns = arg("--turns", 10);
    let model_ms = arg("--model-ms", 100) as u64;
    concurrent(&rt, sessions, turns, model_ms);
}

fn memory_per_session(rt: &tokio::runtime::Runtime) {
    println!("## memory per idle session (in-memory store)");
    println!(
        "`conversation`: the session and its 4 messages only (what a session is); `one turn`: \
         everything one finished turn leaves (also the run record, execution record, 5 usage \
         events, audit entry). Allocations: heap allocations made while writing them (kept or \
         freed), per session."
    );
    println!("| sessions | what | live bytes | bytes per session | allocations per session |");
    println!("|---|---|---|---|---|");
    let turn_messages = |s: usize| {
        vec![
            Message::user(question(0)),
            Message::Assistant {
                content: String::new(),
                tool_calls: vec![ToolCall::new(
                    "call_1",
                    "crm.lookup_lead",
                    json!({"lead_id": 42}),
                )],
            },
            Message::tool_result(
                "call_1",
                "crm.lookup_lead",
                format!(r#"{{"lead_id":42,"name":"Ada","stage":"qualified","s":{s}}}"#),
            ),
            Message::assistant("Lead 42 is Ada, qualified."),
        ]
    };
    for n in [1_000usize, 10_000, 100_000] {
        // The conversation alone, written straight through the store.
        let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
        let before = live_bytes();
        let allocs_before = allocations();
        rt.block_on(async {
            let tenant = TenantId::from_static("bench");
            for s in 0..n {
                let scope = agentkit::scope::Scope::new(
                    tenant.clone(),
                    AgentId::from_static("bench"),
                    SessionId::new(format!("s{s}")).unwrap(),
                    RunId::generate(),
                );
                let step = agentkit::store::Step {
                    session: Some(agentkit::store::SessionRecord::new(
                        tenant.clone(),
                        scope.session.clone(),
                        scope.agent.clone(),
                    )),
                    messages: Some(agentkit::store::StepMessages::new(&scope, turn_messages(s))),
                    ..agentkit::store::Step::default()
                };
                store.commit_step(&tenant, step).await.unwrap();
            }
        });
        let bytes = live_bytes() - before;
        println!(
            "| {n} | conversation | {bytes} | {} | {} |",
            bytes / isize::try_from(n).unwrap(),
            (allocations() - allocs_before) / n
        );
        drop(store);

        let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
        let a = agent(store.clone(), Duration::ZERO);
        let before = live_bytes();
        let allocs_before = allocations();
        rt.block_on(async {
            for s in 0..n {
                a.run(RunRequest::new("bench", format!("s{s}"), question(0)))
                    .await
                    .unwrap();
            }
        });
        let bytes = live_bytes() - before;
        println!(
            "| {n} | one turn | {bytes} | {} | {} |",
            bytes / isize::try_from(n).unwrap(),
            (allocations() - allocs_before) / n
        );
        drop(a);
        drop(store);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// What one session's task reports: for each turn, when it finished and how long it took.
type Turns = Vec<(Instant, Duration)>;

fn concurrent(rt: &tokio::runtime::Runtime, sessions: usize, turns: usize, model_ms: u64) {
    let per_call = Duration::from_millis(model_ms) / 2;
    let period = Duration::from_millis(model_ms);
    let ideal = sessions as f64 / period.as_secs_f64();
    println!(
        "\n## {sessions} concurrent sessions × {turns} turns, model {model_ms} ms per turn \
         (2 calls), 2 worker threads; ideal {ideal:.0} turns/s"
    );
    println!(
        "Sessions start spread over the first {model_ms} ms (arrivals, not one synchronized \
         burst) and then run their turns back to back. Throughput is counted in the steady \
         state: turns finished between 2 model periods after the start and 2 before the end."
    );
    println!("| driver | turns/s (steady) | of ideal | p50 | p99 | max | wall |");
    println!("|---|---|---|---|---|---|---|");
    // Session `s` starts at `s / sessions` of one model period.
    let start_of = move |s: usize| period.mul_f64(s as f64 / sessions as f64);

    // Baseline: the hand loop.
    let model = Arc::new(PacedModel { delay: per_call });
    let tool = lookup_tool();
    let (results, started) = rt.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..sessions)
            .map(|s| {
                let (model, tool) = (model.clone(), tool.clone());
                tokio::spawn(async move {
                    tokio::time::sleep_until((started + start_of(s)).into()).await;
                    let specs: Arc<[ToolSpec]> = vec![tool.spec().clone()].into();
                    let mut history = vec![Message::system("You are a CRM assistant.")];
                    let mut done: Turns = Vec::with_capacity(turns);
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
                        done.push((Instant::now(), t0.elapsed()));
                    }
                    done
                })
            })
            .collect();
        let mut all = Vec::with_capacity(sessions);
        for t in tasks {
            all.push(t.await.unwrap());
        }
        (all, started)
    });
    report("hand loop", &results, started, period, ideal);

    // agentkit: every turn governed and recorded in the in-memory store.
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let a = agent(store.clone(), per_call);
    let (results, started) = rt.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..sessions)
            .map(|s| {
                let a = a.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until((started + start_of(s)).into()).await;
                    let mut done: Turns = Vec::with_capacity(turns);
                    for turn in 0..turns {
                        let t0 = Instant::now();
                        let outcome = a
                            .run(RunRequest::new("bench", format!("s{s}"), question(turn)))
                            .await
                            .unwrap();
                        assert!(matches!(outcome, RunOutcome::Completed(_)));
                        done.push((Instant::now(), t0.elapsed()));
                    }
                    done
                })
            })
            .collect();
        let mut all = Vec::with_capacity(sessions);
        for t in tasks {
            all.push(t.await.unwrap());
        }
        (all, started)
    });
    report(
        "agentkit (in-memory store)",
        &results,
        started,
        period,
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

fn report(driver: &str, results: &[Turns], started: Instant, period: Duration, ideal: f64) {
    let mut latencies: Vec<Duration> = results.iter().flatten().map(|(_, d)| *d).collect();
    latencies.sort();
    let end = results
        .iter()
        .flatten()
        .map(|(at, _)| *at)
        .max()
        .unwrap_or(started);
    let (from, to) = (
        started + period * 2,
        end.checked_sub(period * 2).unwrap_or(end),
    );
    let in_window = results
        .iter()
        .flatten()
        .filter(|(at, _)| *at >= from && *at < to)
        .count();
    let window = to.saturating_duration_since(from).as_secs_f64();
    let rate = if window > 0.0 {
        in_window as f64 / window
    } else {
        f64::NAN
    };
    println!(
        "| {driver} | {rate:.0} | {:.1} % | {:.1} ms | {:.1} ms | {:.1} ms | {:.2} s |",
        100.0 * rate / ideal,
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        (end - started).as_secs_f64(),
    );
}
