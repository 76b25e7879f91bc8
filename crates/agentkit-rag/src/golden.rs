//! Golden paths (the feedback loop of seed 004): an approved human decision is stored with its
//! trace, found again for similar requests, and shown to the model as an example.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{
    Embedder, Retriever, ScoredChunk, SearchRequest, SourceRef, VectorRecord, VectorStore,
};
use agentkit_core::store::{ApprovalDecision, ApprovalRequest, ApprovalStatus};
use agentkit_core::{Error, Result};

/// The metadata key telling knowledge chunks and golden paths apart in one vector store.
pub const KIND_KEY: &str = "kind";
/// [`KIND_KEY`]'s value on golden paths.
pub const GOLDEN_PATH: &str = "golden_path";
/// The document id golden paths are stored under (their citations name it).
pub const GOLDEN_DOCUMENT: &str = "golden-paths";

/// One approved outcome: what was asked, what the agent did, and how a human judged it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoldenPath {
    /// Unique id (the approval's id when made from one).
    pub id: String,
    /// The request that started it, in words: what similar future requests are matched on.
    pub request: String,
    /// The action the agent took (tool and arguments, as approved or as edited).
    pub action: String,
    /// `approved` or `edited`.
    pub outcome: String,
    /// Who decided.
    pub reviewer: String,
    /// The reviewer's comment.
    pub comment: Option<String>,
}

impl GoldenPath {
    /// The golden path of an approved (or approved-with-edits) decision; `None` for a rejected,
    /// expired or undecided one. `request` is what the agent was asked.
    pub fn from_approval(
        request: impl Into<String>,
        approval: &ApprovalRequest,
        decision: &ApprovalDecision,
    ) -> Option<Self> {
        if decision.status != ApprovalStatus::Approved || decision.automatic {
            return None;
        }
        let (arguments, outcome) = match &decision.edited_arguments {
            Some(edited) => (edited, "edited"),
            None => (&approval.call.arguments, "approved"),
        };
        Some(Self {
            id: approval.id.to_string(),
            request: request.into(),
            action: format!("{} {}", approval.call.name, arguments),
            outcome: outcome.to_string(),
            reviewer: decision.reviewer.clone(),
            comment: decision.comment.clone(),
        })
    }

    /// How the path is shown to the model.
    pub fn example(&self) -> String {
        let mut text = format!(
            "Approved example ({} by {}). Request: {}\nAction taken: {}",
            self.outcome, self.reviewer, self.request, self.action
        );
        if let Some(comment) = &self.comment {
            text.push_str("\nReviewer's note: ");
            text.push_str(comment);
        }
        text
    }
}

/// Stores and finds golden paths in a vector store, per tenant and agent, beside (and apart
/// from) the agent's documents: they carry `kind = golden_path`, and [`crate::KnowledgeRetriever`]
/// searches only `kind = document`.
#[derive(Clone)]
pub struct GoldenPaths {
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn VectorStore>,
}

impl std::fmt::Debug for GoldenPaths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoldenPaths").finish_non_exhaustive()
    }
}

impl GoldenPaths {
    /// Golden paths over an embedder and a store of the same dimension.
    pub fn new(embedder: Arc<dyn Embedder>, store: Arc<dyn VectorStore>) -> Result<Self> {
        if embedder.dimensions() != store.dimensions() {
            return Err(Error::InvalidConfig(format!(
                "the embedder makes {}-long vectors but the store holds {}-long ones",
                embedder.dimensions(),
                store.dimensions()
            )));
        }
        Ok(Self { embedder, store })
    }

    /// Stores a golden path (again with the same id: replaced).
    pub async fn record(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        path: &GoldenPath,
    ) -> Result<()> {
        let vector = self
            .embedder
            .embed(std::slice::from_ref(&path.request))
            .await?
            .pop()
            .ok_or_else(|| Error::MalformedResponse("the embedder returned no vector".into()))?;
        let record = VectorRecord {
            id: format!("golden:{}", path.id),
            vector,
            text: path.example(),
            source: SourceRef {
                document_id: GOLDEN_DOCUMENT.to_string(),
                title: Some("Approved examples".to_string()),
                ..SourceRef::default()
            },
            metadata: BTreeMap::from([
                (KIND_KEY.to_string(), GOLDEN_PATH.to_string()),
                ("path".to_string(), serde_json::to_string(path)?),
            ]),
        };
        self.store.upsert(tenant, agent, &[record]).await
    }

    /// The `k` golden paths closest to `request`, with their scores.
    pub async fn similar(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        request: &str,
        k: usize,
    ) -> Result<Vec<(GoldenPath, f32)>> {
        let hits = self.search(tenant, agent, request, k).await?;
        hits.into_iter()
            .map(|h| {
                let path = h.metadata.get("path").ok_or_else(|| {
                    Error::Internal(format!("golden path `{}` lost its record", h.id))
                })?;
                Ok((serde_json::from_str(path)?, h.score))
            })
            .collect()
    }

    async fn search(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        request: &str,
        k: usize,
    ) -> Result<Vec<ScoredChunk>> {
        let vector = self
            .embedder
            .embed(&[request.to_string()])
            .await?
            .pop()
            .ok_or_else(|| Error::MalformedResponse("the embedder returned no vector".into()))?;
        let mut query = SearchRequest::new(tenant.clone(), agent.clone(), vector, k);
        query
            .metadata
            .insert(KIND_KEY.to_string(), GOLDEN_PATH.to_string());
        self.store.search(&query).await
    }

    /// Removes a golden path; whether it existed.
    pub async fn forget(&self, tenant: &TenantId, agent: &AgentId, id: &str) -> Result<bool> {
        Ok(self
            .store
            .delete(tenant, agent, &[format!("golden:{id}")])
            .await?
            > 0)
    }
}

#[async_trait]
impl Retriever for GoldenPaths {
    /// The closest golden paths as chunks (their text is [`GoldenPath::example`]).
    async fn retrieve(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        query: &str,
        top_k: usize,
    ) -> Result<Vec<ScoredChunk>> {
        self.search(tenant, agent, query, top_k).await
    }
}
