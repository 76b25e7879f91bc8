//! [`InMemoryVectorStore`]: the core [`VectorStore`] contract in memory, exact by default,
//! with an HNSW index for large collections ([`InMemoryVectorStore::with_ann`]).

mod ann;
mod collection;
mod lexical;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;

use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{
    DocumentEntry, ScoredChunk, SearchRequest, TextSearchRequest, VectorRecord, VectorStore,
    check_records, check_vector,
};
use agentkit_core::{Error, Result};

pub use ann::AnnConfig;
use collection::{Collection, Query, normalised};

type Key = (TenantId, AgentId);

/// Vectors in memory, one collection per tenant and agent.
///
/// Searches are exact (a scan of one contiguous slab of normalised vectors, eight lanes at a
/// time) until a collection reaches [`AnnConfig::threshold`] records with
/// [`InMemoryVectorStore::with_ann`]; then an HNSW graph answers, with metadata filters applied
/// inside the graph walk and an exact fallback whenever it finds fewer hits than match, so a
/// filtered query still returns `top_k`. A filter matching few records scans just those (each
/// metadata pair has a posting list). Every record's words are indexed too:
/// [`VectorStore::search_text`] ranks them with BM25 (English stemming and stop words), for
/// hybrid retrieval.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> agentkit_core::Result<()> {
/// use agentkit_core::id::{AgentId, TenantId};
/// use agentkit_core::retrieval::{SearchRequest, SourceRef, VectorRecord, VectorStore};
/// use agentkit_rag::memory::InMemoryVectorStore;
///
/// let store = InMemoryVectorStore::new(2);
/// let (tenant, agent) = (TenantId::new("acme")?, AgentId::new("support")?);
/// let record = VectorRecord {
///     id: "faq#0".into(),
///     vector: vec![1.0, 0.0],
///     text: "Refunds take 5 days.".into(),
///     source: SourceRef { document_id: "faq".into(), ..SourceRef::default() },
///     metadata: Default::default(),
/// };
/// store.upsert(&tenant, &agent, &[record]).await?;
/// let hits = store.search(&SearchRequest::new(tenant, agent, vec![0.9, 0.1], 3)).await?;
/// assert_eq!(hits[0].id, "faq#0");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct InMemoryVectorStore {
    dims: usize,
    ann: Option<AnnConfig>,
    collections: RwLock<HashMap<Key, Arc<RwLock<Collection>>>>,
}

impl InMemoryVectorStore {
    /// An exact store of `dimensions`-long vectors.
    pub fn new(dimensions: usize) -> Self {
        Self {
            dims: dimensions,
            ann: None,
            collections: RwLock::new(HashMap::new()),
        }
    }

    /// Adds an HNSW index to every collection that reaches `config.threshold` records.
    pub fn with_ann(mut self, config: AnnConfig) -> Self {
        self.ann = Some(config);
        self
    }

    /// Changes [`AnnConfig::ef_search`] for the searches from now on (the graphs stay as
    /// built): more candidates find more of the true nearest neighbours and cost more time.
    /// Nothing changes for a store without an index.
    pub fn set_ef_search(&mut self, ef: usize) {
        if let Some(config) = &mut self.ann {
            config.ef_search = ef;
        }
    }

    fn existing(&self, tenant: &TenantId, agent: &AgentId) -> Option<Arc<RwLock<Collection>>> {
        let map = self
            .collections
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(&(tenant.clone(), agent.clone())).cloned()
    }

    fn collection(&self, tenant: &TenantId, agent: &AgentId) -> Arc<RwLock<Collection>> {
        if let Some(c) = self.existing(tenant, agent) {
            return c;
        }
        let mut map = self
            .collections
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.entry((tenant.clone(), agent.clone()))
            .or_insert_with(|| Arc::new(RwLock::new(Collection::new(self.dims))))
            .clone()
    }

