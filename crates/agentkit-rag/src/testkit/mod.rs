//! Test helpers: the vector store conformance suite every backend runs, and a deterministic
//! offline embedder, and a model that answers from the retrieved context.

mod embedder;
mod model;
pub mod text;
pub mod vectors;

pub use embedder::HashEmbedder;
pub use model::{ExtractiveModel, NOTHING_FOUND};
