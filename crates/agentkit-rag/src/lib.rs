//! Knowledge for agentkit agents.

pub mod cache;
pub mod chunk;
mod document;
pub mod golden;
pub mod loaders;
pub mod memory;
pub mod pipeline;
mod retriever;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use cache::CachedEmbedder;
pub use chunk::{Chunk, Chunker, ChunkingConfig};
pub use document::Document;
pub use loaders::{Format, LoadError, LoadLimits};
pub use pipeline::{IngestError, IngestReport, Ingestor, IngestorBuilder, Progress};
pub use golden::{GoldenPath, GoldenPaths};
pub use retriever::KnowledgeRetriever;
