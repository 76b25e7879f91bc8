//! Seed 001's knowledge-base acceptance on the embedded defaults (SQLite): tenant A uploads
//! documents → indexing with progress → a question whose answer needs them → the answer cites
//! them; the same question as tenant B finds nothing of A's. Each knowledge query is metered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../examples/knowledge_base/scenario.rs"]
mod scenario;

use std::sync::{Arc, Mutex};

use agentkit::agent::RunRequest;
use agentkit::id::{AgentId, TenantId};
use agentkit::rag::Progress;
use agentkit::rag::testkit::NOTHING_FOUND;
use agentkit::retrieval::{SearchRequest, VectorStore};
use agentkit::sqlite::SqliteStore;
use agentkit::store::{UsageKind, UsageQuery, UsageStore};

#[tokio::test]
async fn tenant_a_gets_cited_answers_and_tenant_b_finds_nothing_of_a() {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteStore::open(dir.path().join("kb.db")).await.unwrap();
    let vectors = Arc::new(db.vectors(scenario::DIMENSIONS));
    let (acme, globex) = (
        TenantId::new("acme").unwrap(),
        TenantId::new("globex").unwrap(),
    );
    let support = AgentId::new("support").unwrap();

    // Upload → indexing with progress.
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = seen.clone();
    let report = scenario::ingestor(vectors.clone())
        .unwrap()
        .ingest_with_progress(&acme, &support, scenario::documents(), move |p| {
            sink.lock().unwrap().push(p.clone())
        })
        .await;
    assert!(report.is_complete(), "{:?}", report.failed);
    assert_eq!(report.indexed.len(), 3);
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!((last.documents_done, last.documents_total), (3, 3));
    assert_eq!(last.chunks_done, report.chunks);

    // Tenant A's question is answered from its documents, with a citation.
    let agent = scenario::agent(Arc::new(db.clone()), vectors.clone()).unwrap();
    let out = agent
        .run(RunRequest::new("acme", "s1", "How long do refunds take?"))
        .await
        .unwrap();
    let a = out.report().unwrap();
    assert!(a.reply.contains("five business days"), "{}", a.reply);
    assert_eq!(a.citations.len(), 1, "{:?}", a.citations);
    let cited = &a.citations[0].source;
    assert_eq!(cited.document_id, "refund-policy.md");
    assert_eq!(cited.title.as_deref(), Some("Refund policy"));
    assert!(
        cited
            .section
            .as_deref()
            .is_some_and(|s| s.starts_with("Refund policy"))
    );
    let (offset, length) = (
        cited.offset.unwrap() as usize,
        cited.length.unwrap() as usize,
    );
    let source = String::from_utf8(scenario::documents()[0].bytes.clone()).unwrap();
    assert!(source[offset..offset + length].contains("five business days"));

    // Tenant B asks the same with the same agent: nothing of A's reaches the model or the report.
    let out = agent
        .run(RunRequest::new("globex", "s1", "How long do refunds take?"))
        .await
        .unwrap();
    let b = out.report().unwrap();
    assert_eq!(b.reply, NOTHING_FOUND);
    assert!(b.sources.is_empty() && b.citations.is_empty());
    // Even with the exact text of A's chunk as the query, B's search is empty.
    let probe = scenario::embedder()
        .embed(&[a.sources[0].text.clone()])
        .await
        .unwrap();
    let hits = vectors
        .search(&SearchRequest::new(
            globex.clone(),
            support.clone(),
            probe[0].clone(),
            10,
        ))
        .await
        .unwrap();
    assert!(
        hits.is_empty(),
        "tenant B's search never returns tenant A's vectors"
    );

    // Every knowledge query is a usage event of its own tenant.
    for tenant in [&acme, &globex] {
        let q = db
            .list_usage(tenant, &UsageQuery::all().kind(UsageKind::KnowledgeQuery))
            .await
            .unwrap();
        assert_eq!(q.len(), 1, "{tenant}");
    }

    // The store survives a reopen; re-ingesting unchanged documents does nothing.
    drop(agent);
    let db = SqliteStore::open(dir.path().join("kb.db")).await.unwrap();
    let vectors = Arc::new(db.vectors(scenario::DIMENSIONS));
    let again = scenario::ingestor(vectors)
        .unwrap()
        .ingest(&acme, &support, scenario::documents())
        .await;
    assert_eq!(again.unchanged.len(), 3, "{again:?}");
}
