//! The conformance suite of the core [`VectorStore`] contract, run against every backend (in
//! memory exact and HNSW, SQLite, Postgres, Qdrant).
//!
//! Each check takes a fresh, empty store of [`DIMENSIONS`] and panics with a message naming
//! the guarantee it saw broken. [`run_all`] runs every check, each on its own fresh store.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use agentkit_rag::memory::InMemoryVectorStore;
//! use agentkit_rag::testkit::vectors::{run_all, DIMENSIONS};
//!
//! run_all(|| async { Arc::new(InMemoryVectorStore::new(DIMENSIONS)) as Arc<_> }).await;
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use agentkit_core::ErrorKind;
use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{
    DocumentEntry, ScoredChunk, SearchRequest, SourceRef, VectorRecord, VectorStore, cosine,
};

/// The vector length every check uses.
pub const DIMENSIONS: usize = 8;

pub(super) fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("a valid tenant id")
}

pub(super) fn agent(name: &str) -> AgentId {
    AgentId::new(name).expect("a valid agent id")
}

/// A deterministic vector for `seed` (unit length, spread over the space).
pub fn vector(seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut v: Vec<f32> = (0..DIMENSIONS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// A record of document `doc` with vector `vector(seed)`.
pub fn record(id: &str, doc: &str, seed: u64) -> VectorRecord {
    VectorRecord {
        id: id.to_string(),
        vector: vector(seed),
        text: format!("text of {id}"),
        source: SourceRef {
            document_id: doc.to_string(),
            title: Some(format!("{doc}.md")),
            page: Some((seed % 7) as u32 + 1),
            offset: Some(seed * 100),
            length: Some(99),
            section: Some(format!("Part {}", seed % 3)),
        },
        metadata: BTreeMap::from([("parity".to_string(), (seed % 2).to_string())]),
    }
}

fn entry(id: &str, hash: &str, chunks: usize) -> DocumentEntry {
    DocumentEntry {
        id: id.to_string(),
        title: Some(format!("{id}.md")),
        content_hash: hash.to_string(),
        chunks,
        metadata: BTreeMap::from([("kind".to_string(), "faq".to_string())]),
    }
}

async fn search(
    store: &dyn VectorStore,
    t: &str,
    a: &str,
    query: Vec<f32>,
    k: usize,
) -> Vec<ScoredChunk> {
    store
        .search(&SearchRequest::new(tenant(t), agent(a), query, k))
        .await
        .expect("search")
}

fn ids(hits: &[ScoredChunk]) -> Vec<&str> {
    hits.iter().map(|h| h.id.as_str()).collect()
}

/// An empty store finds nothing and deletes nothing.
pub async fn empty_store(store: Arc<dyn VectorStore>) {
    assert_eq!(
        store.dimensions(),
        DIMENSIONS,
        "the store reports its dimension"
    );
    assert!(search(&*store, "t1", "a1", vector(1), 5).await.is_empty());
    let (t, a) = (tenant("t1"), agent("a1"));
    assert_eq!(
        store.delete(&t, &a, &["x".into()]).await.expect("delete"),
        0
    );
    assert!(store.documents(&t, &a).await.expect("documents").is_empty());
    assert!(
        store
            .document(&t, &a, "d")
            .await
            .expect("document")
            .is_none()
    );
    assert!(
        store
            .delete_document(&t, &a, "d")
            .await
            .expect("delete_document")
            .is_none()
    );
    store
        .upsert(&t, &a, &[])
        .await
        .expect("an empty upsert is a no-op");
}

/// Hits come best first with cosine scores, ties by id, cut at `top_k` and `min_score`.
pub async fn ordering_and_scores(store: Arc<dyn VectorStore>) {
    let (t, a) = (tenant("t1"), agent("a1"));
    let records: Vec<_> = (0..40)
        .map(|i| record(&format!("c{i:02}"), "d", i))
        .collect();
    store.upsert(&t, &a, &records).await.expect("upsert");
    let query = vector(7);
    let hits = search(&*store, "t1", "a1", query.clone(), 10).await;
    assert_eq!(hits.len(), 10, "top_k hits when the store has more");
    assert_eq!(hits[0].id, "c07", "the identical vector is first");
    assert!(
        (hits[0].score - 1.0).abs() < 1e-4,
        "cosine of a vector with itself is 1"
    );
    let mut expected: Vec<(f32, &str)> = records
        .iter()
        .map(|r| (cosine(&query, &r.vector), r.id.as_str()))
        .collect();
    expected.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(y.1)));
    for (hit, (score, id)) in hits.iter().zip(&expected) {
        assert_eq!(hit.id, *id, "exact order by cosine");
        assert!(
            (hit.score - score).abs() < 1e-4,
            "{}: score {} vs cosine {score}",
            hit.id,
            hit.score
        );
    }
    // A scaled query has the same cosine scores.
    let scaled: Vec<f32> = query.iter().map(|x| x * 3.0).collect();
    assert_eq!(
        ids(&search(&*store, "t1", "a1", scaled, 10).await),
        ids(&hits)
    );
    assert!(
        search(&*store, "t1", "a1", query.clone(), 0)
            .await
            .is_empty(),
        "top_k 0"
    );
    let all = search(&*store, "t1", "a1", query.clone(), 1000).await;
    assert_eq!(all.len(), 40, "top_k above the count gives every record");
    let mut request = SearchRequest::new(t.clone(), a.clone(), query, 40);
    request.min_score = Some(0.5);
    let kept = store.search(&request).await.expect("search");
    assert!(
        kept.iter().all(|h| h.score >= 0.5),
        "min_score drops the rest"
    );
    assert_eq!(
        kept.len(),
        expected.iter().filter(|(s, _)| *s >= 0.5).count()
    );
    // Ties are ordered by id.
    let twin = |id: &str| VectorRecord {
        id: id.into(),
        ..record(id, "twins", 1000)
    };
    store
        .upsert(&t, &a, &[twin("z-twin"), twin("m-twin"), twin("a-twin")])
        .await
        .expect("upsert");
    let hits = search(&*store, "t1", "a1", vector(1000), 3).await;
    assert_eq!(ids(&hits), ["a-twin", "m-twin", "z-twin"], "ties by id");
}

