//! Run with: `cargo bench --bench workflow_steps --features workflow,sqlite,postgres`
//! (options: `-- --runs 2000 --steps 10 --wakes 200`; Postgres parts need
//! `AGENTKIT_TEST_POSTGRES_URL`, e.g. `postgres://postgres@127.0.0.1:5432/test`).
//!
//! Durable workflow steps per second, each against a baseline measured in the same run:
//!
//! 1. **In memory**: `--runs` runs of a `--steps`-node chain driven by one `run_due` loop.
//! 2. **SQLite** (file, WAL, `synchronous=NORMAL`): the same; baseline: a bare single-row
//!    `INSERT` + commit loop on another file in the same directory.
//! 3. **Postgres**, 1, 2 and 4 workers (each a `Worker` with its own engine and its own pool
//!    of 4 connections, as a worker process would have, running 4 runs at once): the same;
//!    baseline: as many bare `INSERT` + commit loops (4 per worker) over a pool of as many
//!    connections.
//! 4. **Wake-up latency**: a worker waits; a run waiting for an event is sent one (through
//!    another engine, so a Postgres worker learns of it by `LISTEN`/`NOTIFY`, not in process);
//!    the time until its next step starts (a tool stamps it), p50/p99 over `--wakes` events.
//!
//! Each step is a `transform` node (a pure mapping): what is measured is the engine and the
//! store — claim, load, commit of the step row and the run — not a tool's own work.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentkit::exec::{ToolExecutor, ToolSet};
use agentkit::policy::AllowListPolicy;
use agentkit::sqlite::SqliteStore;
use agentkit::store::{InMemoryStore, StateStore};
use agentkit::tool::{FnTool, SideEffect, Tool, ToolSpec};
use agentkit_workflow::{
    InMemoryWorkflowStore, RunQuery, RunState, StartRequest, Worker, WorkerConfig,
    WorkflowDefinition, WorkflowEvent, WorkflowStore, Workflows,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct Args {
    runs: usize,
    steps: usize,
    wakes: usize,
    /// `--only sqlite` (or `memory`, `postgres`): one part only, for profiling.
    only: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        runs: 2_000,
        steps: 10,
        wakes: 200,
        only: None,
    };
    let argv: Vec<String> = std::env::args().collect();
    let num = |flag: &str| {
        argv.iter()
            .position(|x| x == flag)
            .and_then(|i| argv.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    if let Some(v) = num("--runs") {
        a.runs = v;
    }
    if let Some(v) = num("--steps") {
        a.steps = v;
    }
    if let Some(v) = num("--wakes") {
        a.wakes = v;
    }
    a.only = argv
        .iter()
        .position(|x| x == "--only")
        .and_then(|i| argv.get(i + 1))
        .cloned();
    a
}

fn chain(steps: usize) -> WorkflowDefinition {
    let nodes: Vec<_> = (1..=steps)
        .map(|i| json!({"id": format!("n{i}"), "kind": "transform", "set": {format!("k{i}"): i}}))
        .collect();
    let edges: Vec<_> = (1..steps)
        .map(|i| json!({"from": format!("n{i}"), "to": format!("n{}", i + 1)}))
        .collect();
    serde_json::from_value(json!({"id": "chain", "version": 1, "start": "n1",
                                  "nodes": nodes, "edges": edges}))
    .unwrap()
}

fn engine(
    store: Arc<dyn WorkflowStore>,
    state: Arc<dyn StateStore>,
    tools: Vec<Arc<dyn Tool>>,
) -> Workflows {
    let executor = ToolExecutor::builder(ToolSet::new(tools).unwrap(), state)
        .policy(AllowListPolicy::allow_all().into_arc())
        .build();
    Workflows::builder(store).executor(executor).build()
}

async fn start_runs(engine: &Workflows, runs: usize) {
    engine.publish("bench", &chain(args().steps)).await.unwrap();
    for _ in 0..runs {
        engine
            .start("bench", StartRequest::new("chain", json!({})).unwrap())
            .await
            .unwrap();
    }
}

/// Steps/s of one `run_due` loop over `runs` fresh runs.
async fn steps_per_second_one_loop(engine: &Workflows, runs: usize) -> f64 {
    start_runs(engine, runs).await;
    let t = Instant::now();
    let steps = engine.run_due("bench").await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(steps, runs * args().steps);
    steps as f64 / secs
}

/// Steps/s of one worker per engine (each as a separate process would have its own pool) until
/// every run is done; the runs are started through the first.
async fn steps_per_second_engines(engines: &[Workflows], runs: usize, concurrency: usize) -> f64 {
    let engine = &engines[0];
    start_runs(engine, runs).await;
    let shutdown = CancellationToken::new();
    let t = Instant::now();
    let handles: Vec<_> = engines
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let config = WorkerConfig::new(format!("bench-{i}"))
                .concurrency(concurrency)
                .poll(Duration::from_millis(5));
            tokio::spawn(Worker::new(e.clone(), config).run(shutdown.clone()))
        })
        .collect();
    // Done when no run is left pending or running (a cheap query: at most one row).
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let left = engine
            .list_runs(
                "bench",
                &RunQuery::all()
                    .states([RunState::Pending, RunState::Running])
                    .limit(1),
            )
            .await
            .unwrap();
        if left.is_empty() {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    shutdown.cancel();
    let mut steps = 0;
    for h in handles {
        steps += h.await.unwrap().unwrap().steps;
    }
    assert_eq!(steps as usize, runs * args().steps);
    steps as f64 / secs
}

async fn store_commits_per_second(store: &dyn WorkflowStore, n: usize) -> f64 {
    use agentkit::id::{RunId, TenantId, WorkflowId};
    use agentkit_workflow::record::{StepCommit, StepRecord};
    let tenant = TenantId::new("bench").unwrap();
    let mut run = agentkit_workflow::WorkflowRun::new(
        tenant.clone(),
        RunId::generate(),
        WorkflowId::new("chain").unwrap(),
        1,
        "n1",
        json!({"params": {}}),
        chrono::Utc::now(),
    );
    store.create_workflow_run(&tenant, &run).await.unwrap();
    let t = Instant::now();
    for seq in 1..=n as u64 {
        let mut next = run.clone();
        next.version += 1;
        next.next_seq = seq + 1;
        let step: StepRecord = serde_json::from_value(json!({
            "tenant": "bench", "run": run.id, "seq": seq, "node": "n1", "kind": "transform",
            "attempt": 1, "visit": 1, "status": "succeeded", "input": null, "output": {"k": seq},
            "error": null, "worker": "bench", "started_at": chrono::Utc::now(),
            "finished_at": chrono::Utc::now()
        }))
        .unwrap();
        store
            .commit_workflow_step(
                &tenant,
                &StepCommit::new(next.clone(), run.version, Some(step)),
            )
            .await
            .unwrap();
        run = next;
    }
    n as f64 / t.elapsed().as_secs_f64()
}

fn bare_sqlite_commits(path: &std::path::Path, n: usize) -> f64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    c.pragma_update(None, "synchronous", "NORMAL").unwrap();
    c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        .unwrap();
    let body = "x".repeat(200);
    let t = Instant::now();
    for i in 0..n {
        let tx = c.unchecked_transaction().unwrap();
        tx.execute(
            "INSERT INTO t (id, body) VALUES (?1, ?2)",
            rusqlite::params![i as i64, body],
        )
        .unwrap();
        tx.commit().unwrap();
    }
    n as f64 / t.elapsed().as_secs_f64()
}

