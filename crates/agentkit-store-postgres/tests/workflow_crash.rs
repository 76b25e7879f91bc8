//! Crash test: three worker processes share 1,000 runs of a five-step workflow on Postgres;
//! every few hundred milliseconds one of them, chosen at random, is SIGKILLed and restarted.
//! At the end every run is done and every step's side effect was applied exactly once.
//!
//! The test binary re-executes itself as a worker (`workflow_crash_worker_child` does nothing
//! unless the environment says how to connect). Effects go to a table of the test's schema,
//! keyed by the step's idempotency key.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentkit_store_postgres::PostgresStore;
use agentkit_workflow::testkit::crash;
use agentkit_workflow::{RunQuery, RunState, StartRequest};
use common::TestDb;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const CHILD_URL: &str = "AGENTKIT_PG_WORKFLOW_CRASH_URL";
const CHILD_SCHEMA: &str = "AGENTKIT_PG_WORKFLOW_CRASH_SCHEMA";
const RUNS: usize = 1_000;
const WORKERS: usize = 3;

fn child_options() -> Option<PgConnectOptions> {
    let url = std::env::var(CHILD_URL).ok()?;
    let schema = std::env::var(CHILD_SCHEMA).ok()?;
    Some(
        PgConnectOptions::from_str(&url)
            .unwrap()
            .options([("search_path", schema.as_str())]),
    )
}

#[test]
fn workflow_crash_worker_child() {
    let Some(options) = child_options() else {
        return; // Not started by the parent test.
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let pool = PostgresStore::pool_options()
            .max_connections(12)
            .connect_with(options)
            .await
            .unwrap();
        let store = PostgresStore::from_pool_unmigrated(pool.clone());
        let tool = crash::effect_tool(move |key| {
            let pool = pool.clone();
            async move {
                let mut tx = pool
                    .begin()
                    .await
                    .map_err(|e| agentkit_core::Error::Timeout(e.to_string()))?;
                sqlx::query("INSERT INTO crash_calls (key) VALUES ($1)")
                    .bind(&key)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| agentkit_core::Error::Timeout(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO crash_effects (key) VALUES ($1) ON CONFLICT (key) DO NOTHING",
                )
                .bind(&key)
                .execute(&mut *tx)
                .await
                .map_err(|e| agentkit_core::Error::Timeout(e.to_string()))?;
                tx.commit()
                    .await
                    .map_err(|e| agentkit_core::Error::Timeout(e.to_string()))?;
                Ok(())
            }
        });
        let engine = crash::engine(Arc::new(store.clone()), Arc::new(store), tool).unwrap();
        crash::work_until_killed(
            engine,
            &format!("worker-{}", std::process::id()),
            Default::default(),
        )
        .await;
    });
}

fn spawn_worker(url: &str, schema: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "workflow_crash_worker_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_URL, url)
        .env(CHILD_SCHEMA, schema)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn sigkill(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).ok();
    child.wait().unwrap();
}

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_repeat_no_effect() {
    let Some(db) = TestDb::from_env("workflow_crash::killed_workers_repeat_no_effect").await else {
        return;
    };
    let store = db.app_store().await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(db.app_options())
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE crash_effects (key text PRIMARY KEY);
         CREATE TABLE crash_calls (id bigserial PRIMARY KEY, key text NOT NULL);",
    )
    .execute(&pool)
    .await
    .unwrap();
    let tool = crash::effect_tool(|_| async { Ok(()) });
    let engine = crash::engine(Arc::new(store.clone()), Arc::new(store.clone()), tool).unwrap();
    engine
        .publish("crash", &crash::five_step_workflow())
        .await
        .unwrap();
    for i in 0..RUNS {
        let req = StartRequest::new(crash::WORKFLOW, serde_json::json!({}))
            .unwrap()
            .trigger_key(format!("run-{i}"));
        engine.start("crash", req).await.unwrap();
    }
    let opts = db.app_options();
    let url = format!(
        "postgres://{}:{}@{}:{}/{}",
        db.role,
        db.password,
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("postgres")
    );
    let mut children: Vec<Child> = (0..WORKERS)
        .map(|_| spawn_worker(&url, &db.schema))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut kills = 0;
    let done = loop {
        tokio::time::sleep(Duration::from_millis(150 + crash::jitter(450))).await;
        let done = engine
            .list_runs("crash", &RunQuery::all().states([RunState::Done]))
            .await
            .unwrap()
            .len();
        if done == RUNS {
            break done;
        }
        assert!(
            Instant::now() < deadline,
            "only {done} of {RUNS} runs finished in time ({kills} kills)"
        );
        let victim = usize::try_from(crash::jitter(WORKERS as u64)).unwrap();
        sigkill(&mut children[victim]);
        kills += 1;
        children[victim] = spawn_worker(&url, &db.schema);
    };
    for c in &mut children {
        sigkill(c);
    }
    let effects: i64 = sqlx::query_scalar("SELECT count(*) FROM crash_effects")
        .fetch_one(&pool)
        .await
        .unwrap();
    let calls: i64 = sqlx::query_scalar("SELECT count(*) FROM crash_calls")
        .fetch_one(&pool)
        .await
        .unwrap();
    println!(
        "{done} runs done by {WORKERS} workers after {kills} kills; {effects} effects from {calls} tool calls"
    );
    assert!(
        kills >= 3,
        "workers were killed while they worked ({kills} kills)"
    );
    let workers = crash::check_every_effect_once(
        &engine,
        &store,
        "crash",
        RUNS,
        usize::try_from(effects).unwrap(),
    )
    .await;
    assert!(
        workers.len() >= WORKERS,
        "the runs were shared by the workers: {workers:?}"
    );
    pool.close().await;
    store.pool().close().await;
    db.cleanup().await;
}
