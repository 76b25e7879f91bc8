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
