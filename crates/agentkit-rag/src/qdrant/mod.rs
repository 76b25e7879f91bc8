//! [`QdrantStore`]: the core [`VectorStore`] contract on a [Qdrant](https://qdrant.tech) server,
//! over gRPC with `qdrant-client` (feature `qdrant`).
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> agentkit_core::Result<()> {
//! use agentkit_core::id::{AgentId, TenantId};
//! use agentkit_core::retrieval::{SearchRequest, VectorStore};
//! use agentkit_rag::qdrant::QdrantStore;
//!
//! // Creates the collection (cosine, 384 dimensions) and its payload indexes when missing.
//! let store = QdrantStore::connect("http://localhost:6334", "knowledge", 384).await?;
//! let (tenant, agent) = (TenantId::new("acme")?, AgentId::new("support")?);
//! let hits = store.search(&SearchRequest::new(tenant, agent, vec![0.1; 384], 5)).await?;
//! # let _ = hits;
//! # Ok(())
//! # }
//! ```
//!
//! With an API key, TLS or timeouts, build the client yourself and use
//! [`QdrantStore::from_client`]:
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use agentkit_rag::qdrant::{Qdrant, QdrantStore};
//!
//! let client = Qdrant::from_url("https://my-cluster.example:6334")
//!     .api_key(std::env::var("QDRANT_API_KEY"))
//!     .timeout(std::time::Duration::from_secs(10))
//!     .skip_compatibility_check()
//!     .build()?;
//! let store = QdrantStore::from_client(client, "knowledge", 1536).await?;
//! # let _ = store;
//! # Ok(())
//! # }
//! ```

mod codec;
mod error;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{
    DocumentEntry, ScoredChunk, SearchRequest, VectorRecord, VectorStore, check_records,
    check_vector,
};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use qdrant_client::qdrant::payload_index_params::IndexParams;
use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use qdrant_client::qdrant::vectors_config::Config;
use qdrant_client::qdrant::{
    CountPoints, CreateCollection, CreateFieldIndexCollection, DeletePoints, Distance, FieldType,
    Filter, KeywordIndexParams, PayloadIndexParams, PointId, PointStruct, PointsSelector, Query,
    QueryPoints, ScrollPoints, SearchParams, UpsertPoints, VectorParams, VectorsConfig,
    WriteOrdering, WriteOrderingType,
};
use tokio::sync::{Mutex, MutexGuard};

use codec::{CHUNK, DOCUMENT, State};
pub use qdrant_client::Qdrant;

/// Points written per upsert request.
const BATCH: usize = 256;
/// Points read per scroll request.
const PAGE: u32 = 256;
/// Extra hits asked for beyond `top_k`, so that ties at the cut can be ordered by id.
const TIE_MARGIN: usize = 8;
/// Per-document locks (striped) serializing replacements and deletions in this process.
const LOCKS: usize = 64;

/// The core [`VectorStore`] contract on Qdrant: one collection (cosine distance, one unnamed
/// vector of [`VectorStore::dimensions`]) shared by every tenant and agent. Cheap to clone.
///
/// **Isolation.** Every point carries `tenant` and `agent` keyword payload fields, and every
/// search, scroll, count and delete this store sends has a `must` condition on both (and on the
/// point's `kind`). The collection gets a keyword payload index on `tenant` with `is_tenant:
/// true` (Qdrant co-locates each tenant's points and plans searches per tenant), and keyword
/// indexes on `agent`, `kind`, `id`, `document_id`, `generation` and `metadata_pairs`. A
/// point's Qdrant id is a name-based UUID (SHA-256) of its kind, tenant, agent and id (the id
/// itself is in the payload), so the same chunk or document id in two tenants or agents is two
/// independent points.
///
/// **Searches** are Qdrant's (HNSW with payload-aware filtering, or a full scan for small or
/// narrowly filtered segments; [`QdrantStore::exact`] forces the scan). Metadata filters are
/// conditions inside the query, so a filtered search returns `top_k` hits whenever that many
/// records match. Scores are Qdrant's cosine similarity. Hits are re-sorted best first with
/// ties by id (Qdrant orders ties its own way): the store asks for a few more than `top_k` and,
/// while the last one returned ties with the `top_k`-th, asks again for twice as many.
///
/// **Keyword search** is not offered ([`VectorStore::search_text`] answers `None`: Qdrant's
/// full-text payload index filters but does not rank by BM25), so hybrid retrieval re-ranks the
/// vector pool with BM25 instead.
///
/// **Writes.** A batch is checked whole ([`check_records`]) before any request, so a bad
/// record writes nothing. Qdrant has no transactions across requests; each request is sent with
/// `wait` and strong write ordering, and [`VectorStore::replace_document`] orders its requests
/// so that an interruption (crash, lost connection) never leaves an entry whose `content_hash`
/// claims chunks that are not there:
///
/// 1. the entry is written as `pending` (reported with an empty `content_hash`, which no
///    ingestion matches);
/// 2. the new chunks are written, marked with a generation unique to this call;
/// 3. the document's chunks of any other generation are deleted;
/// 4. the entry is written as `ready`, with its `content_hash`.
///
/// [`VectorStore::delete_document`] marks the entry pending, deletes the chunks, then deletes
/// the entry. **What is not atomic:** between steps, searches can see the new chunks next to the
/// old ones (after 2), or the document without chunks (a deletion after its second step); if
/// the process stops or the server fails between steps, that state stays until the document is
/// ingested or deleted again. Such an entry is reported by [`VectorStore::document`] and
/// [`VectorStore::documents`] with an empty `content_hash`, so the [`Ingestor`] re-indexes the
/// document on its next run (which repairs it), and a caller can find it and delete it. Plain
/// [`VectorStore::upsert`]s above 256 records (one request's batch) are sent in several
/// requests and can be interrupted half-way (they can be repeated safely). [`VectorStore::delete`] counts the
/// matching records, then deletes them: a concurrent write between the two can skew the count.
///
/// **Concurrency.** Replacements and deletions of one document are serialized by a lock in this
/// process (shared by clones of the store). Two processes replacing *the same document* at the
/// same time can leave it with a mix of, or none of, their chunks under a `ready` entry: run one
/// ingestion per tenant and agent (or per document) at a time.
///
/// [`Ingestor`]: crate::Ingestor
#[derive(Clone)]
pub struct QdrantStore {
    client: Qdrant,
    collection: String,
    dims: usize,
    exact: bool,
    locks: Arc<[Mutex<()>]>,
}

impl fmt::Debug for QdrantStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QdrantStore")
            .field("url", &self.client.config.uri)
            .field("collection", &self.collection)
            .field("dimensions", &self.dims)
            .field("exact", &self.exact)
            .finish_non_exhaustive()
    }
}