    /// How many records a tenant and agent have.
    pub fn len(&self, tenant: &TenantId, agent: &AgentId) -> usize {
        self.existing(tenant, agent).map_or(0, |c| {
            c.read().unwrap_or_else(PoisonError::into_inner).len()
        })
    }

    /// Whether a tenant and agent have no records.
    pub fn is_empty(&self, tenant: &TenantId, agent: &AgentId) -> bool {
        self.len(tenant, agent) == 0
    }
}

fn write(c: &RwLock<Collection>) -> std::sync::RwLockWriteGuard<'_, Collection> {
    c.write().unwrap_or_else(PoisonError::into_inner)
}

fn read(c: &RwLock<Collection>) -> std::sync::RwLockReadGuard<'_, Collection> {
    c.read().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl VectorStore for InMemoryVectorStore {
    fn dimensions(&self) -> usize {
        self.dims
    }

    async fn upsert(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        records: &[VectorRecord],
    ) -> Result<()> {
        check_records(self.dims, None, records)?;
        if records.is_empty() {
            return Ok(());
        }
        let c = self.collection(tenant, agent);
        write(&c).upsert(records, self.ann.as_ref());
        Ok(())
    }

    async fn search(&self, request: &SearchRequest) -> Result<Vec<ScoredChunk>> {
        check_vector(self.dims, &request.vector)?;
        let Some(c) = self.existing(&request.tenant, &request.agent) else {
            return Ok(Vec::new());
        };
        let vector = normalised(&request.vector);
        let query = Query {
            vector: &vector,
            top_k: request.top_k,
            filters: &request.metadata,
            min_score: request.min_score,
        };
        Ok(read(&c).search(&query, self.ann.as_ref()))
    }

    async fn search_text(&self, request: &TextSearchRequest) -> Result<Option<Vec<ScoredChunk>>> {
        let Some(c) = self.existing(&request.tenant, &request.agent) else {
            return Ok(Some(Vec::new()));
        };
        Ok(Some(read(&c).search_text(
            &request.query,
            request.top_k,
            &request.metadata,
        )))
    }

    async fn delete(&self, tenant: &TenantId, agent: &AgentId, ids: &[String]) -> Result<usize> {
        let Some(c) = self.existing(tenant, agent) else {
            return Ok(0);
        };
        let mut c = write(&c);
        let n = ids.iter().filter(|id| c.remove(id)).count();
        c.maintain(self.ann.as_ref());
        Ok(n)
    }

    async fn replace_document(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        document: &DocumentEntry,
        records: &[VectorRecord],
    ) -> Result<()> {
        if document.id.is_empty() {
            return Err(Error::InvalidInput("a document needs an id".into()));
        }
        check_records(self.dims, Some(&document.id), records)?;
        let c = self.collection(tenant, agent);
        let mut c = write(&c);
        c.remove_document_records(&document.id);
        c.upsert(records, self.ann.as_ref());
        c.documents.insert(document.id.clone(), document.clone());
        Ok(())
    }

    async fn document(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        id: &str,
    ) -> Result<Option<DocumentEntry>> {
        Ok(self
            .existing(tenant, agent)
            .and_then(|c| read(&c).documents.get(id).cloned()))
    }

    async fn documents(&self, tenant: &TenantId, agent: &AgentId) -> Result<Vec<DocumentEntry>> {
        Ok(self
            .existing(tenant, agent)
            .map_or_else(Vec::new, |c| read(&c).documents.values().cloned().collect()))
    }

    async fn delete_document(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        id: &str,
    ) -> Result<Option<DocumentEntry>> {
        let Some(c) = self.existing(tenant, agent) else {
            return Ok(None);
        };
        let mut c = write(&c);
        let entry = c.documents.remove(id);
        let removed = c.remove_document_records(id);
        c.maintain(self.ann.as_ref());
        Ok(if entry.is_none() && removed == 0 {
            None
        } else {
            entry
        })
    }
}