/// Text, citation data and metadata come back as written.
pub async fn records_round_trip(store: Arc<dyn VectorStore>) {
    let (t, a) = (tenant("t1"), agent("a1"));
    let mut r = record("page-3#0", "handbook", 3);
    r.text = "Refunds take 5 days — ünïcode, \"quotes\", 'single', \\ back\nslash".into();
    r.metadata.insert("lang".into(), "en".into());
    r.source.title = None;
    store
        .upsert(&t, &a, std::slice::from_ref(&r))
        .await
        .expect("upsert");
    let hit = search(&*store, "t1", "a1", vector(3), 1).await.remove(0);
    assert_eq!(hit.id, r.id);
    assert_eq!(hit.text, r.text);
    assert_eq!(hit.source, r.source);
    assert_eq!(hit.metadata, r.metadata);
}

/// Upserting an id again replaces its vector, text and metadata.
pub async fn upsert_replaces(store: Arc<dyn VectorStore>) {
    let (t, a) = (tenant("t1"), agent("a1"));
    store
        .upsert(&t, &a, &[record("x", "d", 1), record("y", "d", 2)])
        .await
        .expect("upsert");
    let mut changed = record("x", "d", 50);
    changed.text = "second version".into();
    store.upsert(&t, &a, &[changed]).await.expect("upsert");
    let all = search(&*store, "t1", "a1", vector(50), 10).await;
    assert_eq!(all.len(), 2, "no duplicate after a re-upsert");
    assert_eq!(all[0].id, "x");
    assert_eq!(all[0].text, "second version");
    assert!(
        (all[0].score - 1.0).abs() < 1e-4,
        "the new vector is searched"
    );
}

