//! [`PgVectorStore`]: the core [`VectorStore`] contract (retrieval) on PostgreSQL, in the
//! tables `rag_vectors` and `rag_documents` (migration `0005`).
//!
//! Every operation is one transaction scoped to its tenant for row-level security, like the
//! store's other operations; every query also filters by tenant and agent. Searches are an exact
//! scan computing the cosine in SQL (see [`VectorBackend`]).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{
    DocumentEntry, ScoredChunk, SearchRequest, SourceRef, VectorRecord, VectorStore, check_records,
    check_vector,
};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use sqlx::PgConnection;

use crate::codec::{check_tenant, from_json, json, to_i64, to_u64};
use crate::error::query_error;
use crate::{PostgresStore, commit};

/// How a [`PgVectorStore`] answers searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VectorBackend {
    /// An exact scan in SQL: every row of the tenant and agent that matches the metadata filters
    /// is scored (cosine over `real[]`), then sorted. Exact results, time linear in the rows
    /// matched. The only backend implemented today.
    Exact,
    /// An approximate index of the `pgvector` extension. **Not implemented yet**: no store uses
    /// it, even when the extension is installed (see [`PgVectorStore::pgvector`]).
    PgVector,
}

/// Whether the database has the `pgvector` extension (`vector`), as seen when the store was
/// made. Informational only: searches use [`VectorBackend::Exact`] in every case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PgVectorExtension {
    /// The server does not offer the extension (`pg_available_extensions` has no `vector`).
    Absent,
    /// The server offers it but `CREATE EXTENSION vector` has not been run in this database.
    Available,
    /// The extension is installed in this database, at this version.
    Installed {
        /// `pg_extension.extversion`.
        version: String,
    },
}

/// The core [`VectorStore`] contract on PostgreSQL, sharing its [`PostgresStore`]'s pool;
/// made by [`PostgresStore::vectors`]. Cheap to clone.
///
/// - Records live in `rag_vectors` (vector as `real[]` with its stored Euclidean norm, text,
///   citation data and metadata as `jsonb`), document entries in `rag_documents`; both have the
///   tenant and agent in their primary key, so the same chunk or document id exists
///   independently in every tenant and agent, and row-level security on the tenant like every
///   table of the store.
/// - **Searches are an exact scan in SQL** ([`VectorBackend::Exact`]): the cosine of the query
///   with every row of the tenant and agent that matches the metadata filters
///   (`metadata @> filters`, GIN-indexed), `min_score` applied in SQL, ordered best first with
///   ties by id, cut at `top_k`. Filters are applied inside the search, so a filtered query
///   returns `top_k` hits whenever that many records match. The cost is linear in the rows
///   scanned: fine for thousands to a few hundred thousand chunks per agent.
/// - **pgvector is not used.** Construction detects the `vector` extension
///   ([`PgVectorStore::pgvector`]) and logs what it found, but an approximate pgvector index
///   path is not implemented yet: the exact scan is used even when the extension is installed,
///   and [`PgVectorStore::backend`] always reports [`VectorBackend::Exact`].
/// - Every write is one transaction: a batch holding one invalid record writes nothing (records
///   are checked before the transaction starts), [`VectorStore::replace_document`] removes the
///   document's old chunks, writes the new ones and its entry together, and concurrent
///   replacements of one document are serialized by the lock on its entry's row.
/// - Records of another length than [`VectorStore::dimensions`] (written by a store of another
///   dimension over the same tables) are never returned by a search.
#[derive(Clone)]
pub struct PgVectorStore {
    store: PostgresStore,
    dims: usize,
    sql_dims: i32,
    pgvector: PgVectorExtension,
}

