//! Seed 001's knowledge base, shared by the example and its end-to-end test: a tenant uploads
//! documents, they are indexed with progress, and a support agent answers from them with
//! citations, while another tenant's agent finds none of them.

use std::sync::Arc;

use agentkit::agent::Agent;
use agentkit::rag::testkit::{ExtractiveModel, HashEmbedder};
use agentkit::rag::{ChunkingConfig, Document, Format, Ingestor, KnowledgeRetriever};
use agentkit::retrieval::{Embedder, VectorStore};
use agentkit::store::StateStore;

/// The embedding length of the offline embedder.
pub const DIMENSIONS: usize = 256;

/// The documents tenant A uploads: Markdown, HTML and CSV.
pub fn documents() -> Vec<Document> {
    vec![
        Document::markdown(
            "refund-policy.md",
            "# Refund policy\n\nWe want every customer to be happy with their order.\n\n\
             ## Timing\n\nRefunds are paid within five business days of the return reaching \
             our warehouse. Card refunds can take two more days to show.\n\n\
             ## Exceptions\n\nGift cards and opened software cannot be refunded.\n",
        )
        .with_title("Refund policy"),
        Document::new(
            "shipping.html",
            Format::Html,
            "<html><head><style>p{}</style></head><body><h1>Shipping</h1>\
             <p>Standard shipping takes three to five days.</p>\
             <h2>Costs</h2><p>Shipping is free for orders above fifty euros.</p>\
             <script>track()</script></body></html>",
        )
        .with_title("Shipping"),
        Document::new(
            "prices.csv",
            Format::Csv,
            "plan,price,seats\nStarter,9 EUR,1\nTeam,49 EUR,10\nEnterprise,custom,unlimited\n",
        )
        .with_title("Price list"),
    ]
}

/// The offline embedder (a deterministic bag of words; a deployment uses OpenAI, Ollama or
/// the local model instead).
pub fn embedder() -> Arc<dyn Embedder> {
    Arc::new(HashEmbedder::new(DIMENSIONS))
}

/// An ingestor over a vector store.
pub fn ingestor(vectors: Arc<dyn VectorStore>) -> agentkit::Result<Ingestor> {
    Ingestor::builder(embedder(), vectors)
        .chunking(ChunkingConfig::characters(200, 30))
        .build()
}

/// The support agent: answers from its knowledge (top 3 chunks over a score threshold).
pub fn agent(state: Arc<dyn StateStore>, vectors: Arc<dyn VectorStore>) -> agentkit::Result<Agent> {
    let knowledge = KnowledgeRetriever::new(embedder(), vectors)?.min_score(0.1);
    Agent::builder()
        .id("support")
        .system_prompt("Answer from the knowledge base and cite your sources as [n].")
        .model(Arc::new(ExtractiveModel), "extractive-1")
        .store(state)
        .retriever(Arc::new(knowledge), 3)
        .build()
}