/// Metadata filters apply inside the search: `top_k` hits when that many match, even when
/// the matching records are far from the query.
pub async fn filters_still_return_k(store: Arc<dyn VectorStore>) {
    let (t, a) = (tenant("t1"), agent("a1"));
    let query = vector(1);
    // 300 records; the 6 "rare" ones are the farthest from the query.
    let mut records: Vec<_> = (0..300)
        .map(|i| record(&format!("r{i:03}"), "d", i + 10))
        .collect();
    records.sort_by(|x, y| cosine(&query, &y.vector).total_cmp(&cosine(&query, &x.vector)));
    for r in records.iter_mut().rev().take(6) {
        r.metadata.insert("tag".into(), "rare".into());
    }
    store.upsert(&t, &a, &records).await.expect("upsert");
    let mut request = SearchRequest::new(t.clone(), a.clone(), query.clone(), 5);
    request.metadata.insert("tag".into(), "rare".into());
    let hits = store.search(&request).await.expect("search");
    assert_eq!(hits.len(), 5, "a filtered search still returns k hits");
    assert!(
        hits.iter()
            .all(|h| h.metadata.get("tag").map(String::as_str) == Some("rare"))
    );
    request.top_k = 50;
    assert_eq!(
        store.search(&request).await.expect("search").len(),
        6,
        "all matches"
    );
    request.metadata.insert("parity".into(), "0".into());
    let both = store.search(&request).await.expect("search");
    assert!(
        !both.is_empty() && both.len() < 6,
        "every filter must match"
    );
    assert!(
        both.iter()
            .all(|h| h.metadata["parity"] == "0" && h.metadata["tag"] == "rare")
    );
    request.metadata.insert("tag".into(), "absent".into());
    assert!(store.search(&request).await.expect("search").is_empty());
}

/// Deleting by id removes exactly those records and counts the ones that existed.
pub async fn deletion(store: Arc<dyn VectorStore>) {
    let (t, a) = (tenant("t1"), agent("a1"));
    let records: Vec<_> = (0..10).map(|i| record(&format!("c{i}"), "d", i)).collect();
    store.upsert(&t, &a, &records).await.expect("upsert");
    let gone = store
        .delete(&t, &a, &["c1".into(), "c3".into(), "nope".into()])
        .await
        .expect("delete");
    assert_eq!(gone, 2, "counts the records that existed");
    let left = search(&*store, "t1", "a1", vector(1), 100).await;
    assert_eq!(left.len(), 8);
    assert!(!ids(&left).contains(&"c1") && !ids(&left).contains(&"c3"));
    assert_eq!(
        store.delete(&t, &a, &["c1".into()]).await.expect("delete"),
        0
    );
}

