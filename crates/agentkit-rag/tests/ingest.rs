//! The ingestion pipeline through its public API: incremental, atomic per document, typed
//! errors per document, bounded concurrency, retries, progress.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use agentkit_core::ErrorKind;
use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{Embedder, SearchRequest, VectorStore};
use agentkit_rag::memory::InMemoryVectorStore;
use agentkit_rag::testkit::HashEmbedder;
use agentkit_rag::{
    CachedEmbedder, ChunkingConfig, Document, Format, IngestError, Ingestor, LoadError, LoadLimits,
    Progress,
};

const DIMS: usize = 64;

fn ids() -> (TenantId, AgentId) {
    (
        TenantId::from_static("acme"),
        AgentId::from_static("support"),
    )
}

fn guide(extra: &str) -> Document {
    Document::markdown(
        "guide.md",
        format!(
            "# Guide\n\nWelcome to the guide.\n\n## Refunds\n\nRefunds take five business days. {extra}\n\n\
             ## Shipping\n\nShipping is free above fifty euros.\n"
        ),
    )
    .with_title("Customer guide")
}

fn setup(embedder: Arc<dyn Embedder>) -> (Arc<InMemoryVectorStore>, Ingestor) {
    let store = Arc::new(InMemoryVectorStore::new(DIMS));
    let ingestor = Ingestor::builder(embedder, store.clone())
        .chunking(ChunkingConfig::characters(50, 5))
        .retry(3, Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .expect("ingestor");
    (store, ingestor)
}

async fn search(
    store: &InMemoryVectorStore,
    embedder: &HashEmbedder,
    q: &str,
    k: usize,
) -> Vec<agentkit_core::retrieval::ScoredChunk> {
    let (t, a) = ids();
    store
        .search(&SearchRequest::new(t, a, embedder.vector(q), k))
        .await
        .expect("search")
}

#[tokio::test]
async fn unchanged_documents_are_skipped_and_changed_ones_replaced() {
    let embedder = Arc::new(HashEmbedder::new(DIMS));
    let (store, ingestor) = setup(embedder.clone());
    let (t, a) = ids();
    let report = ingestor.ingest(&t, &a, vec![guide("")]).await;
    assert!(report.is_complete(), "{:?}", report.failed);
    let (_, chunks) = report.indexed[0].clone();
    assert!(
        chunks >= 3,
        "small chunks split the guide by sections: {chunks}"
    );
    let embedded = embedder.texts();

    let hits = search(&store, &embedder, "how long do refunds take", 1).await;
    assert!(hits[0].text.contains("five business days"), "{hits:?}");
    assert_eq!(hits[0].source.section.as_deref(), Some("Guide > Refunds"));
    assert_eq!(hits[0].source.title.as_deref(), Some("Customer guide"));
    let offset = hits[0].source.offset.expect("offset") as usize;
    let len = hits[0].source.length.expect("length") as usize;
    let text = String::from_utf8(guide("").bytes).expect("utf-8");
    assert_eq!(
        &text[offset..offset + len],
        hits[0].text,
        "offsets point into the source"
    );

    let again = ingestor.ingest(&t, &a, vec![guide("")]).await;
    assert_eq!(again.unchanged, ["guide.md"]);
    assert!(again.indexed.is_empty());
    assert_eq!(
        embedder.texts(),
        embedded,
        "an unchanged document is not embedded again"
    );

    let changed = ingestor
        .ingest(&t, &a, vec![guide("Store credit is instant.")])
        .await;
    assert_eq!(changed.indexed.len(), 1);
    let all = search(&store, &embedder, "refunds", 100).await;
    assert_eq!(
        all.len(),
        changed.indexed[0].1,
        "the old chunks were replaced, not added to"
    );
    assert!(all.iter().any(|h| h.text.contains("Store credit")));

    let entry = ingestor.delete(&t, &a, "guide.md").await.expect("delete");
    assert!(entry.is_some());
    assert!(
        search(&store, &embedder, "refunds", 100).await.is_empty(),
        "deleting removes vectors"
    );
    assert!(store.documents(&t, &a).await.expect("documents").is_empty());
}

#[tokio::test]
async fn bad_documents_get_typed_errors_and_the_batch_goes_on() {
    let embedder = Arc::new(HashEmbedder::new(DIMS));
    let store = Arc::new(InMemoryVectorStore::new(DIMS));
    let ingestor = Ingestor::builder(embedder.clone(), store.clone())
        .limits(LoadLimits { max_bytes: 4096 })
        .build()
        .expect("ingestor");
    let (t, a) = ids();
    let docs = vec![
        Document::new(
            "corrupt.pdf",
            Format::Pdf,
            b"%PDF-1.4\n1 0 obj << /Type /Catalog".to_vec(),
        ),
        Document::new(
            "latin1.txt",
            Format::Text,
            vec![b'c', b'a', b'f', 0xE9, b'!'],
        ),
        Document::text("empty.txt", ""),
        Document::text("blank.txt", "  \n\t "),
        Document::text("huge.txt", "x".repeat(5000)),
        Document::new("broken.json", Format::Json, b"{\"a\": [1, 2".to_vec()),
        Document::text("good.txt", "Opening hours are nine to five."),
        Document::text("good.txt", "A second document with the same id."),
    ];
    let report = ingestor.ingest(&t, &a, docs).await;
    assert_eq!(report.indexed, [("good.txt".to_string(), 1)]);
    let kind = |id: &str| {
        report
            .failure(id)
            .unwrap_or_else(|| panic!("{id} should fail"))
    };
    assert!(matches!(
        kind("corrupt.pdf"),
        IngestError::Load(LoadError::CorruptPdf(_))
    ));
    assert!(matches!(
        kind("latin1.txt"),
        IngestError::Load(LoadError::InvalidUtf8 { valid_up_to: 3 })
    ));
    assert!(matches!(
        kind("empty.txt"),
        IngestError::Load(LoadError::Empty)
    ));
    assert!(matches!(
        kind("blank.txt"),
        IngestError::Load(LoadError::Empty)
    ));
    assert!(matches!(
        kind("huge.txt"),
        IngestError::Load(LoadError::TooLarge {
            size: 5000,
            limit: 4096
        })
    ));
    assert!(matches!(
        kind("broken.json"),
        IngestError::Load(LoadError::Parse { .. })
    ));
    assert_eq!(
        report
            .failed
            .iter()
            .filter(|f| matches!(f.error, IngestError::DuplicateId))
            .count(),
        1
    );
    assert_eq!(store.documents(&t, &a).await.expect("documents").len(), 1);
}

#[tokio::test]
async fn retryable_embedder_errors_are_retried_and_others_fail_one_document() {
    let embedder = Arc::new(HashEmbedder::new(DIMS));
    let (store, ingestor) = setup(embedder.clone());
    let (t, a) = ids();
    embedder.fail_next(2);
    embedder.fail_on(Some("poison"));
    let report = ingestor
        .ingest(
            &t,
            &a,
            vec![
                Document::text("a.txt", "Alpha document about billing."),
                Document::text("b.txt", "This one holds poison and fails."),
            ],
        )
        .await;
    assert_eq!(
        report.indexed,
        [("a.txt".to_string(), 1)],
        "{:?}",
        report.failed
    );
    match report.failure("b.txt") {
        Some(IngestError::Embed(e)) => assert_eq!(e.kind(), ErrorKind::InvalidInput),
        other => panic!("b.txt: {other:?}"),
    }
    // Resuming after the failure: the finished document is unchanged, the failed one indexed.
    embedder.fail_on(None);
    let resumed = ingestor
        .ingest(
            &t,
            &a,
            vec![
                Document::text("a.txt", "Alpha document about billing."),
                Document::text("b.txt", "This one holds poison and fails."),
            ],
        )
        .await;
    assert_eq!(resumed.unchanged, ["a.txt"]);
    assert_eq!(resumed.indexed, [("b.txt".to_string(), 1)]);
    assert_eq!(store.documents(&t, &a).await.expect("documents").len(), 2);

    // Out of attempts: a typed error, not a hang or a panic.
    embedder.fail_next(10);
    let report = ingestor
        .ingest(&t, &a, vec![Document::text("c.txt", "Gamma.")])
        .await;
    match report.failure("c.txt") {
        Some(IngestError::Embed(e)) => assert_eq!(e.kind(), ErrorKind::Server),
        other => panic!("c.txt: {other:?}"),
    }
}

/// Counts embedding calls in flight.
struct Gauge {
    inner: HashEmbedder,
    now: AtomicUsize,
    peak: AtomicUsize,
}

#[async_trait]
impl Embedder for Gauge {
    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }
    async fn embed(&self, texts: &[String]) -> agentkit_core::Result<Vec<Vec<f32>>> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        self.inner.embed(texts).await
    }
}

