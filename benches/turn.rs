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
use std::time::{Duration, Instant};

use agentkit::model::CompletionRequest;
use agentkit::prelude::*;
use agentkit::store::SessionRecord;
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
            agentkit::testkit::scope("bench", "a", format!("s{n}"), RunId::generate()),
            call.id.clone(),
            agentkit::id::IdempotencyKey::from_static("k"),
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

/// One agent turn in a new session (`s0`, `s1`, … from `n`).
async fn new_session_turn(a: &Agent, n: &AtomicU64) {
    let s = n.fetch_add(1, Ordering::Relaxed);
    black_box(
        a.run(RunRequest::new("bench", format!("s{s}"), "Who is lead 42?"))
            .await
            .unwrap(),
    );
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

    // One store for all iterations: it keeps every session, run, usage event, audit entry and
    // execution record, so later iterations run against a store of hundreds of thousands of
    // runs (as a long-lived process would; part of the cost is the store's memory growth).
    // Every run stays in that store; it is freed after this entry (untimed).
    let a = agent(Arc::new(InMemoryStore::new()));
    group.bench_function("agentkit_new_session", |b| {
        b.to_async(&rt).iter(|| new_session_turn(&a, &n))
    });
    drop(a);

    // The same turn with the store's growth taken out: each criterion sample (a batch of
    // iterations) gets a new, empty store, dropped after the batch outside the timing.
    group.bench_function("agentkit_new_session_fresh_store_per_sample", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let n = &n;
            async move {
                let a = agent(Arc::new(InMemoryStore::new()));
                let started = Instant::now();
                for _ in 0..iters {
                    new_session_turn(&a, n).await;
                }
                let elapsed = started.elapsed();
                drop(a);
                elapsed
            }
        })
    });
    group.finish();

    // History length: the window keeps the cost flat as a session grows.
    //
    // Each measured run happens in a session holding `len` to `len + slack` messages: a run
    // appends 4 messages, so a session is retired once it outgrew that range and the next run
    // starts in a fresh session prefilled (untimed, straight through the store) with `len`
    // messages. Only the runs are timed. The store itself keeps every record of every
    // iteration (runs, usage, audit, executions), as a long-lived process would.
    let mut group = c.benchmark_group("turn_history");
    let window = 20;
    group.bench_function(format!("baseline_hand_loop_window_{window}"), |b| {
        let history = prefill(window);
        b.to_async(&rt).iter(|| {
            hand_loop_with_history(
                &model,
                &*tool,
                &specs,
                &history,
                n.fetch_add(1, Ordering::Relaxed),
            )
        })
    });
    for len in [10usize, 100, 1000] {
        let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
        let a = agent(store.clone());
        let slack = (len / 10).max(4);
        let history = prefill(len);
        let sessions = AtomicU64::new(0);
        let fresh_session = || {
            let session = SessionId::new(format!(
                "h{len}-{}",
                sessions.fetch_add(1, Ordering::Relaxed)
            ))
            .unwrap();
            let store = store.clone();
            let history = history.clone();
            async move {
                let tenant = TenantId::from_static("bench");
                store
                    .create_session(
                        &tenant,
                        &SessionRecord::new(
                            tenant.clone(),
                            session.clone(),
                            agentkit::id::AgentId::from_static("bench"),
                        ),
                    )
                    .await
                    .unwrap();
                store
                    .append_messages(&tenant, &session, None, &history)
                    .await
                    .unwrap();
                session
            }
        };
        group.bench_function(format!("messages_{len}"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let (a, fresh_session) = (&a, &fresh_session);
                async move {
                    let mut session = fresh_session().await;
                    let mut size = len;
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        if size > len + slack {
                            session = fresh_session().await;
                            size = len;
                        }
                        let request = RunRequest::new("bench", session.clone(), "Who is lead 42?");
                        let started = Instant::now();
                        black_box(a.run(request).await.unwrap());
                        total += started.elapsed();
                        size += 4;
                    }
                    total
                }
            })
        });
    }
    group.finish();
}

/// `len` messages of earlier turns like the benchmarked one (question, tool call, tool
/// result, answer), cut at `len`.
fn prefill(len: usize) -> Vec<Message> {
    let turn = [
        Message::user("Who is lead 42?"),
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
            r#"{"lead_id":42,"name":"Ada","stage":"qualified"}"#,
        ),
        Message::assistant("Lead 42 is Ada, qualified."),
    ];
    turn.iter().cycle().take(len).cloned().collect()
}

/// The hand loop with earlier messages: the same window the agent sends (the last `window`
/// messages), kept in a plain `Vec`.
async fn hand_loop_with_history(
    model: &dyn LlmProvider,
    tool: &dyn Tool,
    specs: &Arc<[ToolSpec]>,
    history: &[Message],
    n: u64,
) {
    let mut messages = Vec::with_capacity(history.len() + 4);
    messages.push(Message::system(PROMPT));
    messages.extend_from_slice(history);
    messages.push(Message::user("Who is lead 42?"));
    let request = CompletionRequest::new("m", messages.clone()).with_tools(specs.clone());
    let response = model.complete(&request).await.unwrap();
    messages.push(response.to_message());
    for call in &response.tool_calls {
        let ctx = ToolContext::new(
            agentkit::testkit::scope("bench", "a", format!("s{n}"), RunId::generate()),
            call.id.clone(),
            agentkit::id::IdempotencyKey::from_static("k"),
        );
        let out = tool.call(ctx, call.arguments.clone()).await.unwrap();
        messages.push(Message::tool_result(&call.id, &call.name, out.to_string()));
    }
    let request = CompletionRequest::new("m", messages).with_tools(specs.clone());
    black_box(model.complete(&request).await.unwrap());
}

/// The same turn, durable on SQLite (messages, usage, audit, run record committed), against a
/// bare single-row `INSERT` + commit loop on a file with the same settings.
fn turn_sqlite(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("agentkit-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut group = c.benchmark_group("turn_sqlite");

    let bare = rusqlite::Connection::open(dir.join("bare.db")).unwrap();
    bare.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
         CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
    )
    .unwrap();
    group.bench_function("baseline_bare_insert_commit", |b| {
        b.iter(|| {
            bare.execute(
                "INSERT INTO t (body) VALUES (?1)",
                ["{\"role\":\"user\",\"content\":\"Who is lead 42?\"}"],
            )
            .unwrap()
        })
    });

    // The default file (4,096-byte pages), then one created with 2,048-byte pages
    // (`SqliteOptions::page_size`: every commit writes the pages it touches whole).
    let n = AtomicU64::new(0);
    for (name, file, options) in [
        (
            "agentkit_turn_durable",
            "agent.db",
            agentkit_store_sqlite::SqliteOptions::default(),
        ),
        (
            "agentkit_turn_durable_pages_2048",
            "agent-2048.db",
            agentkit_store_sqlite::SqliteOptions::default().page_size(2048),
        ),
    ] {
        let store: Arc<dyn StateStore> = rt.block_on(async {
            Arc::new(
                agentkit_store_sqlite::SqliteStore::open_with(dir.join(file), options)
                    .await
                    .unwrap(),
            )
        });
        let a = agent(store);
        group.bench_function(name, |b| b.to_async(&rt).iter(|| new_session_turn(&a, &n)));
    }
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, turn, turn_sqlite);
criterion_main!(benches);
