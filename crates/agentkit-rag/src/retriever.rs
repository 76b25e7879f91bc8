//! [`KnowledgeRetriever`]: what an agent retrieves with before each run.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{Embedder, Retriever, ScoredChunk, SearchRequest, VectorStore};
use agentkit_core::{Error, Result};

use crate::golden::{GoldenPaths, KIND_KEY};
use crate::pipeline::KIND_DOCUMENT;

/// Embeds the query, searches the agent's documents (tenant and agent are the store's
/// mandatory keys; `kind = document` and any filters of [`KnowledgeRetriever::filter`] are
/// applied inside the search), drops hits under the score threshold, and optionally adds the
/// closest approved examples ([`KnowledgeRetriever::with_golden_paths`]) after the documents.
///
/// Give it to an agent with `Agent::builder().retriever(Arc::new(retriever), top_k)`: the
/// chunks go to the model in a delimited block marked untrusted, each knowledge query is a
/// usage event, and the run report lists the sources and the citations the answer makes.
#[derive(Clone)]
pub struct KnowledgeRetriever {
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn VectorStore>,
    min_score: Option<f32>,
    filters: BTreeMap<String, String>,
    golden: Option<(GoldenPaths, usize)>,
}

impl std::fmt::Debug for KnowledgeRetriever {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnowledgeRetriever")
            .field("min_score", &self.min_score)
            .field("filters", &self.filters)
            .finish_non_exhaustive()
    }
}

impl KnowledgeRetriever {
    /// A retriever over an embedder and a store of the same dimension.
    pub fn new(embedder: Arc<dyn Embedder>, store: Arc<dyn VectorStore>) -> Result<Self> {
        if embedder.dimensions() != store.dimensions() {
            return Err(Error::InvalidConfig(format!(
                "the embedder makes {}-long vectors but the store holds {}-long ones",
                embedder.dimensions(),
                store.dimensions()
            )));
        }
        Ok(Self {
            embedder,
            store,
            min_score: None,
            filters: BTreeMap::new(),
            golden: None,
        })
    }

    /// Drops hits scoring below `score` (cosine, -1 to 1).
    pub fn min_score(mut self, score: f32) -> Self {
        self.min_score = Some(score);
        self
    }

    /// Searches only chunks whose metadata has `key = value` (documents' metadata is copied
    /// onto their chunks).
    pub fn filter(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.filters.insert(key.into(), value.into());
        self
    }

    /// Adds up to `k` golden paths similar to the query after the document chunks.
    pub fn with_golden_paths(mut self, paths: GoldenPaths, k: usize) -> Self {
        self.golden = Some((paths, k));
        self
    }
}

#[async_trait]
impl Retriever for KnowledgeRetriever {
    async fn retrieve(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        query: &str,
        top_k: usize,
    ) -> Result<Vec<ScoredChunk>> {
        let vector = self
            .embedder
            .embed(&[query.to_string()])
            .await?
            .pop()
            .ok_or_else(|| Error::MalformedResponse("the embedder returned no vector".into()))?;
        let mut request = SearchRequest::new(tenant.clone(), agent.clone(), vector, top_k);
        request.min_score = self.min_score;
        request.metadata = self.filters.clone();
        request
            .metadata
            .insert(KIND_KEY.to_string(), KIND_DOCUMENT.to_string());
        let mut chunks = self.store.search(&request).await?;
        if let Some((golden, k)) = &self.golden {
            let mut examples = golden.retrieve(tenant, agent, query, *k).await?;
            if let Some(min) = self.min_score {
                examples.retain(|c| c.score >= min);
            }
            chunks.extend(examples);
        }
        Ok(chunks)
    }
}
