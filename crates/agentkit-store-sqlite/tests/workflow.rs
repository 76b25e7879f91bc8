//! The workflow store conformance suite against `SqliteStore`, each check on a fresh file.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_store_sqlite::SqliteStore;
use agentkit_workflow::WorkflowStore;
use agentkit_workflow::testkit::conformance;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_store_conforms() {
    let dirs = std::sync::Mutex::new(Vec::new());
    conformance::run_all(|| async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("wf.db")).await.unwrap();
        dirs.lock().unwrap().push(dir);
        Arc::new(store) as Arc<dyn WorkflowStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_store_conforms_in_memory() {
    conformance::run_all(|| async {
        Arc::new(SqliteStore::open_in_memory().await.unwrap()) as Arc<dyn WorkflowStore>
    })
    .await;
}

/// Concurrent step commits are written together (group commit), yet each is its own atomic
/// step: a stale one is refused alone and the others land.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_step_commits_stay_separate_steps() {
    use agentkit_core::Error;
    use agentkit_core::id::TenantId;
    use agentkit_workflow::record::StepCommit;
    use agentkit_workflow::testkit::conformance::{new_run, t0};

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(dir.path().join("wf.db")).await.unwrap());
    let t = TenantId::new("acme").unwrap();
    let step = |run: &agentkit_workflow::WorkflowRun| -> agentkit_workflow::StepRecord {
        serde_json::from_value(serde_json::json!({
            "tenant": "acme", "run": run.id, "seq": 1, "node": "a", "kind": "branch",
            "attempt": 1, "visit": 1, "status": "succeeded", "input": null, "output": null,
            "error": null, "worker": "w", "started_at": t0(), "finished_at": t0()
        }))
        .unwrap()
    };
    let mut runs = Vec::new();
    for i in 0..40 {
        let mut run = new_run(&t, t0());
        store.create_workflow_run(&t, &run).await.unwrap();
        if i % 4 == 1 {
            // Step 1 is taken already: a second step 1 must be refused whole.
            let mut next = run.clone();
            next.version += 1;
            let commit = StepCommit::new(next.clone(), run.version, Some(step(&run)));
            store.commit_workflow_step(&t, &commit).await.unwrap();
            run = next;
        }
        runs.push(run);
    }
    let mut tasks = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let (store, t, run) = (store.clone(), t.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            let mut next = run.clone();
            next.version += 1;
            next.next_seq = 2;
            next.context = serde_json::json!({"i": i});
            // Every fourth commit names a version the store does not hold.
            let expected = if i % 4 == 0 {
                run.version + 7
            } else {
                run.version
            };
            let row = (i % 4 == 1).then(|| step(&run));
            store
                .commit_workflow_step(&t, &StepCommit::new(next, expected, row))
                .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let result = task.await.unwrap();
        let stored = store
            .get_workflow_run(&t, &runs[i].id)
            .await
            .unwrap()
            .unwrap();
        if i % 4 <= 1 {
            assert!(matches!(result, Err(Error::Conflict(_))), "{i}: {result:?}");
            assert_eq!(stored, runs[i], "a refused step changes nothing");
        } else {
            result.unwrap();
            assert_eq!(stored.context, serde_json::json!({"i": i}));
        }
    }
}
