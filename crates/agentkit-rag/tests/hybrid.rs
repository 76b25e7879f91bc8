//! Hybrid scoring: BM25 re-ranks the vector search's pool so a chunk holding the query's rare
//! exact word (an error code) outranks chunks that only share its common words.

use std::sync::Arc;

use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::Retriever;
use agentkit_rag::memory::InMemoryVectorStore;
use agentkit_rag::testkit::HashEmbedder;
use agentkit_rag::{ChunkingConfig, Document, Ingestor, KnowledgeRetriever};

const DIMS: usize = 256;
const QUERY: &str = "printer error code E4471";

/// `general` documents sharing the query's common words and one holding its rare code,
/// indexed for one tenant and agent.
async fn knowledge(general: usize) -> (KnowledgeRetriever, TenantId, AgentId) {
    let embedder = Arc::new(HashEmbedder::new(DIMS));
    let store = Arc::new(InMemoryVectorStore::new(DIMS));
    let (t, a) = (
        TenantId::from_static("acme"),
        AgentId::from_static("support"),
    );
    let mut docs: Vec<Document> = (0..general)
        .map(|i| {
            Document::text(
                format!("general-{i:02}"),
                format!(
                    "Printer error code help. The printer shows an error code when the printer \
                     needs care, note {i}."
                ),
            )
        })
        .collect();
    docs.push(Document::text(
        "toner.txt",
        "E4471 means the toner cartridge is empty: open the front cover and replace the cartridge.",
    ));
    let report = Ingestor::builder(embedder.clone(), store.clone())
        .chunking(ChunkingConfig::characters(400, 0))
        .build()
        .expect("ingestor")
        .ingest(&t, &a, docs)
        .await;
    assert!(report.is_complete());
    let retriever = KnowledgeRetriever::new(embedder, store).expect("retriever");
    (retriever, t, a)
}

#[tokio::test]
async fn a_rare_exact_word_outranks_shared_common_words() {
    let (vector_only, t, a) = knowledge(6).await;
    let query = QUERY;
    let plain = vector_only
        .retrieve(&t, &a, query, 3)
        .await
        .expect("retrieve");
    assert_ne!(
        plain[0].source.document_id, "toner.txt",
        "without the lexical pass the common words win: {plain:?}"
    );

    let hybrid = vector_only.clone().hybrid(0.6);
    let hits = hybrid.retrieve(&t, &a, query, 3).await.expect("retrieve");
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0].source.document_id, "toner.txt", "{hits:?}");
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "best first"
    );

    // Weight 0 is the vector order.
    let zero = vector_only
        .hybrid(0.0)
        .retrieve(&t, &a, query, 3)
        .await
        .expect("retrieve");
    let ids = |h: &[agentkit_core::retrieval::ScoredChunk]| {
        h.iter().map(|c| c.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&zero), ids(&plain));
}

/// A store with a text index: the chunk holding the rare word is found even when the vector
/// search's whole pool is taken by chunks that share the common words.
#[tokio::test]
async fn the_text_index_finds_what_the_vector_pool_missed() {
    let (retriever, t, a) = knowledge(60).await;
    let query = QUERY;

    // The vector pool of a hybrid query for 3 (20 candidates) holds no toner chunk.
    let pool = retriever
        .retrieve(&t, &a, query, 20)
        .await
        .expect("retrieve");
    assert_eq!(pool.len(), 20);
    assert!(
        pool.iter().all(|c| c.source.document_id != "toner.txt"),
        "the vector search alone misses it: {pool:?}"
    );

    let hits = retriever
        .clone()
        .hybrid(0.5)
        .retrieve(&t, &a, query, 3)
        .await
        .expect("retrieve");
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0].source.document_id, "toner.txt", "{hits:?}");
    assert!(
        hits.windows(2).all(|w| w[0].score >= w[1].score),
        "best first"
    );

    // Another tenant's copy of the code is never a keyword hit.
    let other = TenantId::from_static("globex");
    let theirs = retriever
        .hybrid(0.5)
        .retrieve(&other, &a, query, 3)
        .await
        .expect("retrieve");
    assert!(theirs.is_empty(), "{theirs:?}");
}