#[tokio::test]
async fn concurrency_and_batches_are_bounded_and_progress_is_reported() {
    let gauge = Arc::new(Gauge {
        inner: HashEmbedder::new(DIMS),
        now: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
    });
    let store = Arc::new(InMemoryVectorStore::new(DIMS));
    let ingestor = Ingestor::builder(gauge.clone(), store.clone())
        .chunking(ChunkingConfig::characters(60, 0))
        .batch_size(3)
        .concurrency(2)
        .build()
        .expect("ingestor");
    let (t, a) = ids();
    let docs: Vec<_> = (0..12)
        .map(|i| {
            let body: String = (0..10)
                .map(|s| format!("Sentence {s} of document {i} talks about topic {}. ", s * i))
                .collect();
            Document::text(format!("doc-{i}"), body)
        })
        .collect();
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = seen.clone();
    let report = ingestor
        .ingest_with_progress(&t, &a, docs, move |p| {
            sink.lock().expect("lock").push(p.clone())
        })
        .await;
    assert!(report.is_complete());
    assert_eq!(report.indexed.len(), 12);
    assert!(
        gauge.peak.load(Ordering::SeqCst) <= 2,
        "at most `concurrency` calls in flight"
    );
    assert!(
        gauge.peak.load(Ordering::SeqCst) >= 2,
        "and they did overlap"
    );
    assert!(
        gauge.inner.calls() >= report.chunks.div_ceil(3),
        "batches of at most 3"
    );
    let seen = seen.lock().expect("lock");
    let last = seen.last().expect("progress was reported");
    assert_eq!(last.documents_done, 12);
    assert_eq!(last.chunks_done, report.chunks);
    assert_eq!(last.chunks_total, report.chunks);
    assert!(
        seen.iter()
            .any(|p| p.eta.is_some() && p.chunks_done < p.chunks_total)
    );
    assert!(
        seen.windows(2)
            .all(|w| w[1].chunks_done >= w[0].chunks_done
                && w[1].documents_done >= w[0].documents_done),
        "progress only moves forward"
    );
    assert!(
        seen.iter()
            .any(|p| p.documents_done > 0 && p.chunks_done < p.chunks_total),
        "documents are counted as each one finishes, not all at the end"
    );
    assert!(last.to_string().contains("12/12 documents"), "{last}");
}

