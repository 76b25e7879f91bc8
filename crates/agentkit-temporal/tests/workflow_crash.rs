//! Crash test for workflow definitions on a real Temporal dev server: two worker processes
//! serve 100 runs of a two-tool-node workflow on one SQLite agentkit store; every 400 ms one
//! worker is SIGKILLed and restarted. A call cut off between its effect and its record is left
//! in doubt and its run waits; the test then acts as the operator: it checks the external
//! system (the effects file), resolves each such call (`ToolExecutor::resolve_in_doubt`:
//! succeeded, or not run) and signals `resume`. At the end every run is done and every tool
//! node's effect happened exactly once.
//!
//! The test binary re-executes itself as the workers (`temporal_workflow_crash_child` does
//! nothing unless the environment names a database).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use agentkit_core::exec::{InDoubtResolution, ToolExecutor, ToolSet};
use agentkit_core::id::{RunId, TenantId};
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::store::{StateStore, ToolExecutionStatus};
use agentkit_core::tool::{FnTool, SideEffect, Tool, ToolSpec};
use agentkit_store_sqlite::SqliteStore;
use agentkit_temporal::{GraphRunInput, TemporalAgents};
use agentkit_workflow::WorkflowDefinition;
use serde_json::json;

const CHILD_DB: &str = "AGENTKIT_TEMPORAL_WF_CRASH_DB";
const RUNS: usize = 100;
const NODES: usize = 2;

fn definition() -> WorkflowDefinition {
    serde_json::from_value(json!({
        "id": "apply", "version": 1, "start": "first", "inputs": ["n"],
        "nodes": [
            {"id": "first", "kind": "tool", "tool": "ops.apply", "args": {"n": "${n}", "step": 1},
             "timeout_ms": 2000},
            {"id": "second", "kind": "tool", "tool": "ops.apply", "args": {"n": "${n}", "step": 2},
             "timeout_ms": 2000}
        ],
        "edges": [{"from": "first", "to": "second"}]
    }))
    .unwrap()
}

/// `ops.apply`: appends its idempotency key to `effects` (one write: whole or absent), then
/// takes a while to answer (a kill now leaves the call in doubt).
fn apply(effects: Option<String>) -> Arc<dyn Tool> {
    Arc::new(FnTool::new(
        ToolSpec::new(
            "ops.apply",
            "applies an external change",
            json!({"type": "object"}),
        )
        .with_side_effect(SideEffect::External),
        move |ctx, _args| {
            let effects = effects.clone();
            async move {
                if let Some(path) = effects {
                    let mut f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .unwrap();
                    f.write_all(format!("{}\n", ctx.idempotency_key).as_bytes())
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(json!({"applied": true}))
            }
        },
    ))
}

fn executor(store: Arc<dyn StateStore>, effects: Option<String>) -> ToolExecutor {
    ToolExecutor::builder(ToolSet::new([apply(effects)]).unwrap(), store)
        .policy(AllowListPolicy::new(["ops.*"]).into_arc())
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_workflow_crash_child() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return; // Not started by the parent test.
    };
    let url = std::env::var("AGENTKIT_TEMPORAL_WF_CRASH_URL").unwrap();
    let queue = std::env::var("AGENTKIT_TEMPORAL_WF_CRASH_QUEUE").unwrap();
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let client = agentkit_temporal::connect(&url, "default").await.unwrap();
    // Paced so the work spans the kills: ~500 activities at 60 a second.
    let mut worker = TemporalAgents::new()
        .workflow_executor(executor(store, Some(format!("{path}.effects"))))
        .workflow(definition())
        .max_activities_per_second(60.0)
        .worker(&client, &queue)
        .unwrap();
    worker.run().await.unwrap();
}

fn spawn_worker(db: &str, url: &str, queue: &str) -> Child {
    common::spawn_self(
        "temporal_workflow_crash_child",
        &[
            (CHILD_DB, db),
            ("AGENTKIT_TEMPORAL_WF_CRASH_URL", url),
            ("AGENTKIT_TEMPORAL_WF_CRASH_QUEUE", queue),
        ],
    )
}