/// A document's chunks are replaced and deleted as a whole, and a bad batch changes nothing.
pub async fn documents_are_atomic(store: Arc<dyn VectorStore>) {
    let (t, a) = (tenant("t1"), agent("a1"));
    let v1: Vec<_> = (0..3)
        .map(|i| record(&format!("guide#{i}"), "guide", i))
        .collect();
    store
        .replace_document(&t, &a, &entry("guide", "h1", 3), &v1)
        .await
        .expect("replace");
    store
        .replace_document(
            &t,
            &a,
            &entry("other", "h9", 1),
            &[record("other#0", "other", 9)],
        )
        .await
        .expect("replace");
    let got = store.document(&t, &a, "guide").await.expect("document");
    assert_eq!(
        got,
        Some(entry("guide", "h1", 3)),
        "the entry is stored as given"
    );

    let v2: Vec<_> = (0..2)
        .map(|i| record(&format!("guide#v2-{i}"), "guide", 20 + i))
        .collect();
    store
        .replace_document(&t, &a, &entry("guide", "h2", 2), &v2)
        .await
        .expect("replace");
    let all = search(&*store, "t1", "a1", vector(0), 100).await;
    let mut found: Vec<_> = ids(&all);
    found.sort_unstable();
    assert_eq!(
        found,
        ["guide#v2-0", "guide#v2-1", "other#0"],
        "old chunks are gone"
    );
    assert_eq!(
        store
            .document(&t, &a, "guide")
            .await
            .expect("document")
            .map(|d| d.content_hash),
        Some("h2".to_string())
    );

    // A record of another document in the batch: refused, nothing changes.
    let bad = vec![
        record("guide#v3", "guide", 30),
        record("stray", "elsewhere", 31),
    ];
    let err = store
        .replace_document(&t, &a, &entry("guide", "h3", 2), &bad)
        .await
        .expect_err("a record of another document is refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let mut wrong_dim = record("guide#v3", "guide", 30);
    wrong_dim.vector.push(0.5);
    let err = store
        .replace_document(&t, &a, &entry("guide", "h3", 1), &[wrong_dim])
        .await
        .expect_err("a vector of the wrong length is refused");
    assert_eq!(err.kind(), ErrorKind::DimensionMismatch);
    assert_eq!(
        search(&*store, "t1", "a1", vector(0), 100).await.len(),
        3,
        "nothing changed"
    );
    assert_eq!(
        store
            .document(&t, &a, "guide")
            .await
            .expect("document")
            .map(|d| d.content_hash),
        Some("h2".to_string()),
        "the entry did not change"
    );

    let listed: Vec<_> = store
        .documents(&t, &a)
        .await
        .expect("documents")
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(listed, ["guide", "other"], "documents by id");

    let removed = store
        .delete_document(&t, &a, "guide")
        .await
        .expect("delete_document");
    assert_eq!(removed.map(|d| d.content_hash), Some("h2".to_string()));
    assert_eq!(
        ids(&search(&*store, "t1", "a1", vector(0), 100).await),
        ["other#0"]
    );
    assert!(
        store
            .document(&t, &a, "guide")
            .await
            .expect("document")
            .is_none()
    );
    assert!(
        store
            .delete_document(&t, &a, "guide")
            .await
            .expect("again")
            .is_none()
    );
    // An empty document (no chunks) is a valid entry.
    store
        .replace_document(&t, &a, &entry("blank", "h0", 0), &[])
        .await
        .expect("replace");
    assert_eq!(
        store
            .document(&t, &a, "blank")
            .await
            .expect("document")
            .map(|d| d.chunks),
        Some(0)
    );
}

/// A vector of another length is a typed error, and a batch holding one writes nothing.
pub async fn dimension_mismatch(store: Arc<dyn VectorStore>) {
    let (t, a) = (tenant("t1"), agent("a1"));
    let mut short = record("short", "d", 2);
    short.vector.pop();
    let err = store
        .upsert(&t, &a, &[record("ok", "d", 1), short])
        .await
        .expect_err("a short vector is refused");
    assert!(
        matches!(err, agentkit_core::Error::DimensionMismatch { expected: DIMENSIONS, got } if got == DIMENSIONS - 1),
        "{err}"
    );
    assert!(
        search(&*store, "t1", "a1", vector(1), 10).await.is_empty(),
        "the batch wrote nothing"
    );
    let err = store
        .search(&SearchRequest::new(
            t.clone(),
            a.clone(),
            vec![1.0; DIMENSIONS + 1],
            3,
        ))
        .await
        .expect_err("a long query is refused");
    assert_eq!(err.kind(), ErrorKind::DimensionMismatch);
    let mut nan = record("nan", "d", 3);
    nan.vector[0] = f32::NAN;
    let err = store
        .upsert(&t, &a, &[nan])
        .await
        .expect_err("NaN is refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// A tenant (or agent) never reads, changes or deletes another's records, even when another's
/// vector is the nearest and the ids are the same.
pub async fn tenant_isolation(store: Arc<dyn VectorStore>) {
    let (ta, tb) = (tenant("tenant-a"), tenant("tenant-b"));
    let (support, sales) = (agent("support"), agent("sales"));
    let secret = record("shared-id", "secret", 42);
    store
        .upsert(&tb, &support, std::slice::from_ref(&secret))
        .await
        .expect("upsert");
    store
        .upsert(&ta, &support, &[record("mine", "own", 1)])
        .await
        .expect("upsert");
    store
        .upsert(&ta, &sales, &[record("sales-only", "pitch", 42)])
        .await
        .expect("upsert");
    // Tenant A queries with B's exact vector.
    let hits = search(&*store, "tenant-a", "support", vector(42), 10).await;
    assert_eq!(
        ids(&hits),
        ["mine"],
        "tenant A never sees tenant B's nearest vector"
    );
    // Same id in both tenants: independent records.
    let mut own = record("shared-id", "own", 2);
    own.text = "tenant A's text".into();
    store.upsert(&ta, &support, &[own]).await.expect("upsert");
    let b_hit = search(&*store, "tenant-b", "support", vector(42), 10).await;
    assert_eq!(b_hit.len(), 1);
    assert_eq!(
        b_hit[0].text, secret.text,
        "A's upsert of the same id left B's record"
    );
    // Deleting from A does not touch B.
    assert_eq!(
        store
            .delete(&ta, &support, &["shared-id".into()])
            .await
            .expect("delete"),
        1
    );
    assert_eq!(
        search(&*store, "tenant-b", "support", vector(42), 10)
            .await
            .len(),
        1
    );
    // Agents are apart too.
    let hits = search(&*store, "tenant-a", "support", vector(42), 10).await;
    assert!(
        !ids(&hits).contains(&"sales-only"),
        "agent support never sees agent sales"
    );
    // Documents.
    store
        .replace_document(
            &tb,
            &support,
            &entry("secret", "hb", 1),
            std::slice::from_ref(&secret),
        )
        .await
        .expect("replace");
    assert!(
        store
            .document(&ta, &support, "secret")
            .await
            .expect("document")
            .is_none()
    );
    assert!(
        store
            .documents(&ta, &support)
            .await
            .expect("documents")
            .is_empty()
    );
    assert!(
        store
            .delete_document(&ta, &support, "secret")
            .await
            .expect("delete")
            .is_none(),
        "tenant A cannot delete B's document"
    );
    store
        .replace_document(&ta, &support, &entry("secret", "ha", 0), &[])
        .await
        .expect("replace");
    assert_eq!(
        store
            .document(&tb, &support, "secret")
            .await
            .expect("document")
            .map(|d| d.content_hash),
        Some("hb".to_string()),
        "A's document of the same id left B's"
    );
    assert_eq!(
        search(&*store, "tenant-b", "support", vector(42), 10)
            .await
            .len(),
        1
    );
}

/// Concurrent writers of different documents all land.
pub async fn concurrent_writers(store: Arc<dyn VectorStore>) {
    let t = tenant("t1");
    let a = agent("a1");
    let mut tasks = Vec::new();
    for d in 0..8u64 {
        let (store, t, a) = (store.clone(), t.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            let doc = format!("doc{d}");
            let records: Vec<_> = (0..5)
                .map(|i| record(&format!("{doc}#{i}"), &doc, d * 10 + i))
                .collect();
            store
                .replace_document(&t, &a, &entry(&doc, "h", 5), &records)
                .await
                .expect("replace");
        }));
    }
    for task in tasks {
        task.await.expect("writer");
    }
    assert_eq!(search(&*store, "t1", "a1", vector(3), 100).await.len(), 40);
    assert_eq!(store.documents(&t, &a).await.expect("documents").len(), 8);
}

/// Runs every check, each on a fresh store from `fresh`, the text-search checks of
/// [`super::text`] included (each passes at once for a store without a text index).
pub async fn run_all<F, Fut>(mut fresh: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<dyn VectorStore>>,
{
    empty_store(fresh().await).await;
    ordering_and_scores(fresh().await).await;
    records_round_trip(fresh().await).await;
    upsert_replaces(fresh().await).await;
    filters_still_return_k(fresh().await).await;
    deletion(fresh().await).await;
    documents_are_atomic(fresh().await).await;
    dimension_mismatch(fresh().await).await;
    tenant_isolation(fresh().await).await;
    concurrent_writers(fresh().await).await;
    super::text::text_search_finds_words(fresh().await).await;
    super::text::text_search_filters_return_k(fresh().await).await;
    super::text::text_search_isolation(fresh().await).await;
    super::text::text_search_forgets(fresh().await).await;
    super::text::text_search_ties_and_syntax(fresh().await).await;
}
