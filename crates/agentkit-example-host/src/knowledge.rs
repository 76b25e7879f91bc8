//! Knowledge (feature `knowledge`): documents uploaded per tenant and agent, embedded on the
//! CPU (all-MiniLM-L6-v2 from `AGENTKIT_MINILM_DIR`) into the host's database (SQLite or
//! Postgres), retrieved by the agent before each answer and reported as the answer's sources.

use std::sync::Arc;

use agentkit::Result;
use agentkit::id::{AgentId, TenantId};
use agentkit::rag::local::LocalEmbedder;
use agentkit::rag::{Document, IngestReport, Ingestor, KnowledgeRetriever};
use agentkit::retrieval::{Embedder, Retriever, VectorStore};

use crate::backend::Backend;

/// How many chunks the agent reads before answering.
pub const TOP_K: usize = 3;

/// The embedder and the vectors.
#[derive(Clone)]
pub struct Knowledge {
    embedder: Arc<dyn Embedder>,
    vectors: Arc<dyn VectorStore>,
}

impl std::fmt::Debug for Knowledge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Knowledge")
            .field("dimensions", &self.embedder.dimensions())
            .finish()
    }
}

impl Knowledge {
    /// The local embedder from `AGENTKIT_MINILM_DIR`, vectors beside the host's tables; `None`
    /// (with the reason logged) when the model is not there.
    pub(crate) async fn open(backend: &Backend) -> Result<Option<Self>> {
        match LocalEmbedder::from_env() {
            Ok(embedder) => {
                let vectors = backend.vectors(embedder.dimensions()).await?;
                Ok(Some(Self {
                    embedder: Arc::new(embedder),
                    vectors,
                }))
            }
            Err(e) => {
                tracing::warn!(error = %e, "knowledge is off: no local embedding model");
                Ok(None)
            }
        }
    }

    /// What an agent retrieves with (tenant and agent always applied).
    pub fn retriever(&self) -> Result<Arc<dyn Retriever>> {
        Ok(Arc::new(
            KnowledgeRetriever::new(self.embedder.clone(), self.vectors.clone())?.min_score(0.3),
        ))
    }

    /// Loads, chunks, embeds and stores `documents` for `tenant`'s `agent` (a changed document
    /// replaces its old chunks; an unchanged one is skipped).
    pub async fn ingest(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        documents: Vec<Document>,
    ) -> Result<IngestReport> {
        let ingestor = Ingestor::builder(self.embedder.clone(), self.vectors.clone()).build()?;
        Ok(ingestor.ingest(tenant, agent, documents).await)
    }
}
