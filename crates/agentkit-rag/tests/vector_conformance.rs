//! The vector store conformance suite against the in-memory store, exact and with its HNSW
//! index forced on from the first record.

use std::sync::Arc;

use agentkit_core::retrieval::VectorStore;
use agentkit_rag::memory::{AnnConfig, InMemoryVectorStore};
use agentkit_rag::testkit::vectors::{DIMENSIONS, run_all};

#[tokio::test]
async fn exact_in_memory_store_conforms() {
    run_all(|| async { Arc::new(InMemoryVectorStore::new(DIMENSIONS)) as Arc<dyn VectorStore> })
        .await;
}

#[tokio::test]
async fn hnsw_in_memory_store_conforms() {
    // Index from the first record, graph walk even for filters matching one record: the suite
    // then checks the ANN path (with its exact fallback) rather than the scan.
    let config = AnnConfig::default().threshold(1).exact_below(0);
    run_all(|| async move {
        Arc::new(InMemoryVectorStore::new(DIMENSIONS).with_ann(config)) as Arc<dyn VectorStore>
    })
    .await;
}