#[tokio::test]
async fn the_cache_embeds_each_text_once() {
    let inner = Arc::new(HashEmbedder::new(DIMS));
    let cached = Arc::new(CachedEmbedder::new(inner.clone(), 1000));
    let (_, ingestor) = setup(cached.clone());
    let (t, a) = ids();
    let doc = |id: &str| Document::text(id, "Same words in two documents. They share every chunk.");
    ingestor.ingest(&t, &a, vec![doc("one")]).await;
    let first = inner.texts();
    ingestor.ingest(&t, &a, vec![doc("two")]).await;
    assert_eq!(
        inner.texts(),
        first,
        "the second document's chunks came from the cache"
    );
    assert!(cached.hits() >= 1);
    let direct = cached
        .embed(&["Same words".to_string()])
        .await
        .expect("embed");
    assert_eq!(direct[0], inner.vector("Same words"));
}

#[tokio::test]
async fn bad_settings_are_refused_at_build() {
    let store = Arc::new(InMemoryVectorStore::new(DIMS));
    let err = Ingestor::builder(Arc::new(HashEmbedder::new(32)), store.clone())
        .build()
        .expect_err("dimensions differ");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let err = Ingestor::builder(Arc::new(HashEmbedder::new(DIMS)), store.clone())
        .chunking(ChunkingConfig::characters(100, 100))
        .build()
        .expect_err("overlap as big as the chunk");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    let err = Ingestor::builder(Arc::new(HashEmbedder::new(DIMS)), store)
        .batch_size(0)
        .build()
        .expect_err("zero batch");
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
}