fn op_error(op: &str) -> impl Fn(qdrant_client::QdrantError) -> Error + '_ {
    move |e| error::qdrant_error(op, e)
}

impl QdrantStore {
    /// Connects to the Qdrant server at `url` (its gRPC port, 6334 by default) and uses
    /// `collection`, creating it (cosine distance, `dimensions`-long vectors) and its payload
    /// indexes when missing.
    ///
    /// An existing collection must have one unnamed cosine vector of `dimensions`
    /// ([`Error::DimensionMismatch`] or [`Error::InvalidConfig`] otherwise); missing payload
    /// indexes are added. The server's version is not checked; unreachable servers give
    /// [`Error::Unavailable`].
    pub async fn connect(url: &str, collection: &str, dimensions: usize) -> Result<Self> {
        let client = Qdrant::from_url(url)
            .skip_compatibility_check()
            .build()
            .map_err(op_error("connect"))?;
        Self::from_client(client, collection, dimensions).await
    }

    /// Uses `collection` through a client built by the caller (API key, TLS, timeouts), creating
    /// the collection and its payload indexes when missing, like [`QdrantStore::connect`].
    pub async fn from_client(client: Qdrant, collection: &str, dimensions: usize) -> Result<Self> {
        if dimensions == 0 {
            return Err(Error::InvalidConfig(
                "a vector store needs at least one dimension".into(),
            ));
        }
        if collection.is_empty() {
            return Err(Error::InvalidConfig(
                "a Qdrant collection needs a name".into(),
            ));
        }
        let store = Self {
            client,
            collection: collection.to_string(),
            dims: dimensions,
            exact: false,
            locks: (0..LOCKS).map(|_| Mutex::new(())).collect(),
        };
        store.ensure_collection().await?;
        Ok(store)
    }

    /// Searches with Qdrant's exact scan instead of its HNSW index (slower on large
    /// collections; results equal to a brute-force cosine ranking).
    pub fn exact(mut self, exact: bool) -> Self {
        self.exact = exact;
        self
    }

    /// The Qdrant client.
    pub fn client(&self) -> &Qdrant {
        &self.client
    }

