//! Workers: several share one store, each run is driven by one of them, every effect happens
//! once, and shutdown releases what is in flight.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentkit_core::exec::{ToolExecutor, ToolSet};
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::store::{InMemoryStore, StateStore};
use agentkit_core::tool::{FnTool, SideEffect, Tool, ToolSpec};
use agentkit_workflow::{
    InMemoryWorkflowStore, RunQuery, RunState, StartRequest, Worker, WorkerConfig,
    WorkflowDefinition, WorkflowStore, Workflows,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn counting_tool(seen: Arc<Mutex<Vec<String>>>, delay: Duration) -> Arc<dyn Tool> {
    Arc::new(FnTool::new(
        ToolSpec::new("count.add", "counts", json!({"type": "object"}))
            .with_side_effect(SideEffect::External),
        move |ctx, _args| {
            let seen = seen.clone();
            async move {
                tokio::time::sleep(delay).await;
                seen.lock().unwrap().push(ctx.idempotency_key.to_string());
                Ok(json!({"ok": true}))
            }
        },
    ))
}

fn engine(
    store: Arc<dyn WorkflowStore>,
    state: Arc<dyn StateStore>,
    tool: Arc<dyn Tool>,
) -> Workflows {
    let executor = ToolExecutor::builder(ToolSet::new([tool]).unwrap(), state)
        .policy(AllowListPolicy::allow_all().into_arc())
        .build();
    Workflows::builder(store)
        .executor(executor)
        .lease(Duration::from_secs(5))
        .build()
}

fn five_steps() -> WorkflowDefinition {
    serde_json::from_value(json!({
        "id": "five", "version": 1, "start": "s1",
        "nodes": (1..=5).map(|i| json!({"id": format!("s{i}"), "kind": "tool", "tool": "count.add", "args": {"step": i}})).collect::<Vec<_>>(),
        "edges": (1..5).map(|i| json!({"from": format!("s{i}"), "to": format!("s{}", i + 1)})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_share_the_runs_and_every_effect_happens_once() {
    let store: Arc<dyn WorkflowStore> = Arc::new(InMemoryWorkflowStore::new());
    let state: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let engines: Vec<Workflows> = (0..3)
        .map(|_| {
            engine(
                store.clone(),
                state.clone(),
                counting_tool(seen.clone(), Duration::from_millis(1)),
            )
        })
        .collect();
    engines[0].publish("acme", &five_steps()).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..60 {
        let req = StartRequest::new("five", json!({}))
            .unwrap()
            .trigger_key(format!("k{i}"));
        ids.push(
            engines[i % 3]
                .start("acme", req)
                .await
                .unwrap()
                .run()
                .id
                .clone(),
        );
    }
    let shutdown = CancellationToken::new();
    let handles: Vec<_> = engines
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let config = WorkerConfig::new(format!("worker-{i}"))
                .concurrency(4)
                .poll(Duration::from_millis(20));
            tokio::spawn(Worker::new(e.clone(), config).run(shutdown.clone()))
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let done = engines[0]
            .list_runs("acme", &RunQuery::all().states([RunState::Done]))
            .await
            .unwrap()
            .len();
        if done == ids.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {done} runs finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    let mut steps = 0;
    let mut workers_used = 0;
    for h in handles {
        let stats = h.await.unwrap().unwrap();
        steps += stats.steps;
        workers_used += usize::from(stats.steps > 0);
        assert_eq!(stats.errors, 0);
    }
    assert_eq!(steps, 60 * 5);
    assert!(workers_used >= 2, "the runs were shared between workers");
    let seen = seen.lock().unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(seen.len(), 300, "every step's effect happened exactly once");
    assert_eq!(unique.len(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_current_step_and_releases_the_run() {
    let store: Arc<dyn WorkflowStore> = Arc::new(InMemoryWorkflowStore::new());
    let state: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let slow = engine(
        store.clone(),
        state.clone(),
        counting_tool(seen.clone(), Duration::from_millis(300)),
    );
    slow.publish("acme", &five_steps()).await.unwrap();
    let run = slow
        .start("acme", StartRequest::new("five", json!({})).unwrap())
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(
        Worker::new(
            slow.clone(),
            WorkerConfig::new("w").poll(Duration::from_millis(10)),
        )
        .run(shutdown.clone()),
    );
    tokio::time::sleep(Duration::from_millis(450)).await;
    shutdown.cancel();
    let stats = worker.await.unwrap().unwrap();
    assert!(stats.steps >= 1 && stats.steps < 5, "{stats:?}");
    let released = slow.get_run("acme", &run.run().id).await.unwrap().unwrap();
    assert_eq!(released.state, RunState::Running);
    assert!(
        released.lease.is_none(),
        "shutdown gives the run back at once"
    );
    assert_eq!(
        seen.lock().unwrap().len() as u64,
        stats.steps,
        "no step was cut off mid-effect"
    );
    // Another worker finishes it.
    slow.run_due("w2").await.unwrap();
    let done = slow.get_run("acme", &run.run().id).await.unwrap().unwrap();
    assert_eq!(done.state, RunState::Done);
    assert_eq!(seen.lock().unwrap().len(), 5);
}

/// A run of many short steps outlives its lease: the heartbeat keeps it with the worker that
/// drives it, so a second worker never takes it over mid-run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_of_short_steps_keeps_its_lease() {
    let store: Arc<dyn WorkflowStore> = Arc::new(InMemoryWorkflowStore::new());
    let state: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tool = counting_tool(seen.clone(), Duration::from_millis(60));
    let executor = ToolExecutor::builder(ToolSet::new([tool]).unwrap(), state)
        .policy(AllowListPolicy::allow_all().into_arc())
        .build();
    let engine = Workflows::builder(store)
        .executor(executor)
        .lease(Duration::from_millis(300))
        .build();
    let def: WorkflowDefinition = serde_json::from_value(json!({
        "id": "long", "version": 1, "start": "s1",
        "nodes": (1..=12).map(|i| json!({"id": format!("s{i}"), "kind": "tool", "tool": "count.add", "args": {}})).collect::<Vec<_>>(),
        "edges": (1..12).map(|i| json!({"from": format!("s{i}"), "to": format!("s{}", i + 1)})).collect::<Vec<_>>(),
    }))
    .unwrap();
    engine.publish("acme", &def).await.unwrap();
    let run = engine
        .start("acme", StartRequest::new("long", json!({})).unwrap())
        .await
        .unwrap()
        .run()
        .id
        .clone();
    let shutdown = CancellationToken::new();
    let workers: Vec<_> = (0..2)
        .map(|i| {
            let config = WorkerConfig::new(format!("w{i}")).poll(Duration::from_millis(10));
            tokio::spawn(Worker::new(engine.clone(), config).run(shutdown.clone()))
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while engine.get_run("acme", &run).await.unwrap().unwrap().state != RunState::Done {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    for w in workers {
        w.await.unwrap().unwrap();
    }
    let steps = engine.steps("acme", &run).await.unwrap();
    let by: HashSet<&str> = steps.iter().map(|s| s.worker.as_str()).collect();
    assert_eq!(steps.len(), 12);
    assert_eq!(
        by.len(),
        1,
        "one worker drove the whole run (~720 ms > the 300 ms lease): {by:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 12, "no step ran twice");
}

/// A tenant's burst takes at most its share of a worker: with `per_tenant(1)`, one busy
/// tenant's runs go one at a time and another tenant's run is not stuck behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenant_cannot_take_every_slot() {
    use std::collections::HashMap;
    let store: Arc<dyn WorkflowStore> = Arc::new(InMemoryWorkflowStore::new());
    let state: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    // Per tenant: (running now, most at once); and when each tenant last finished a call.
    let running: Arc<Mutex<HashMap<String, (usize, usize)>>> = Arc::default();
    let finished: Arc<Mutex<Vec<(String, tokio::time::Instant)>>> = Arc::default();
    let (r, f) = (running.clone(), finished.clone());
    let tool: Arc<dyn Tool> = Arc::new(FnTool::new(
        ToolSpec::new("slow.work", "takes 100 ms", json!({"type": "object"})),
        move |ctx, _args| {
            let (running, finished) = (r.clone(), f.clone());
            async move {
                let tenant = ctx.scope.tenant.to_string();
                {
                    let mut m = running.lock().unwrap();
                    let e = m.entry(tenant.clone()).or_default();
                    e.0 += 1;
                    e.1 = e.1.max(e.0);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                running.lock().unwrap().get_mut(&tenant).unwrap().0 -= 1;
                finished
                    .lock()
                    .unwrap()
                    .push((tenant, tokio::time::Instant::now()));
                Ok(json!({}))
            }
        },
    ));
    let executor = ToolExecutor::builder(ToolSet::new([tool]).unwrap(), state)
        .policy(AllowListPolicy::allow_all().into_arc())
        .build();
    let engine = Workflows::builder(store).executor(executor).build();
    let def: WorkflowDefinition = serde_json::from_value(json!({
        "id": "one", "version": 1, "start": "w",
        "nodes": [{"id": "w", "kind": "tool", "tool": "slow.work", "args": {}}]
    }))
    .unwrap();
    for t in ["busy", "quiet"] {
        engine.publish(t, &def).await.unwrap();
    }
    for _ in 0..6 {
        engine
            .start("busy", StartRequest::new("one", json!({})).unwrap())
            .await
            .unwrap();
    }
    engine
        .start("quiet", StartRequest::new("one", json!({})).unwrap())
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let config = WorkerConfig::new("w")
        .concurrency(4)
        .per_tenant(1)
        .poll(Duration::from_millis(10));
    let worker = tokio::spawn(Worker::new(engine.clone(), config).run(shutdown.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while finished.lock().unwrap().len() < 7 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    let most = running.lock().unwrap().get("busy").unwrap().1;
    assert_eq!(most, 1, "the busy tenant ran one call at a time");
    let done = finished.lock().unwrap();
    let quiet = done.iter().position(|(t, _)| t == "quiet").unwrap();
    assert!(
        quiet <= 1,
        "the quiet tenant's run went right away, not after the burst: {quiet}"
    );
}