fn effects(db: &str) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(format!("{db}.effects")).unwrap_or_default();
    let mut per_key = BTreeMap::new();
    for line in text.lines() {
        *per_key.entry(line.to_owned()).or_default() += 1;
    }
    per_key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_workers_finish_every_workflow_with_each_effect_exactly_once() {
    if std::env::var(CHILD_DB).is_ok() {
        return;
    }
    let Some(server) = common::dev_server("workflow_crash").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir
        .path()
        .join("agentkit.db")
        .to_string_lossy()
        .into_owned();
    let store: Arc<dyn StateStore> = Arc::new(SqliteStore::open(&db).await.unwrap());
    let operator = executor(store.clone(), None);
    let client = agentkit_temporal::connect(&server.url, "default")
        .await
        .unwrap();
    let queue = format!("wf-crash-{}", RunId::generate());
    let mut workers = vec![
        spawn_worker(&db, &server.url, &queue),
        spawn_worker(&db, &server.url, &queue),
    ];
    let runs: Vec<String> = (0..RUNS)
        .map(|i| format!("wf-crash-{i}-{}", RunId::generate()))
        .collect();
    for (i, run) in runs.iter().enumerate() {
        let input = GraphRunInput::new("acme", "apply", json!({"n": i}));
        agentkit_temporal::start_workflow(&client, &queue, run, input)
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

    // The operator: calls started over 3 s ago with no result are in doubt (the tool answers
    // in 100 ms); each is resolved from the external system's own record, and its run resumed.
    let tenant = TenantId::new("acme").unwrap();
    let results = futures::future::join_all(
        runs.iter()
            .map(|run| agentkit_temporal::workflow_result(&client, run)),
    );
    let (as_succeeded, as_not_run) = (Cell::new(0), Cell::new(0));
    let operate = async {
        let mut resolved: BTreeSet<String> = BTreeSet::new();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let done = effects(&db);
            for run in &runs {
                let run_id = RunId::new(run).unwrap();
                for e in store.list_tool_executions(&tenant, &run_id).await.unwrap() {
                    let age = chrono::Utc::now().signed_duration_since(e.started_at);
                    if e.status != ToolExecutionStatus::Started || age.num_seconds() < 3 {
                        continue;
                    }
                    let resolution = if done.contains_key(e.idempotency_key.as_str()) {
                        as_succeeded.set(as_succeeded.get() + 1);
                        InDoubtResolution::Succeeded {
                            output: json!({"applied": true}),
                        }
                    } else {
                        as_not_run.set(as_not_run.get() + 1);
                        InDoubtResolution::NotRun {
                            note: "no such change in the system".into(),
                        }
                    };
                    operator
                        .resolve_in_doubt(&tenant, &e.idempotency_key, resolution, "operator")
                        .await
                        .unwrap();
                    resolved.insert(run.clone());
                }
            }
            // Resumed on every pass until done (a run may reach its wait after the signal).
            for run in &resolved {
                let _ = agentkit_temporal::resume(&client, run).await;
            }
        }
    };
    let outputs = tokio::select! {
        r = tokio::time::timeout(Duration::from_secs(180), results) => r.expect("every run finishes"),
        () = operate => unreachable!("the operator works until the runs are done"),
    };
    let (as_succeeded, as_not_run) = (as_succeeded.get(), as_not_run.get());
    for mut w in workers {
        w.kill().unwrap();
        w.wait().unwrap();
    }
    for (run, out) in runs.iter().zip(&outputs) {
        let out = out.as_ref().unwrap_or_else(|e| panic!("{run}: {e}"));
        let steps: Vec<&str> = out.steps.iter().map(|s| s.node.as_str()).collect();
        assert_eq!(steps, ["first", "second"], "{run}");
    }
    // Exactly once: every node's key is in the external system once, and its execution
    // record says succeeded.
    let per_key = effects(&db);
    let repeated: Vec<_> = per_key.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "effects repeated: {repeated:?}");
    let mut succeeded = BTreeSet::new();
    for run in &runs {
        let run_id = RunId::new(run).unwrap();
        for e in store.list_tool_executions(&tenant, &run_id).await.unwrap() {
            if e.status == ToolExecutionStatus::Succeeded {
                succeeded.insert(e.idempotency_key.to_string());
            }
        }
    }
    assert_eq!(succeeded.len(), RUNS * NODES);
    assert_eq!(
        per_key.keys().cloned().collect::<BTreeSet<_>>(),
        succeeded,
        "the effects are exactly the succeeded executions"
    );
    eprintln!(
        "{kills} kills; {} effects, none repeated; in doubt: {as_succeeded} resolved as \
         succeeded, {as_not_run} as not run (and run once after)",
        per_key.len()
    );
}