    /// The collection's name.
    pub fn collection(&self) -> &str {
        &self.collection
    }

    async fn ensure_collection(&self) -> Result<()> {
        const OP: &str = "create_collection";
        let name = self.collection.clone();
        let exists = self
            .client
            .collection_exists(name.clone())
            .await
            .map_err(op_error(OP))?;
        if !exists {
            let create = CreateCollection {
                collection_name: name.clone(),
                vectors_config: Some(VectorsConfig {
                    config: Some(Config::Params(VectorParams {
                        size: self.dims as u64,
                        distance: Distance::Cosine as i32,
                        ..VectorParams::default()
                    })),
                }),
                ..CreateCollection::default()
            };
            match self.client.create_collection(create).await {
                Ok(_) => {
                    tracing::info!(collection = %name, dimensions = self.dims, "qdrant collection created")
                }
                Err(e) => {
                    let err = error::qdrant_error(OP, e);
                    // Created by someone else meanwhile (Qdrant reports it as a bad request):
                    // checked below like any existing collection.
                    let now = self.client.collection_exists(name.clone()).await;
                    if !matches!(now, Ok(true)) {
                        return Err(err);
                    }
                }
            }
        }
        let info = self
            .client
            .collection_info(name.clone())
            .await
            .map_err(op_error("collection_info"))?
            .result
            .ok_or_else(|| Error::MalformedResponse("qdrant: no collection info".into()))?;
        let vectors = info
            .config
            .as_ref()
            .and_then(|c| c.params.as_ref())
            .and_then(|p| p.vectors_config.as_ref())
            .and_then(|v| v.config.as_ref());
        match vectors {
            Some(Config::Params(p)) => {
                if p.size != self.dims as u64 {
                    return Err(Error::DimensionMismatch {
                        expected: self.dims,
                        got: usize::try_from(p.size).unwrap_or(usize::MAX),
                    });
                }
                if p.distance != Distance::Cosine as i32 {
                    return Err(Error::InvalidConfig(format!(
                        "qdrant collection `{name}` uses the {} distance; this store needs Cosine",
                        Distance::try_from(p.distance)
                            .map(|d| d.as_str_name())
                            .unwrap_or("unknown")
                    )));
                }
            }
            _ => {
                return Err(Error::InvalidConfig(format!(
                    "qdrant collection `{name}` has named vectors (or none); this store needs one \
                     unnamed vector"
                )));
            }
        }
        for (field, is_tenant) in codec::KEYWORD_INDEXES {
            let current = info.payload_schema.get(field);
            let tenant_flag = current
                .and_then(|s| s.params.as_ref())
                .and_then(|p| match &p.index_params {
                    Some(IndexParams::KeywordIndexParams(k)) => k.is_tenant,
                    _ => None,
                })
                .unwrap_or(false);
            if current.is_some() && (!is_tenant || tenant_flag) {
                continue;
            }
            self.client
                .create_field_index(CreateFieldIndexCollection {
                    collection_name: name.clone(),
                    wait: Some(true),
                    field_name: field.to_string(),
                    field_type: Some(FieldType::Keyword as i32),
                    field_index_params: Some(PayloadIndexParams {
                        index_params: Some(IndexParams::KeywordIndexParams(KeywordIndexParams {
                            is_tenant: Some(is_tenant),
                            ..KeywordIndexParams::default()
                        })),
                    }),
                    ..CreateFieldIndexCollection::default()
                })
                .await
                .map_err(op_error("create_field_index"))?;
        }
        Ok(())
    }

    fn ordering() -> Option<WriteOrdering> {
        Some(WriteOrdering {
            r#type: WriteOrderingType::Strong as i32,
        })
    }