/// A tool that stamps when the step after a wait starts.
fn stamp_tool(stamps: Arc<Mutex<Vec<Instant>>>) -> Arc<dyn Tool> {
    Arc::new(FnTool::new(
        ToolSpec::new("bench.stamp", "stamps the time", json!({"type": "object"}))
            .with_side_effect(SideEffect::Read),
        move |_ctx, _args| {
            let stamps = stamps.clone();
            async move {
                stamps.lock().unwrap().push(Instant::now());
                Ok(json!({}))
            }
        },
    ))
}

/// p50 and p99 of the time from `send_event` (through `sender`) to the next step starting on a
/// worker of `worker_engine`.
async fn wake_latency(
    worker_engine: &Workflows,
    sender: &Workflows,
    stamps: Arc<Mutex<Vec<Instant>>>,
    n: usize,
) -> (Duration, Duration) {
    let def: WorkflowDefinition = serde_json::from_value(json!({
        "id": "wake", "version": 1, "start": "wait", "inputs": ["k"],
        "nodes": [
            {"id": "wait", "kind": "wait_event", "event": "go", "correlation": "${k}"},
            {"id": "stamp", "kind": "tool", "tool": "bench.stamp", "args": {}}
        ],
        "edges": [{"from": "wait", "to": "stamp"}]
    }))
    .unwrap();
    worker_engine.publish("bench", &def).await.unwrap();
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(
        Worker::new(
            worker_engine.clone(),
            WorkerConfig::new("waker").poll(Duration::from_secs(5)),
        )
        .run(shutdown.clone()),
    );
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let run = worker_engine
            .start(
                "bench",
                StartRequest::new("wake", json!({"k": format!("k{i}")})).unwrap(),
            )
            .await
            .unwrap()
            .run()
            .id
            .clone();
        // Wait until it waits (the worker parked it), then let the worker go idle.
        loop {
            let r = worker_engine.get_run("bench", &run).await.unwrap().unwrap();
            if r.state == RunState::Waiting {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let before = stamps.lock().unwrap().len();
        let sent = Instant::now();
        sender
            .send_event(
                "bench",
                &WorkflowEvent::new(
                    format!("e{i}"),
                    "go",
                    format!("k{i}"),
                    json!({}),
                    chrono::Utc::now(),
                ),
            )
            .await
            .unwrap();
        loop {
            if let Some(t) = stamps.lock().unwrap().get(before) {
                lat.push(*t - sent);
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    lat.sort();
    (lat[n / 2], lat[(n * 99 / 100).min(n - 1)])
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    println!(
        "workflow steps: {} runs x {} transform steps; wake-ups: {}",
        a.runs, a.steps, a.wakes
    );

    let part = |name: &str| a.only.as_deref().is_none_or(|o| o == name);
    if part("memory") {
        memory_parts(&a).await;
    }
    let dir = tempfile::tempdir().unwrap();
    if part("sqlite") {
        sqlite_parts(&a, dir.path()).await;
    }
    if !part("postgres") {
        return;
    }
    // 3. Postgres.
    let Ok(url) = std::env::var("AGENTKIT_TEST_POSTGRES_URL") else {
        println!("postgres: skipped (AGENTKIT_TEST_POSTGRES_URL is not set)");
        return;
    };
    postgres(&url, &a).await;
}

async fn memory_parts(a: &Args) {
    // 1. In memory.
    let mem = engine(
        Arc::new(InMemoryWorkflowStore::new()),
        Arc::new(InMemoryStore::new()),
        vec![],
    );
    let rate = steps_per_second_one_loop(&mem, a.runs).await;
    println!("in-memory            {rate:>10.0} steps/s");
    // 4a. Wake-up latency in memory (same process: the engine's own notification).
    let stamps = Arc::new(Mutex::new(Vec::new()));
    let mem = engine(
        Arc::new(InMemoryWorkflowStore::new()),
        Arc::new(InMemoryStore::new()),
        vec![stamp_tool(stamps.clone())],
    );
    let (p50, p99) = wake_latency(&mem, &mem, stamps.clone(), a.wakes).await;
    println!("wake-up in-memory    p50 {p50:>9.2?}  p99 {p99:>9.2?}");
}

async fn sqlite_parts(a: &Args, dir: &std::path::Path) {
    // 2. SQLite.
    let db = SqliteStore::open(dir.join("wf.db")).await.unwrap();
    let sqlite = engine(Arc::new(db.clone()), Arc::new(db.clone()), vec![]);
    let rate = steps_per_second_one_loop(&sqlite, a.runs).await;
    let bare = bare_sqlite_commits(&dir.join("bare.db"), a.runs * a.steps);
    println!(
        "sqlite, one loop     {rate:>10.0} steps/s   bare INSERT+commit {bare:>8.0}/s   ratio {:.2}",
        rate / bare
    );
    // A worker driving 16 runs at once: their steps share transactions (group commit).
    let db = SqliteStore::open(dir.join("wf-worker.db")).await.unwrap();
    let sqlite = engine(Arc::new(db.clone()), Arc::new(db.clone()), vec![]);
    let rate = steps_per_second_engines(std::slice::from_ref(&sqlite), a.runs, 16).await;
    println!(
        "sqlite, worker x16   {rate:>10.0} steps/s   bare INSERT+commit {bare:>8.0}/s   ratio {:.2}",
        rate / bare
    );

    // The store alone: step commits of one run in a loop (no engine).
    let db = SqliteStore::open(dir.join("store.db")).await.unwrap();
    let rate = store_commits_per_second(&db, a.runs * a.steps).await;
    println!(
        "sqlite store alone   {rate:>10.0} commits/s (commit_workflow_step, one run, no engine)"
    );
    let db = SqliteStore::open(dir.join("wake.db")).await.unwrap();
    let stamps = Arc::new(Mutex::new(Vec::new()));
    let sq = engine(
        Arc::new(db.clone()),
        Arc::new(db.clone()),
        vec![stamp_tool(stamps.clone())],
    );
    let (p50, p99) = wake_latency(&sq, &sq, stamps.clone(), a.wakes).await;
    println!("wake-up sqlite       p50 {p50:>9.2?}  p99 {p99:>9.2?}");
}

async fn postgres(url: &str, a: &Args) {
    use agentkit::postgres::PostgresStore;
    use sqlx::Executor;
    let schema = format!("agentkit_bench_{}", std::process::id());
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let options = options.options([("search_path", schema.as_str())]);
    let pool = PostgresStore::pool_options()
        .max_connections(4)
        .connect_with(options.clone())
        .await
        .unwrap();
    let store = PostgresStore::from_pool(pool.clone()).await.unwrap();
    sqlx::query("CREATE TABLE bare (id bigserial PRIMARY KEY, body text NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    // Each worker has its own pool of `PER_WORKER` connections and runs as many runs at once,
    // as a worker process would; the baseline is as many bare commit loops over a pool of as
    // many connections.
    const PER_WORKER: u32 = 4;
    for workers in [1usize, 2, 4] {
        // Fresh tenant rows each time: truncate what the previous round left.
        pool.execute("TRUNCATE workflow_steps, workflow_runs CASCADE")
            .await
            .unwrap();
        let mut pools = Vec::new();
        let mut engines = Vec::new();
        for _ in 0..workers {
            let p = PostgresStore::pool_options()
                .max_connections(PER_WORKER)
                .connect_with(options.clone())
                .await
                .unwrap();
            let s = PostgresStore::from_pool_unmigrated(p.clone());
            engines.push(engine(Arc::new(s.clone()), Arc::new(s), vec![]));
            pools.push(p);
        }
        let runs = a.runs / 2;
        let rate = steps_per_second_engines(&engines, runs, PER_WORKER as usize).await;
        for p in pools {
            p.close().await;
        }
        let loops = workers * PER_WORKER as usize;
        let bare_pool = PostgresStore::pool_options()
            .max_connections(loops as u32)
            .connect_with(options.clone())
            .await
            .unwrap();
        let bare = bare_pg_commits(&bare_pool, runs * a.steps / 2, loops).await;
        bare_pool.close().await;
        println!(
            "postgres {workers} worker(s)  {rate:>8.0} steps/s   bare INSERT+commit x{loops} {bare:>8.0}/s   ratio {:.2}",
            rate / bare
        );
    }
    // 4b. Wake-up across processes' worth of separation: the event goes through another pool.
    let other_pool = PostgresStore::pool_options()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    let other = PostgresStore::from_pool_unmigrated(other_pool.clone());
    let stamps = Arc::new(Mutex::new(Vec::new()));
    let worker_engine = engine(
        Arc::new(store.clone()),
        Arc::new(store.clone()),
        vec![stamp_tool(stamps.clone())],
    );
    let sender = engine(
        Arc::new(other.clone()),
        Arc::new(other),
        vec![stamp_tool(stamps.clone())],
    );
    let (p50, p99) = wake_latency(&worker_engine, &sender, stamps, a.wakes).await;
    println!("wake-up postgres     p50 {p50:>9.2?}  p99 {p99:>9.2?}   (LISTEN/NOTIFY)");
    other_pool.close().await;
    pool.close().await;
    admin
        .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
}

async fn bare_pg_commits(pool: &sqlx::PgPool, n: usize, tasks: usize) -> f64 {
    let body = "x".repeat(200);
    let t = Instant::now();
    let per = n / tasks;
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let (pool, body) = (pool.clone(), body.clone());
        handles.push(tokio::spawn(async move {
            for _ in 0..per {
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("INSERT INTO bare (body) VALUES ($1)")
                    .bind(&body)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    (per * tasks) as f64 / t.elapsed().as_secs_f64()
}
