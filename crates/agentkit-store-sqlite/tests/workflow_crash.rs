//! Crash test: one worker process driving 1,000 runs of a five-step workflow on SQLite is
//! SIGKILLed at random moments every few hundred milliseconds and restarted; at the end every
//! run is done and every step's side effect was applied exactly once.
//!
//! The test binary re-executes itself as the worker (`workflow_crash_worker_child` does nothing
//! unless the environment names a database). Effects go to a table of the same file, keyed by
//! the step's idempotency key.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentkit_store_sqlite::SqliteStore;
use agentkit_workflow::testkit::crash;
use agentkit_workflow::{RunQuery, RunState, StartRequest};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rusqlite::Connection;

const CHILD_DB: &str = "AGENTKIT_SQLITE_WORKFLOW_CRASH_DB";
const RUNS: usize = 1_000;

fn effects_db(path: &str) -> Connection {
    let c = Connection::open(path).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS crash_effects (key TEXT PRIMARY KEY, applied INTEGER NOT NULL);
         CREATE TABLE IF NOT EXISTS crash_calls (n INTEGER NOT NULL);",
    )
    .unwrap();
    c
}

#[test]
fn workflow_crash_worker_child() {
    let Ok(path) = std::env::var(CHILD_DB) else {
        return; // Not started by the parent test.
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = SqliteStore::open(&path).await.unwrap();
        let conn = Arc::new(Mutex::new(effects_db(&path)));
        let tool = crash::effect_tool(move |key| {
            let conn = conn.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let c = conn.lock().unwrap();
                    c.execute("INSERT INTO crash_calls (n) VALUES (1)", [])
                        .unwrap();
                    c.execute(
                        "INSERT INTO crash_effects (key, applied) VALUES (?1, 1) \
                         ON CONFLICT (key) DO NOTHING",
                        [key],
                    )
                    .unwrap();
                })
                .await
                .unwrap();
                Ok(())
            }
        });
        let engine = crash::engine(Arc::new(store.clone()), Arc::new(store), tool).unwrap();
        println!("ready");
        crash::work_until_killed(
            engine,
            &format!("worker-{}", std::process::id()),
            Default::default(),
        )
        .await;
    });
}

fn spawn_worker(path: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "workflow_crash_worker_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DB, path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_repeats_no_effect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db").to_string_lossy().into_owned();
    let store = SqliteStore::open(&path).await.unwrap();
    drop(effects_db(&path));
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

    let deadline = Instant::now() + Duration::from_secs(300);
    let mut kills = 0;
    let mut child = spawn_worker(&path);
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
        kill(
            Pid::from_raw(i32::try_from(child.id()).unwrap()),
            Signal::SIGKILL,
        )
        .unwrap();
        child.wait().unwrap();
        kills += 1;
        child = spawn_worker(&path);
    };
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGKILL,
    )
    .ok();
    child.wait().unwrap();

    let c = effects_db(&path);
    let effects: i64 = c
        .query_row("SELECT count(*) FROM crash_effects", [], |r| r.get(0))
        .unwrap();
    let calls: i64 = c
        .query_row("SELECT count(*) FROM crash_calls", [], |r| r.get(0))
        .unwrap();
    println!("{done} runs done after {kills} kills; {effects} effects from {calls} tool calls");
    assert!(
        kills >= 3,
        "the worker was killed while it worked ({kills} kills)"
    );
    crash::check_every_effect_once(
        &engine,
        &store,
        "crash",
        RUNS,
        usize::try_from(effects).unwrap(),
    )
    .await;
}