    /// The lock of one document of one tenant and agent.
    async fn lock(&self, tenant: &TenantId, agent: &AgentId, id: &str) -> MutexGuard<'_, ()> {
        let d = codec::digest(DOCUMENT, tenant, agent, id);
        let stripe = usize::from(u16::from_le_bytes([d[0], d[1]])) % self.locks.len();
        self.locks[stripe].lock().await
    }

    async fn upsert_points(&self, op: &str, points: Vec<PointStruct>) -> Result<()> {
        let mut points = points.into_iter().peekable();
        while points.peek().is_some() {
            let batch: Vec<_> = points.by_ref().take(BATCH).collect();
            self.client
                .upsert_points(UpsertPoints {
                    collection_name: self.collection.clone(),
                    wait: Some(true),
                    points: batch,
                    ordering: Self::ordering(),
                    ..UpsertPoints::default()
                })
                .await
                .map_err(op_error(op))?;
        }
        Ok(())
    }

    async fn delete_where(&self, op: &str, filter: Filter) -> Result<()> {
        self.client
            .delete_points(DeletePoints {
                collection_name: self.collection.clone(),
                wait: Some(true),
                points: Some(PointsSelector {
                    points_selector_one_of: Some(PointsSelectorOneOf::Filter(filter)),
                }),
                ordering: Self::ordering(),
                ..DeletePoints::default()
            })
            .await
            .map_err(op_error(op))?;
        Ok(())
    }

    async fn count(&self, op: &str, filter: Filter) -> Result<u64> {
        let response = self
            .client
            .count(CountPoints {
                collection_name: self.collection.clone(),
                filter: Some(filter),
                exact: Some(true),
                ..CountPoints::default()
            })
            .await
            .map_err(op_error(op))?;
        Ok(response.result.map(|r| r.count).unwrap_or(0))
    }

    /// Every document entry matching `filter`, with its state, in no particular order.
    async fn entries(&self, op: &str, filter: Filter) -> Result<Vec<(DocumentEntry, State)>> {
        let mut out = Vec::new();
        let mut offset: Option<PointId> = None;
        loop {
            let page = self
                .client
                .scroll(ScrollPoints {
                    collection_name: self.collection.clone(),
                    filter: Some(filter.clone()),
                    offset: offset.take(),
                    limit: Some(PAGE),
                    with_payload: Some(true.into()),
                    with_vectors: Some(false.into()),
                    ..ScrollPoints::default()
                })
                .await
                .map_err(op_error(op))?;
            for point in &page.result {
                out.push(codec::entry_from(&point.payload)?);
            }
            match page.next_page_offset {
                Some(next) if !page.result.is_empty() => offset = Some(next),
                _ => return Ok(out),
            }
        }
    }

    async fn entry(
        &self,
        op: &str,
        tenant: &TenantId,
        agent: &AgentId,
        id: &str,
    ) -> Result<Option<(DocumentEntry, State)>> {
        let mut must = codec::scope(tenant, agent, DOCUMENT);
        must.push(codec::keyword(codec::ID, id));
        let found = self.entries(op, codec::filter(must, Vec::new())).await?;
        Ok(found.into_iter().find(|(e, _)| e.id == id))
    }

    /// One query of up to `limit` hits, re-sorted best first with ties by id.
    async fn query(
        &self,
        request: &SearchRequest,
        filter: &Filter,
        limit: usize,
    ) -> Result<Vec<ScoredChunk>> {
        let response = self
            .client
            .query(QueryPoints {
                collection_name: self.collection.clone(),
                query: Some(Query::from(request.vector.clone())),
                filter: Some(filter.clone()),
                params: self.exact.then(|| SearchParams {
                    exact: Some(true),
                    ..SearchParams::default()
                }),
                score_threshold: request.min_score,
                limit: Some(u64::try_from(limit).unwrap_or(u64::MAX)),
                with_payload: Some(true.into()),
                with_vectors: Some(false.into()),
                ..QueryPoints::default()
            })
            .await
            .map_err(op_error("search"))?;
        let mut hits = response
            .result
            .iter()
            .map(|p| codec::chunk_from(&p.payload, p.score))
            .collect::<Result<Vec<_>>>()?;
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        Ok(hits)
    }
}

fn check_document_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidInput("a document needs an id".into()));
    }
    Ok(())
}

