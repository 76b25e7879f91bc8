//! Knowledge for agentkit agents: documents in, cited answers out, one tenant at a time.
//!
//! - [`loaders`]: plain text, Markdown (headings kept as section paths), HTML, PDF (page
//!   numbers kept), JSON and CSV rows; a typed [`LoadError`] per document.
//! - [`chunk`]: chunks of a bounded size (`text-splitter`; 800 estimated tokens with 15 %
//!   overlap by default, or characters, or any [`chunk::TokenCounter`]) with byte offsets, page,
//!   section path and content hash.
//! - [`Ingestor`]: load → chunk → embed in batches with bounded concurrency and retries →
//!   replace the document's vectors atomically; incremental by content hash, resumable,
//!   progress through a callback and `tracing`.
//! - Vector stores, each passing one conformance suite (`testkit::vectors`, feature
//!   `testkit`): [`memory::InMemoryVectorStore`] (exact; HNSW for large collections; BM25
//!   keyword search), `qdrant::QdrantStore` (feature `qdrant`), SQLite (FTS5) and Postgres
//!   (full text) in their store crates.
//! - `local::LocalEmbedder` (feature `local`): all-MiniLM-L6-v2 on the CPU, no network.
//! - [`KnowledgeRetriever`]: what an agent retrieves with (tenant and agent always applied,
//!   filters, score threshold, hybrid keyword + vector scoring, golden paths); the turn puts the
//!   chunks in a delimited block marked untrusted, meters each query, and reports sources and
//!   citations.
//! - [`GoldenPaths`]: approved human decisions kept as examples for similar requests.
//! - [`CachedEmbedder`]: embeddings cached by content hash.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> agentkit_core::Result<()> {
//! use std::sync::Arc;
//! use agentkit_core::id::{AgentId, TenantId};
//! use agentkit_core::retrieval::Retriever;
//! use agentkit_rag::memory::InMemoryVectorStore;
//! use agentkit_rag::testkit::HashEmbedder;
//! use agentkit_rag::{Document, Ingestor, KnowledgeRetriever};
//!
//! let embedder = Arc::new(HashEmbedder::new(128)); // OpenAI, Ollama or a local model in production
//! let store = Arc::new(InMemoryVectorStore::new(128));
//! let (tenant, agent) = (TenantId::new("acme")?, AgentId::new("support")?);
//! Ingestor::builder(embedder.clone(), store.clone())
//!     .build()?
//!     .ingest(&tenant, &agent, vec![Document::text("faq.txt", "Refunds take five days.")])
//!     .await;
//! let knowledge = KnowledgeRetriever::new(embedder, store)?.min_score(0.2);
//! let hits = knowledge.retrieve(&tenant, &agent, "how long do refunds take", 3).await?;
//! assert_eq!(hits[0].source.document_id, "faq.txt");
//! // Agent::builder().retriever(Arc::new(knowledge), 3) puts them before the conversation.
//! # Ok(())
//! # }
//! ```

pub mod cache;
pub mod chunk;
mod document;
pub mod golden;
pub mod loaders;
#[cfg(feature = "local")]
pub mod local;
pub mod memory;
pub mod pipeline;
#[cfg(feature = "qdrant")]
pub mod qdrant;
mod retriever;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use cache::CachedEmbedder;
pub use chunk::{Chunk, Chunker, ChunkingConfig};
pub use document::Document;
pub use golden::{GoldenPath, GoldenPaths};
pub use loaders::{Format, LoadError, LoadLimits};
pub use pipeline::{IngestError, IngestReport, Ingestor, IngestorBuilder, Progress};
pub use retriever::KnowledgeRetriever;
