//! The vector store conformance suite (`agentkit_rag::testkit::vectors`) against
//! `SqliteVectorStore`, each check on a fresh file, plus persistence and the store's dimension.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::ErrorKind;
use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{DocumentEntry, SearchRequest, VectorStore};
use agentkit_rag::testkit::vectors::{DIMENSIONS, record, run_all, vector};
use agentkit_store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_store_conforms() {
    let dirs = std::sync::Mutex::new(Vec::new());
    run_all(|| async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("vectors.db"))
            .await
            .unwrap();
        dirs.lock().unwrap().push(dir);
        Arc::new(store.vectors(DIMENSIONS)) as Arc<dyn VectorStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_store_conforms_in_memory() {
    run_all(|| async {
        let store = SqliteStore::open_in_memory().await.unwrap();
        Arc::new(store.vectors(DIMENSIONS)) as Arc<dyn VectorStore>
    })
    .await;
}

#[tokio::test(flavor = "current_thread")]
async fn vector_store_conforms_on_a_current_thread_runtime() {
    let dirs = std::sync::Mutex::new(Vec::new());
    run_all(|| async {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("vectors.db"))
            .await
            .unwrap();
        dirs.lock().unwrap().push(dir);
        Arc::new(store.vectors(DIMENSIONS)) as Arc<dyn VectorStore>
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vectors.db");
    let (t, a) = (
        TenantId::new("acme").unwrap(),
        AgentId::new("support").unwrap(),
    );
    let records: Vec<_> = (0..5)
        .map(|i| record(&format!("faq#{i}"), "faq", i))
        .collect();
    let entry = DocumentEntry {
        id: "faq".into(),
        title: Some("faq.md".into()),
        content_hash: "h1".into(),
        chunks: records.len(),
        metadata: [("kind".to_string(), "faq".to_string())].into(),
    };
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store
            .vectors(DIMENSIONS)
            .replace_document(&t, &a, &entry, &records)
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap().vectors(DIMENSIONS);
    assert_eq!(store.document(&t, &a, "faq").await.unwrap(), Some(entry));
    let hits = store
        .search(&SearchRequest::new(t.clone(), a.clone(), vector(3), 10))
        .await
        .unwrap();
    assert_eq!(hits.len(), 5, "every chunk is still there");
    assert_eq!(hits[0].id, "faq#3");
    assert!((hits[0].score - 1.0).abs() < 1e-4);
    assert_eq!(hits[0].text, records[3].text);
    assert_eq!(hits[0].source, records[3].source);
    assert_eq!(hits[0].metadata, records[3].metadata);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_of_dimension_8_refuses_a_9_long_query() {
    let store = SqliteStore::open_in_memory().await.unwrap().vectors(8);
    assert_eq!(store.dimensions(), 8);
    let (t, a) = (
        TenantId::new("acme").unwrap(),
        AgentId::new("support").unwrap(),
    );
    store.upsert(&t, &a, &[record("x", "d", 1)]).await.unwrap();
    let err = store
        .search(&SearchRequest::new(t, a, vec![0.5; 9], 3))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DimensionMismatch);
    assert!(
        matches!(
            err,
            agentkit_core::Error::DimensionMismatch {
                expected: 8,
                got: 9
            }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_of_another_dimension_on_the_same_file_are_refused() {
    let sqlite = SqliteStore::open_in_memory().await.unwrap();
    let (t, a) = (
        TenantId::new("acme").unwrap(),
        AgentId::new("support").unwrap(),
    );
    sqlite
        .vectors(DIMENSIONS)
        .upsert(&t, &a, &[record("x", "d", 1)])
        .await
        .unwrap();
    let wider = sqlite.vectors(DIMENSIONS * 2);
    let err = wider
        .search(&SearchRequest::new(t, a, vec![0.5; DIMENSIONS * 2], 3))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DimensionMismatch, "{err}");
}