#[async_trait]
impl VectorStore for QdrantStore {
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
        let points = records
            .iter()
            .map(|r| codec::chunk_point(tenant, agent, r, None))
            .collect::<Result<Vec<_>>>()?;
        self.upsert_points("upsert", points).await
    }

    async fn search(&self, request: &SearchRequest) -> Result<Vec<ScoredChunk>> {
        check_vector(self.dims, &request.vector)?;
        let k = request.top_k;
        if k == 0 {
            return Ok(Vec::new());
        }
        let mut must = codec::scope(&request.tenant, &request.agent, CHUNK);
        for (key, value) in &request.metadata {
            must.push(codec::keyword(codec::PAIRS, &codec::pair(key, value)));
        }
        let filter = codec::filter(must, Vec::new());
        let mut limit = k.saturating_add(TIE_MARGIN);
        loop {
            let mut hits = self.query(request, &filter, limit).await?;
            // A full page whose last hit ties with the k-th: more ties may follow.
            let tie_at_cut = hits.len() >= limit
                && hits.len() > k
                && hits[limit - 1].score >= hits[k - 1].score
                && limit < usize::MAX;
            if !tie_at_cut {
                hits.truncate(k);
                if let Some(min) = request.min_score {
                    hits.retain(|h| h.score >= min);
                }
                return Ok(hits);
            }
            limit = limit.saturating_mul(2);
        }
    }

    async fn delete(&self, tenant: &TenantId, agent: &AgentId, ids: &[String]) -> Result<usize> {
        const OP: &str = "delete";
        if ids.is_empty() {
            return Ok(0);
        }
        let unique: BTreeSet<&String> = ids.iter().collect();
        let mut must = codec::scope(tenant, agent, CHUNK);
        must.push(codec::any_keyword(
            codec::ID,
            unique.into_iter().cloned().collect(),
        ));
        let filter = codec::filter(must, Vec::new());
        let existing = self.count(OP, filter.clone()).await?;
        if existing == 0 {
            return Ok(0);
        }
        self.delete_where(OP, filter).await?;
        Ok(usize::try_from(existing).unwrap_or(usize::MAX))
    }

    async fn replace_document(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        document: &DocumentEntry,
        records: &[VectorRecord],
    ) -> Result<()> {
        const OP: &str = "replace_document";
        check_document_id(&document.id)?;
        check_records(self.dims, Some(&document.id), records)?;
        let generation = codec::new_generation();
        let entry =
            |state| codec::entry_point(tenant, agent, self.dims, document, &generation, state);
        let (pending, ready) = (entry(State::Pending)?, entry(State::Ready)?);
        let chunks = records
            .iter()
            .map(|r| codec::chunk_point(tenant, agent, r, Some(&generation)))
            .collect::<Result<Vec<_>>>()?;
        let _guard = self.lock(tenant, agent, &document.id).await;
        // 1. The entry says "being replaced": an interruption from here on is never mistaken
        //    for an indexed document.
        self.upsert_points(OP, vec![pending]).await?;
        // 2. The new chunks, with this call's generation (replacing same-id points).
        self.upsert_points(OP, chunks).await?;
        // 3. The document's chunks of every other generation.
        let mut must = codec::scope(tenant, agent, CHUNK);
        must.push(codec::keyword(codec::DOCUMENT_ID, &document.id));
        let stale = codec::filter(must, vec![codec::keyword(codec::GENERATION, &generation)]);
        self.delete_where(OP, stale).await?;
        // 4. The entry, now true.
        self.upsert_points(OP, vec![ready]).await
    }

    async fn document(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        id: &str,
    ) -> Result<Option<DocumentEntry>> {
        Ok(self
            .entry("document", tenant, agent, id)
            .await?
            .map(|(entry, _)| entry))
    }

    async fn documents(&self, tenant: &TenantId, agent: &AgentId) -> Result<Vec<DocumentEntry>> {
        let filter = codec::filter(codec::scope(tenant, agent, DOCUMENT), Vec::new());
        let mut entries: Vec<DocumentEntry> = self
            .entries("documents", filter)
            .await?
            .into_iter()
            .map(|(entry, _)| entry)
            .collect();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(entries)
    }

    async fn delete_document(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        id: &str,
    ) -> Result<Option<DocumentEntry>> {
        const OP: &str = "delete_document";
        let _guard = self.lock(tenant, agent, id).await;
        let found = self.entry(OP, tenant, agent, id).await?;
        if let Some((entry, State::Ready)) = &found {
            // Pending first: a deletion interrupted after the chunks went is not mistaken for
            // an indexed document.
            let pending = codec::entry_point(
                tenant,
                agent,
                self.dims,
                entry,
                &codec::new_generation(),
                State::Pending,
            )?;
            self.upsert_points(OP, vec![pending]).await?;
        }
        let mut must = codec::scope(tenant, agent, CHUNK);
        must.push(codec::keyword(codec::DOCUMENT_ID, id));
        self.delete_where(OP, codec::filter(must, Vec::new()))
            .await?;
        if found.is_some() {
            let mut must = codec::scope(tenant, agent, DOCUMENT);
            must.push(codec::keyword(codec::ID, id));
            self.delete_where(OP, codec::filter(must, Vec::new()))
                .await?;
        }
        Ok(found.map(|(entry, _)| entry))
    }
}
