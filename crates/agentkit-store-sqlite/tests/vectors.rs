//! The vector store conformance suite (`agentkit_rag::testkit::vectors`, its text search checks
//! included) against `SqliteVectorStore`, each check on a fresh file, plus persistence, keyword
//! search through the public API and the store's dimension.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit_core::ErrorKind;
use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{
    DocumentEntry, ScoredChunk, SearchRequest, TextSearchRequest, VectorRecord, VectorStore,
};
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

fn texted(id: &str, doc: &str, seed: u64, text: &str, lang: &str) -> VectorRecord {
    let mut r = record(id, doc, seed);
    r.text = text.to_string();
    r.metadata = [("lang".to_string(), lang.to_string())].into();
    r
}

fn ids(hits: &[ScoredChunk]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

/// What hybrid retrieval leans on: an exact product code, which no embedding of the question
/// would single out, is found by its words in a store opened from a file, after reopening,
/// with filters, while the vector search of the same store is unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_code_is_found_by_text_search_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hybrid.db");
    let (t, a) = (
        TenantId::new("acme").unwrap(),
        AgentId::new("support").unwrap(),
    );
    let records = vec![
        texted(
            "faq#0",
            "faq",
            0,
            "Reset the router by holding its button.",
            "en",
        ),
        texted(
            "faq#1",
            "faq",
            1,
            "Error KX-4471B: the fan of the PSU-9000 stopped; replace the fan.",
            "en",
        ),
        texted("faq#2", "faq", 2, "The warranty lasts two years.", "en"),
        texted("faq#3", "faq", 3, "Fehler KX-4471B: Lüfter ersetzen.", "de"),
    ];
    let entry = DocumentEntry {
        id: "faq".into(),
        title: Some("faq.md".into()),
        content_hash: "h1".into(),
        chunks: records.len(),
        metadata: Default::default(),
    };
    {
        let store = SqliteStore::open(&path).await.unwrap().vectors(DIMENSIONS);
        store
            .replace_document(&t, &a, &entry, &records)
            .await
            .unwrap();
        // Another tenant's chunk with the same code, for the same agent id.
        store
            .upsert(
                &TenantId::new("globex").unwrap(),
                &a,
                &[texted("theirs", "faq", 9, "KX-4471B recall notice.", "en")],
            )
            .await
            .unwrap();
    }
    let store = SqliteStore::open(&path).await.unwrap().vectors(DIMENSIONS);
    let question = TextSearchRequest::new(t.clone(), a.clone(), "What does kx-4471b mean?", 10);
    let hits = store.search_text(&question).await.unwrap().unwrap();
    assert_eq!(
        ids(&hits),
        ["faq#3", "faq#1"],
        "both chunks with the code (the shorter one first), no other tenant's, nothing else"
    );
    assert!(
        hits[0].score > hits[1].score && hits[1].score > 0.0,
        "{hits:?}"
    );
    assert_eq!(hits[1].text, records[1].text);
    assert_eq!(hits[1].source, records[1].source);
    let mut english = question.clone();
    english.metadata.insert("lang".into(), "en".into());
    let hits = store.search_text(&english).await.unwrap().unwrap();
    assert_eq!(
        ids(&hits),
        ["faq#1"],
        "filters apply inside the text search"
    );
    let other_agent =
        TextSearchRequest::new(t.clone(), AgentId::new("sales").unwrap(), "kx-4471b", 10);
    assert!(
        store
            .search_text(&other_agent)
            .await
            .unwrap()
            .unwrap()
            .is_empty()
    );
    let near = store
        .search(&SearchRequest::new(t.clone(), a.clone(), vector(2), 1))
        .await
        .unwrap();
    assert_eq!(ids(&near), ["faq#2"], "vector search is unchanged");
}

/// Removing text leaves no trace in the index: after a document or records come and go, the
/// BM25 scores (which count every indexed text) are exactly what they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_text_leaves_the_scores_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("scores.db"))
        .await
        .unwrap()
        .vectors(DIMENSIONS);
    let (t, a) = (
        TenantId::new("acme").unwrap(),
        AgentId::new("support").unwrap(),
    );
    store
        .upsert(
            &t,
            &a,
            &[
                texted("a", "base", 1, "refund policy for damaged parcels", "en"),
                texted("b", "base", 2, "refund refund within thirty days", "en"),
                texted("c", "base", 3, "shipping times vary by region", "en"),
            ],
        )
        .await
        .unwrap();
    let request = TextSearchRequest::new(t.clone(), a.clone(), "refund parcels", 10);
    let before = store.search_text(&request).await.unwrap().unwrap();
    assert_eq!(ids(&before), ["a", "b"]);

    let entry = DocumentEntry {
        id: "tmp".into(),
        title: None,
        content_hash: "h".into(),
        chunks: 2,
        metadata: Default::default(),
    };
    let tmp = [
        texted(
            "tmp#0",
            "tmp",
            4,
            "refund refund refund parcels parcels",
            "en",
        ),
        texted(
            "tmp#1",
            "tmp",
            5,
            "a long text about refund rules and more words",
            "en",
        ),
    ];
    store.replace_document(&t, &a, &entry, &tmp).await.unwrap();
    let during = store.search_text(&request).await.unwrap().unwrap();
    assert_eq!(during.len(), 4, "{during:?}");
    store.delete_document(&t, &a, "tmp").await.unwrap();
    assert_eq!(
        store.search_text(&request).await.unwrap().unwrap(),
        before,
        "a deleted document leaves no entry behind"
    );

    store
        .upsert(&t, &a, &[texted("d", "loose", 6, "refund refund", "en")])
        .await
        .unwrap();
    store
        .upsert(
            &t,
            &a,
            &[texted("c", "base", 3, "refund parcels now", "en")],
        )
        .await
        .unwrap();
    store
        .upsert(
            &t,
            &a,
            &[texted(
                "c",
                "base",
                3,
                "shipping times vary by region",
                "en",
            )],
        )
        .await
        .unwrap();
    store.delete(&t, &a, &["d".to_string()]).await.unwrap();
    assert_eq!(
        store.search_text(&request).await.unwrap().unwrap(),
        before,
        "deleted and rewritten records leave no entry behind"
    );
}
