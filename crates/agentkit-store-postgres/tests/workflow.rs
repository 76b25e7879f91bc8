//! The workflow store conformance suite against `PostgresStore`, connected as an application
//! role subject to row-level security, each check in a schema of its own.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use agentkit_workflow::WorkflowStore;
use agentkit_workflow::testkit::conformance;
use common::TestDb;

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflow_store_conforms() {
    // Probe once: skip (or fail in CI) without a server.
    let Some(probe) = TestDb::from_env("workflow::workflow_store_conforms").await else {
        return;
    };
    probe.cleanup().await;
    let dbs: Arc<Mutex<Vec<TestDb>>> = Arc::default();
    let stores: Arc<Mutex<Vec<agentkit_store_postgres::PostgresStore>>> = Arc::default();
    conformance::run_all(|| {
        let (dbs, stores) = (dbs.clone(), stores.clone());
        async move {
            let db = TestDb::from_env("workflow::workflow_store_conforms")
                .await
                .unwrap();
            let store = db.app_store().await;
            assert!(store.enforces_row_level_security().await.unwrap());
            dbs.lock().unwrap().push(db);
            stores.lock().unwrap().push(store.clone());
            Arc::new(store) as Arc<dyn WorkflowStore>
        }
    })
    .await;
    let stores: Vec<_> = std::mem::take(&mut *stores.lock().unwrap());
    for s in stores {
        s.pool().close().await;
    }
    let dbs: Vec<_> = std::mem::take(&mut *dbs.lock().unwrap());
    for db in dbs {
        db.cleanup().await;
    }
}