impl PgVectorStore {
    /// A store of `dimensions`-long vectors over `store`'s pool (see [`PostgresStore::vectors`]).
    pub(crate) async fn new(store: PostgresStore, dimensions: usize) -> Result<Self> {
        const OP: &str = "vector_store";
        let sql_dims = i32::try_from(dimensions)
            .ok()
            .filter(|d| *d > 0)
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "a vector store needs between 1 and {} dimensions, not {dimensions}",
                    i32::MAX
                ))
            })?;
        let (installed, available): (Option<String>, bool) = sqlx::query_as(
            "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'), \
             EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')",
        )
        .fetch_one(store.pool())
        .await
        .map_err(|e| query_error(OP, e))?;
        let pgvector = match (installed, available) {
            (Some(version), _) => PgVectorExtension::Installed { version },
            (None, true) => PgVectorExtension::Available,
            (None, false) => PgVectorExtension::Absent,
        };
        match &pgvector {
            PgVectorExtension::Installed { version } => tracing::info!(
                dimensions,
                pgvector = %version,
                "agentkit postgres vector store: the pgvector extension is installed, but its \
                 index path is not implemented yet; searches use the exact SQL scan"
            ),
            other => tracing::info!(
                dimensions,
                pgvector = ?other,
                "agentkit postgres vector store: pgvector is not installed; searches use the \
                 exact SQL scan"
            ),
        }
        Ok(Self {
            store,
            dims: dimensions,
            sql_dims,
            pgvector,
        })
    }

    /// The backend searches use: always [`VectorBackend::Exact`] for now (the pgvector path is
    /// not implemented, whatever [`PgVectorStore::pgvector`] reports).
    pub fn backend(&self) -> VectorBackend {
        VectorBackend::Exact
    }

    /// Whether the database had the `pgvector` extension when this store was made.
    pub fn pgvector(&self) -> &PgVectorExtension {
        &self.pgvector
    }

    /// The state store whose pool this vector store shares.
    pub fn store(&self) -> &PostgresStore {
        &self.store
    }
}

impl fmt::Debug for PgVectorStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgVectorStore")
            .field("dimensions", &self.dims)
            .field("backend", &self.backend())
            .field("pgvector", &self.pgvector)
            .field("store", &self.store)
            .finish()
    }
}

/// The Euclidean length of `v`, summed in `f64`.
fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt()
}

/// `records` with one record per id, the last one given (what upserting them in order leaves).
fn last_per_id(records: &[VectorRecord]) -> Vec<&VectorRecord> {
    let mut seen = HashSet::with_capacity(records.len());
    let mut kept: Vec<&VectorRecord> = records
        .iter()
        .rev()
        .filter(|r| seen.insert(r.id.as_str()))
        .collect();
    kept.reverse();
    kept
}

/// Writes (inserts or replaces by id) checked `records` in the caller's transaction, with one
/// statement: the columns as arrays, the vectors as one flat `real[]` sliced per row.
async fn write_records(
    tx: &mut PgConnection,
    op: &'static str,
    dims: i32,
    tenant: &TenantId,
    agent: &AgentId,
    records: &[VectorRecord],
) -> Result<()> {
    let records = last_per_id(records);
    if records.is_empty() {
        return Ok(());
    }
    let n = records.len();
    let (mut ids, mut documents, mut norms, mut texts, mut sources, mut metadata) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut flat: Vec<f32> = Vec::with_capacity(n * records[0].vector.len());
    for r in records {
        ids.push(r.id.as_str());
        documents.push(r.source.document_id.as_str());
        norms.push(norm(&r.vector) as f32);
        texts.push(r.text.as_str());
        sources.push(json(&r.source)?);
        metadata.push(json(&r.metadata)?);
        flat.extend_from_slice(&r.vector);
    }
    sqlx::query(
        "INSERT INTO rag_vectors \
             (tenant, agent, id, document_id, vector, norm, text, source, metadata) \
         SELECT $1, $2, r.id, r.document_id, \
             ($3::real[])[((r.ord - 1) * $4 + 1)::int : (r.ord * $4)::int], \
             r.norm, r.text, r.source::jsonb, r.metadata::jsonb \
         FROM unnest($5::text[], $6::text[], $7::real[], $8::text[], $9::text[], $10::text[]) \
             WITH ORDINALITY AS r (id, document_id, norm, text, source, metadata, ord) \
         ON CONFLICT (tenant, agent, id) DO UPDATE SET \
             document_id = EXCLUDED.document_id, vector = EXCLUDED.vector, \
             norm = EXCLUDED.norm, text = EXCLUDED.text, source = EXCLUDED.source, \
             metadata = EXCLUDED.metadata",
    )
    .bind(tenant.as_str())
    .bind(agent.as_str())
    .bind(&flat)
    .bind(dims)
    .bind(&ids)
    .bind(&documents)
    .bind(&norms)
    .bind(&texts)
    .bind(&sources)
    .bind(&metadata)
    .execute(tx)
    .await
    .map_err(|e| query_error(op, e))?;
    Ok(())
}

