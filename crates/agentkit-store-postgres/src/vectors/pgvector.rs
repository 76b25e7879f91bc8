//! The pgvector path of [`PgVectorStore`](super::PgVectorStore): where the `vector` extension
//! is installed, an HNSW index (cosine) over the store's own `real[]` column, as a partial
//! expression index per dimension — no second copy of the vectors, nothing to back-fill, kept
//! by every write in the write's own transaction, built over the rows already there when it
//! is created.
//!
//! A search walks the index for the nearest rows of the tenant and agent inside the metadata
//! filters. pgvector 0.6–0.7 stops after `hnsw.ef_search` candidates, so a selective filter
//! (or a small tenant among large ones) can leave fewer than `top_k` hits; then the search is
//! answered by the exact scan instead, so a filtered query still returns `top_k` hits whenever
//! that many records match.

use agentkit_core::retrieval::SearchRequest;
use agentkit_core::{Error, Result};
use sqlx::{PgConnection, PgPool};

use super::ScoredRow;
use crate::error::query_error;

/// The most dimensions pgvector's HNSW index takes for `vector`.
pub(super) const MAX_DIMENSIONS: usize = 2000;

/// The candidates an index search considers, at least (pgvector's default is 40).
const MIN_EF_SEARCH: usize = 40;

/// The index a store of some dimension searches through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HnswIndex {
    /// The extension's schema, quoted for SQL (`"public"`).
    schema: String,
    /// The index's name (`rag_vectors_hnsw_cosine_384`).
    pub(super) name: String,
    dims: usize,
}

impl HnswIndex {
    /// The `vector(dims)` type, schema-qualified.
    fn vector_type(&self) -> String {
        format!("{}.vector({})", self.schema, self.dims)
    }

    /// The cosine distance operator, schema-qualified.
    fn distance(&self) -> String {
        format!("OPERATOR({}.<=>)", self.schema)
    }
}

/// Makes sure the index for `dims`-long vectors exists (creating it over the existing rows
/// when it does not), or says why the exact scan will be used instead.
pub(super) async fn prepare(pool: &PgPool, dims: usize) -> Result<Option<HnswIndex>> {
    const OP: &str = "vector_index";
    let schema: Option<String> = sqlx::query_scalar(
        "SELECT quote_ident(n.nspname) FROM pg_extension e \
         JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'vector'",
    )
    .fetch_optional(pool)
    .await
    .map_err(|e| query_error(OP, e))?;
    let Some(schema) = schema else {
        return Ok(None);
    };
    if dims > MAX_DIMENSIONS {
        tracing::info!(
            dimensions = dims,
            "agentkit postgres vector store: pgvector's HNSW index takes at most \
             {MAX_DIMENSIONS} dimensions; searches use the exact SQL scan"
        );
        return Ok(None);
    }
    let index = HnswIndex {
        schema,
        name: format!("rag_vectors_hnsw_cosine_{dims}"),
        dims,
    };
    let exists = || async {
        sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
            .bind(&index.name)
            .fetch_one(pool)
            .await
            .map_err(|e| query_error(OP, e))
    };
    if exists().await? {
        // Made before: no DDL (even `IF NOT EXISTS` would lock the table against writes).
        return Ok(Some(index));
    }
    // `dims` is a number and the schema is quoted by the server: no input reaches this text.
    let create = format!(
        "CREATE INDEX IF NOT EXISTS {name} ON rag_vectors USING hnsw \
         ((vector::{ty}) {schema}.vector_cosine_ops) WHERE cardinality(vector) = {dims}",
        name = index.name,
        ty = index.vector_type(),
        schema = index.schema,
    );
    if let Err(e) = sqlx::query(&create).execute(pool).await {
        // A concurrent store may have made it first; anything else leaves the exact scan.
        tracing::debug!(error = %e, "creating the pgvector index");
    }
    if !exists().await? {
        tracing::warn!(
            index = %index.name,
            "agentkit postgres vector store: the pgvector index could not be created (the \
             store's role must own `rag_vectors`); searches use the exact SQL scan"
        );
        return Ok(None);
    }
    Ok(Some(index))
}

/// The nearest rows through the index, best first (ties by id), at most `limit` of them;
/// fewer when the index's candidates ran out inside the filters (the caller then scans).
pub(super) async fn search(
    tx: &mut PgConnection,
    index: &HnswIndex,
    request: &SearchRequest,
    filters: &str,
    limit: i64,
) -> Result<Vec<ScoredRow>> {
    const OP: &str = "search_vectors";
    let ef = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_mul(2)
        .clamp(MIN_EF_SEARCH, 1000);
    sqlx::query("SELECT set_config('hnsw.ef_search', $1, true)")
        .bind(ef.to_string())
        .execute(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
    let (ty, distance, dims) = (index.vector_type(), index.distance(), index.dims);
    // The inner query is the index's shape (ORDER BY the distance, LIMIT); the outer one
    // applies `min_score` and orders ties by id as the exact scan does. A stored zero vector
    // scores 0 (its cosine distance is NaN).
    let sql = format!(
        "SELECT s.id, s.score, s.text, s.source::text, s.metadata::text FROM ( \
             SELECT v.id, v.text, v.source, v.metadata, \
                 CASE WHEN v.norm = 0 THEN 0 \
                      ELSE (1 - (v.vector::{ty} {distance} $3::real[]::{ty}))::real END AS score \
             FROM rag_vectors v \
             WHERE v.tenant = $1 AND v.agent = $2 AND v.metadata @> $4::jsonb \
                 AND cardinality(v.vector) = {dims} \
             ORDER BY v.vector::{ty} {distance} $3::real[]::{ty} \
             LIMIT $5 \
         ) s \
         WHERE $6::real IS NULL OR s.score >= $6::real \
         ORDER BY s.score DESC, s.id"
    );
    sqlx::query_as(&sql)
        .bind(request.tenant.as_str())
        .bind(request.agent.as_str())
        .bind(&request.vector)
        .bind(filters)
        .bind(limit)
        .bind(request.min_score)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))
}

/// The plan of an index search (`EXPLAIN`), for operators and tests.
pub(super) async fn explain(
    tx: &mut PgConnection,
    index: &HnswIndex,
    request: &SearchRequest,
    filters: &str,
    limit: i64,
) -> Result<String> {
    const OP: &str = "explain_search";
    let (ty, distance, dims) = (index.vector_type(), index.distance(), index.dims);
    let sql = format!(
        "EXPLAIN SELECT v.id FROM rag_vectors v \
         WHERE v.tenant = $1 AND v.agent = $2 AND v.metadata @> $4::jsonb \
             AND cardinality(v.vector) = {dims} \
         ORDER BY v.vector::{ty} {distance} $3::real[]::{ty} LIMIT $5"
    );
    let lines: Vec<String> = sqlx::query_scalar(&sql)
        .bind(request.tenant.as_str())
        .bind(request.agent.as_str())
        .bind(&request.vector)
        .bind(filters)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| query_error(OP, e))?;
    if lines.is_empty() {
        return Err(Error::Internal("EXPLAIN returned no plan".into()));
    }
    Ok(lines.join("\n"))
}
