//! The in-memory workflow store passes the conformance suite.

use std::sync::Arc;

use agentkit_workflow::testkit::conformance;
use agentkit_workflow::{InMemoryWorkflowStore, WorkflowStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_store_conforms() {
    conformance::run_all(|| async {
        Arc::new(InMemoryWorkflowStore::new()) as Arc<dyn WorkflowStore>
    })
    .await;
}