/// A document entry from its columns.
type DocumentRow = (String, Option<String>, String, i64, String);

fn document_entry(
    (id, title, content_hash, chunks, metadata): DocumentRow,
) -> Result<DocumentEntry> {
    let chunks = usize::try_from(to_u64(chunks, "a document's chunk count")?).map_err(|_| {
        crate::codec::corrupt(format!(
            "a document's chunk count is out of range ({chunks})"
        ))
    })?;
    Ok(DocumentEntry {
        id,
        title,
        content_hash,
        chunks,
        metadata: from_json::<BTreeMap<String, String>>(&metadata, "a document's metadata")?,
    })
}

fn check_document_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::InvalidInput("a document needs an id".into()));
    }
    Ok(())
}

#[async_trait]
impl VectorStore for PgVectorStore {
    fn dimensions(&self) -> usize {
        self.dims
    }

    async fn upsert(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        records: &[VectorRecord],
    ) -> Result<()> {
        const OP: &str = "upsert_vectors";
        check_tenant(tenant)?;
        check_records(self.dims, None, records)?;
        if records.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.begin(OP, tenant).await?;
        write_records(&mut tx, OP, self.sql_dims, tenant, agent, records).await?;
        commit(tx, OP).await
    }

    async fn search(&self, request: &SearchRequest) -> Result<Vec<ScoredChunk>> {
        const OP: &str = "search_vectors";
        check_tenant(&request.tenant)?;
        check_vector(self.dims, &request.vector)?;
        if request.top_k == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(request.top_k).unwrap_or(i64::MAX);
        let filters = json(&request.metadata)?;
        let mut tx = self.store.begin(OP, &request.tenant).await?;
        // The cosine, summed in double precision; a zero vector (either side) scores 0. The
        // score is rounded to `real` before it is compared and ordered, so ties are exactly the
        // hits reported with equal scores.
        let rows: Vec<(String, f32, String, String, String)> = sqlx::query_as(
            "SELECT s.id, s.score, s.text, s.source::text, s.metadata::text FROM ( \
                 SELECT v.id, v.text, v.source, v.metadata, \
                     COALESCE( \
                         (SELECT sum(a::float8 * b::float8) \
                          FROM unnest(v.vector, $3::real[]) AS t (a, b)) \
                         / NULLIF(v.norm::float8 * $4::float8, 0), \
                         0)::real AS score \
                 FROM rag_vectors v \
                 WHERE v.tenant = $1 AND v.agent = $2 AND v.metadata @> $5::jsonb \
                     AND cardinality(v.vector) = $6 \
             ) s \
             WHERE $7::real IS NULL OR s.score >= $7::real \
             ORDER BY s.score DESC, s.id \
             LIMIT $8",
        )
        .bind(request.tenant.as_str())
        .bind(request.agent.as_str())
        .bind(&request.vector)
        .bind(norm(&request.vector))
        .bind(&filters)
        .bind(self.sql_dims)
        .bind(request.min_score)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        rows.into_iter()
            .map(|(id, score, text, source, metadata)| {
                Ok(ScoredChunk {
                    id,
                    score,
                    text,
                    source: from_json::<SourceRef>(&source, "a chunk's source")?,
                    metadata: from_json(&metadata, "a chunk's metadata")?,
                })
            })
            .collect()
    }

