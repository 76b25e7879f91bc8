//! [`KnowledgeRetriever`]: what an agent retrieves with before each run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use bm25::{Language, SearchEngineBuilder};

use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{
    Embedder, Retriever, ScoredChunk, SearchRequest, TextSearchRequest, VectorStore,
};
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
    hybrid: Option<f32>,
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
            hybrid: None,
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

    /// Hybrid scoring: keyword relevance (BM25) joins vector similarity, so exact words —
    /// product codes, names, error numbers — outrank chunks that are only about the same
    /// topic. `lexical_weight` (clamped to 0..=1) is BM25's share of each hit's score:
    /// `(1 - lexical_weight) × cosine + lexical_weight × bm25 / best bm25`.
    ///
    /// The vector search fetches a pool of `max(4 × top_k, 20)` candidates. When the store keeps
    /// a text index ([`VectorStore::search_text`]: in memory, SQLite FTS5, Postgres full-text),
    /// its best `pool` keyword hits join the pool, so a chunk the vector search missed is found
    /// by its words; such a chunk is scored with the pool's lowest cosine (it was not among the
    /// nearest, so it is no nearer), and a vector hit holding no query word gets no keyword
    /// share. Without a text index, BM25 (the `bm25` crate: English stemming and stop words,
    /// fitted on the pool) re-ranks the vector pool only. The best `top_k` are kept, ties by id.
    ///
    /// The best keyword hit always gets the whole keyword share, however ordinary the word it
    /// matched: in a small corpus a question's incidental words ("take", "long") can then
    /// outweigh meaning. Keep the weight low (0.2–0.4) and check it on real questions; it pays
    /// most for queries carrying codes, names and numbers.
    pub fn hybrid(mut self, lexical_weight: f32) -> Self {
        self.hybrid = Some(lexical_weight.clamp(0.0, 1.0));
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
        let pool = match self.hybrid {
            Some(_) => top_k.saturating_mul(4).max(20),
            None => top_k,
        };
        let mut request = SearchRequest::new(tenant.clone(), agent.clone(), vector, pool);
        request.min_score = self.min_score;
        request.metadata = self.filters.clone();
        request
            .metadata
            .insert(KIND_KEY.to_string(), KIND_DOCUMENT.to_string());
        let mut chunks = self.store.search(&request).await?;
        if let Some(weight) = self.hybrid {
            let mut text = TextSearchRequest::new(tenant.clone(), agent.clone(), query, pool);
            text.metadata = request.metadata;
            chunks = match self.store.search_text(&text).await? {
                Some(lexical) => fuse(chunks, lexical, weight, top_k),
                None => rerank(chunks, query, weight, top_k),
            };
        }
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

/// Joins vector hits and keyword hits: `(1 - weight) × cosine + weight × bm25 / best bm25`,
/// a keyword-only hit scored with the vector pool's lowest cosine; the best `top_k`.
fn fuse(
    vector: Vec<ScoredChunk>,
    lexical: Vec<ScoredChunk>,
    weight: f32,
    top_k: usize,
) -> Vec<ScoredChunk> {
    let floor = vector.iter().map(|c| c.score).fold(f32::INFINITY, f32::min);
    let floor = if floor.is_finite() { floor } else { 0.0 };
    let best = lexical.iter().map(|c| c.score).fold(0.0f32, f32::max);
    let mut keyword: HashMap<String, f32> = lexical
        .iter()
        .map(|c| (c.id.clone(), if best > 0.0 { c.score / best } else { 0.0 }))
        .collect();
    let mut scored: Vec<ScoredChunk> = Vec::with_capacity(vector.len() + lexical.len());
    for mut c in vector {
        let l = keyword.remove(&c.id).unwrap_or(0.0);
        c.score = (1.0 - weight) * c.score + weight * l;
        scored.push(c);
    }
    for mut c in lexical {
        // Still in the map: found by its words only.
        if let Some(l) = keyword.remove(&c.id) {
            c.score = (1.0 - weight) * floor + weight * l;
            scored.push(c);
        }
    }
    scored.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    scored.truncate(top_k);
    scored
}

/// Re-scores vector hits with BM25 over their texts and keeps the best `top_k`.
fn rerank(chunks: Vec<ScoredChunk>, query: &str, weight: f32, top_k: usize) -> Vec<ScoredChunk> {
    if chunks.is_empty() {
        return chunks;
    }
    let engine = SearchEngineBuilder::<u32>::with_corpus(
        Language::English,
        chunks.iter().map(|c| c.text.clone()),
    )
    .build();
    let mut lexical = vec![0.0f32; chunks.len()];
    for hit in engine.search(query, chunks.len()) {
        if let Some(slot) = lexical.get_mut(hit.document.id as usize) {
            *slot = hit.score;
        }
    }
    let max = lexical.iter().copied().fold(0.0f32, f32::max);
    let mut scored: Vec<ScoredChunk> = chunks
        .into_iter()
        .zip(lexical)
        .map(|(mut c, l)| {
            let l = if max > 0.0 { l / max } else { 0.0 };
            c.score = (1.0 - weight) * c.score + weight * l;
            c
        })
        .collect();
    scored.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    scored.truncate(top_k);
    scored
}
