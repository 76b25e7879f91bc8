//! Test helpers: the vector store conformance suite every backend runs, and a deterministic
//! offline embedder.

mod embedder;
pub mod vectors;

pub use embedder::HashEmbedder;