    async fn delete(&self, tenant: &TenantId, agent: &AgentId, ids: &[String]) -> Result<usize> {
        const OP: &str = "delete_vectors";
        check_tenant(tenant)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let mut tx = self.store.begin(OP, tenant).await?;
        let deleted = sqlx::query(
            "DELETE FROM rag_vectors WHERE tenant = $1 AND agent = $2 AND id = ANY($3::text[])",
        )
        .bind(tenant.as_str())
        .bind(agent.as_str())
        .bind(ids)
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?
        .rows_affected();
        commit(tx, OP).await?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    async fn replace_document(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        document: &DocumentEntry,
        records: &[VectorRecord],
    ) -> Result<()> {
        const OP: &str = "replace_document";
        check_tenant(tenant)?;
        check_document_id(&document.id)?;
        check_records(self.dims, Some(&document.id), records)?;
        let chunks = to_i64(document.chunks as u64, "a document's chunk count")?;
        let metadata = json(&document.metadata)?;
        let mut tx = self.store.begin(OP, tenant).await?;
        // The entry first: its row lock serializes concurrent replacements of one document, so
        // the delete below sees every chunk a replacement committed before it.
        sqlx::query(
            "INSERT INTO rag_documents (tenant, agent, id, title, content_hash, chunks, metadata) \
             VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb) \
             ON CONFLICT (tenant, agent, id) DO UPDATE SET title = EXCLUDED.title, \
                 content_hash = EXCLUDED.content_hash, chunks = EXCLUDED.chunks, \
                 metadata = EXCLUDED.metadata",
        )
        .bind(tenant.as_str())
        .bind(agent.as_str())
        .bind(&document.id)
        .bind(&document.title)
        .bind(&document.content_hash)
        .bind(chunks)
        .bind(&metadata)
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        sqlx::query(
            "DELETE FROM rag_vectors WHERE tenant = $1 AND agent = $2 AND document_id = $3",
        )
        .bind(tenant.as_str())
        .bind(agent.as_str())
        .bind(&document.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        write_records(&mut tx, OP, self.sql_dims, tenant, agent, records).await?;
        commit(tx, OP).await
    }

    async fn document(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        id: &str,
    ) -> Result<Option<DocumentEntry>> {
        const OP: &str = "document";
        let mut tx = self.store.begin(OP, tenant).await?;
        let row: Option<DocumentRow> = sqlx::query_as(
            "SELECT id, title, content_hash, chunks, metadata::text FROM rag_documents \
             WHERE tenant = $1 AND agent = $2 AND id = $3",
        )
        .bind(tenant.as_str())
        .bind(agent.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        row.map(document_entry).transpose()
    }

    async fn documents(&self, tenant: &TenantId, agent: &AgentId) -> Result<Vec<DocumentEntry>> {
        const OP: &str = "documents";
        let mut tx = self.store.begin(OP, tenant).await?;
        // `id` has the "C" collation: byte order, the order of Rust's `str`.
        let rows: Vec<DocumentRow> = sqlx::query_as(
            "SELECT id, title, content_hash, chunks, metadata::text FROM rag_documents \
             WHERE tenant = $1 AND agent = $2 ORDER BY id",
        )
        .bind(tenant.as_str())
        .bind(agent.as_str())
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        rows.into_iter().map(document_entry).collect()
    }

    async fn delete_document(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        id: &str,
    ) -> Result<Option<DocumentEntry>> {
        const OP: &str = "delete_document";
        let mut tx = self.store.begin(OP, tenant).await?;
        let row: Option<DocumentRow> = sqlx::query_as(
            "DELETE FROM rag_documents WHERE tenant = $1 AND agent = $2 AND id = $3 \
             RETURNING id, title, content_hash, chunks, metadata::text",
        )
        .bind(tenant.as_str())
        .bind(agent.as_str())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        sqlx::query(
            "DELETE FROM rag_vectors WHERE tenant = $1 AND agent = $2 AND document_id = $3",
        )
        .bind(tenant.as_str())
        .bind(agent.as_str())
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
        commit(tx, OP).await?;
        row.map(document_entry).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, text: &str) -> VectorRecord {
        VectorRecord {
            id: id.into(),
            vector: vec![1.0, 0.0],
            text: text.into(),
            source: SourceRef::default(),
            metadata: BTreeMap::new(),
        }
    }

    #[test]
    fn a_batch_keeps_the_last_record_of_each_id_in_order() {
        let batch = [
            record("a", "1"),
            record("b", "2"),
            record("a", "3"),
            record("c", "4"),
        ];
        let kept: Vec<_> = last_per_id(&batch)
            .into_iter()
            .map(|r| (r.id.as_str(), r.text.as_str()))
            .collect();
        assert_eq!(kept, [("b", "2"), ("a", "3"), ("c", "4")]);
    }

    #[test]
    fn norms_are_euclidean() {
        assert!((norm(&[3.0, 4.0]) - 5.0).abs() < 1e-12);
        assert_eq!(norm(&[0.0, 0.0]), 0.0);
    }
}
