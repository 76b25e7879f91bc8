//! Crash test on a real Temporal dev server: two worker processes serve 100 agent runs (three
//! model calls and two external tool calls each) on one SQLite agentkit store; every few hundred
//! milliseconds one worker is SIGKILLed and restarted. At the end every run is completed and
//! every tool call's effect happened at most once — exactly once unless the kill hit the call
//! itself, in which case the executor reports it in doubt and nothing is repeated.
//!
//! The test binary re-executes itself as the workers (`temporal_crash_worker_child` does
//! nothing unless the environment names a database).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::agent::Agent;
use agentkit_core::id::{RunId, TenantId};
use agentkit_core::message::{Message, ToolCall, Usage};
use agentkit_core::model::{
    CompletionRequest, CompletionResponse, LlmProvider, ProviderCapabilities,
};
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::store::{ToolExecutionStatus, ToolExecutionStore};
use agentkit_core::tool::{FnTool, SideEffect, ToolSpec};
use agentkit_store_sqlite::SqliteStore;
use agentkit_temporal::{AgentRunInput, TemporalAgents};
use serde_json::json;

const CHILD_DB: &str = "AGENTKIT_TEMPORAL_CRASH_DB";
const RUNS: usize = 100;
const CALLS_PER_RUN: usize = 2;

/// Proposes `ops.apply` until the run has two results, then answers — the same answer for the
/// same conversation, so a retried model call decides the same.
struct Deterministic;

#[async_trait::async_trait]
impl LlmProvider for Deterministic {
    fn name(&self) -> &str {
        "deterministic"
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::new(false, false, false)
    }

    async fn complete(
        &self,
        request: &CompletionRequest,
    ) -> agentkit_core::Result<CompletionResponse> {
        let done = request
            .messages
            .iter()
            .filter(|m| matches!(m, Message::Tool { .. }))
            .count();
        let usage = Usage {
            input_tokens: 50,
            output_tokens: 10,
            ..Usage::default()
        };
        if done >= CALLS_PER_RUN {
            return Ok(CompletionResponse::new("done", vec![], usage));
        }
        let call = ToolCall::new(format!("c{done}"), "ops.apply", json!({"n": done}));
        Ok(CompletionResponse::new("", vec![call], usage))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_crash_worker_child() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return; // Not started by the parent test.
    };
    let url = std::env::var("AGENTKIT_TEMPORAL_CRASH_URL").unwrap();
    let queue = std::env::var("AGENTKIT_TEMPORAL_CRASH_QUEUE").unwrap();
    let effects = format!("{path}.effects");
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let apply = FnTool::new(
        ToolSpec::new(
            "ops.apply",
            "applies an external change",
            json!({"type": "object"}),
        )
        .with_side_effect(SideEffect::External),
        move |ctx, _args| {
            let effects = effects.clone();
            async move {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&effects)
                    .unwrap();
                // One short line per effect: a single append, whole or absent.
                f.write_all(format!("{}\n", ctx.idempotency_key).as_bytes())
                    .unwrap();
                // The effect is out; the answer takes a while (a kill now leaves it unrecorded).
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(json!({"applied": true}))
            }
        },
    );
    let agent = Agent::builder()
        .id("ops")
        .model(Arc::new(Deterministic), "deterministic-1")
        .tool(Arc::new(apply))
        .policy(AllowListPolicy::new(["ops.*"]).into_arc())
        .store(store)
        .build()
        .unwrap();
    let client = agentkit_temporal::connect(&url, "default").await.unwrap();
    // Paced so the work spans the kills: ~700 activities at 60 a second.
    let mut worker = TemporalAgents::new()
        .agent(agent)
        .max_activities_per_second(60.0)
        .worker(&client, &queue)
        .unwrap();
    worker.run().await.unwrap();
}

fn spawn_worker(db: &str, url: &str, queue: &str) -> Child {
    common::spawn_self(
        "temporal_crash_worker_child",
        &[
            (CHILD_DB, db),
            ("AGENTKIT_TEMPORAL_CRASH_URL", url),
            ("AGENTKIT_TEMPORAL_CRASH_QUEUE", queue),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_workers_lose_no_run_and_repeat_no_effect() {
    if std::env::var(CHILD_DB).is_ok() {
        return;
    }
    let Some(server) = common::dev_server("crash").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir
        .path()
        .join("agentkit.db")
        .to_string_lossy()
        .into_owned();
    let store = SqliteStore::open(&db).await.unwrap(); // migrated before the workers start
    let client = agentkit_temporal::connect(&server.url, "default")
        .await
        .unwrap();
    let queue = format!("crash-{}", RunId::generate());
    let mut workers = vec![
        spawn_worker(&db, &server.url, &queue),
        spawn_worker(&db, &server.url, &queue),
    ];
    let runs: Vec<String> = (0..RUNS)
        .map(|i| format!("crash-{i}-{}", RunId::generate()))
        .collect();
    for (i, run) in runs.iter().enumerate() {
        // A lost worker's activity is retried elsewhere after its 5 s timeout.
        let input =
            AgentRunInput::new("acme", "ops", format!("s-{i}"), "apply the changes").timeouts(5, 5);
        agentkit_temporal::start(&client, &queue, run, input)
            .await
            .unwrap();
    }
    // Kill one worker every 400 ms for 8 s, restarting it at once.
    let kills = common::kill_in_turn(
        &mut workers,
        Duration::from_millis(400),
        Duration::from_secs(8),
        || spawn_worker(&db, &server.url, &queue),
    )
    .await;
    let mut in_doubt_reported = 0;
    for run in &runs {
        let out = tokio::time::timeout(
            Duration::from_secs(120),
            agentkit_temporal::result(&client, run),
        )
        .await
        .expect("every run completes after the crashes")
        .unwrap();
        assert_eq!(out.reply, "done", "{run}");
        assert_eq!(out.tool_calls.len(), CALLS_PER_RUN);
        in_doubt_reported += out.tool_calls.iter().filter(|c| c.is_error).count();
    }
    for mut w in workers {
        w.kill().unwrap();
        w.wait().unwrap();
    }
    // Each effect at most once, and exactly the executions recorded as succeeded.
    let text = std::fs::read_to_string(format!("{db}.effects")).unwrap_or_default();
    let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
    for line in text.lines() {
        *per_key.entry(line).or_default() += 1;
    }
    let repeated: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "effects repeated: {repeated:?}");
    let tenant = TenantId::new("acme").unwrap();
    let mut succeeded = 0;
    for run in &runs {
        let run = RunId::new(run).unwrap();
        for e in store.list_tool_executions(&tenant, &run).await.unwrap() {
            if e.status == ToolExecutionStatus::Succeeded {
                succeeded += 1;
                assert!(per_key.contains_key(e.idempotency_key.as_str()), "{e:?}");
            }
        }
    }
    // A kill between a call's effect and its record leaves it in doubt: reported to the model,
    // never run again; so effects lie between the succeeded executions and those plus the
    // calls in doubt.
    assert_eq!(
        succeeded + in_doubt_reported,
        RUNS * CALLS_PER_RUN,
        "every call either succeeded or was reported in doubt"
    );
    assert!(
        per_key.len() >= succeeded && per_key.len() <= succeeded + in_doubt_reported,
        "{} effects, {succeeded} succeeded, {in_doubt_reported} in doubt",
        per_key.len()
    );
    eprintln!(
        "{kills} kills; {} effects, none repeated; {succeeded} calls succeeded, \
         {in_doubt_reported} in doubt (not run again)",
        per_key.len()
    );
}
