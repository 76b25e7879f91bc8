//! Keyword search for [`PgVectorStore`] ([`VectorStore::search_text`]) over the `tsvector`
//! column `rag_vectors.text_search` (migration `0006`).
//!
//! A user's query never reaches the `tsquery` parser as typed: [`query_words`] keeps only runs
//! of Unicode alphanumerics (so no operator, quote, backslash or NUL survives), and the SQL
//! quotes each word and joins them with `|`. Postgres then applies the `english` configuration
//! (lower case, stemming, stop words) exactly as it did to the stored texts.
//!
//! [`VectorStore::search_text`]: agentkit_core::retrieval::VectorStore::search_text

use std::collections::HashSet;

use agentkit_core::Result;
use agentkit_core::retrieval::{ScoredChunk, TextSearchRequest};

use super::{PgVectorStore, ScoredRow, scored_chunks};
use crate::codec::{check_tenant, json};
use crate::commit;
use crate::error::query_error;

/// At most this many distinct words of a query are searched (the first ones, in query order);
/// the rest are ignored. Postgres ranks in time growing with the query's length for every
/// matching row, and a query of tens of thousands of words exceeds its stack depth.
pub(crate) const MAX_QUERY_WORDS: usize = 128;

/// The searchable words of `query`: its maximal runs of Unicode alphanumerics, each once (the
/// first occurrence), at most [`MAX_QUERY_WORDS`]. Case is left to Postgres, which folds the
/// query's words as it folded the stored texts.
pub(crate) fn query_words(query: &str) -> Vec<&str> {
    let mut seen = HashSet::new();
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && seen.insert(*w))
        .take(MAX_QUERY_WORDS)
        .collect()
}

/// [`VectorStore::search_text`](agentkit_core::retrieval::VectorStore::search_text) for
/// `store`: the matching records of the tenant and agent, best first.
pub(super) async fn search_text(
    store: &PgVectorStore,
    request: &TextSearchRequest,
) -> Result<Vec<ScoredChunk>> {
    const OP: &str = "search_text";
    check_tenant(&request.tenant)?;
    let words = query_words(&request.query);
    if request.top_k == 0 || words.is_empty() {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(request.top_k).unwrap_or(i64::MAX);
    let filters = json(&request.metadata)?;
    let mut tx = store.store.begin(OP, &request.tenant).await?;
    // The query is built once (the materialized CTE, read by two scalar subqueries, so the GIN
    // index serves `@@`). Every word is quoted and the words are OR-ed; a query of only stop
    // words becomes the empty tsquery (Postgres sends a NOTICE), which matches nothing.
    // `ts_rank` with normalization 1 divides by 1 + log(length), so a short text dense in a
    // word ranks above a long one mentioning it once; ties are ordered by id ("C" collation).
    let rows: Vec<ScoredRow> = sqlx::query_as(
        "WITH q AS MATERIALIZED ( \
             SELECT to_tsquery('english'::regconfig, array_to_string( \
                 ARRAY(SELECT '''' || w || '''' FROM unnest($3::text[]) AS w), ' | ')) AS query \
         ) \
         SELECT v.id, ts_rank(v.text_search, (SELECT query FROM q), 1) AS score, \
             v.text, v.source::text, v.metadata::text \
         FROM rag_vectors v \
         WHERE v.tenant = $1 AND v.agent = $2 AND v.metadata @> $4::jsonb \
             AND cardinality(v.vector) = $5 \
             AND v.text_search @@ (SELECT query FROM q) \
         ORDER BY score DESC, v.id \
         LIMIT $6",
    )
    .bind(request.tenant.as_str())
    .bind(request.agent.as_str())
    .bind(&words)
    .bind(&filters)
    .bind(store.sql_dims)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await
    .map_err(|e| query_error(OP, e))?;
    commit(tx, OP).await?;
    scored_chunks(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_alphanumeric_runs_survive() {
        assert_eq!(
            query_words("warranty\" OR \"clause' & !x | (y) <-> z:* \\ w\u{0}rranty"),
            ["warranty", "OR", "clause", "x", "y", "z", "w", "rranty"]
        );
        assert_eq!(
            query_words("'; DROP TABLE rag_vectors; --"),
            ["DROP", "TABLE", "rag", "vectors"]
        );
        assert_eq!(
            query_words("garantía 保証 🚀 ZX81"),
            ["garantía", "保証", "ZX81"]
        );
        for nothing in ["", "   ", "\"", "🚀 -- :* ''", "\u{0}"] {
            assert!(query_words(nothing).is_empty(), "{nothing:?}");
        }
        for w in query_words("a'b\\c:d*e&f|g!h(i)j<k>l-m+n^o\"p\u{0}q\tr\ns") {
            assert!(w.chars().all(char::is_alphanumeric), "{w:?}");
        }
    }

    #[test]
    fn words_are_kept_once_and_capped() {
        assert_eq!(query_words("refund Refund refund"), ["refund", "Refund"]);
        let long: String = (0..1000).map(|i| format!("w{i} w{i} ")).collect();
        let words = query_words(&long);
        assert_eq!(words.len(), MAX_QUERY_WORDS);
        assert_eq!(words[0], "w0");
        assert_eq!(
            words[MAX_QUERY_WORDS - 1],
            format!("w{}", MAX_QUERY_WORDS - 1)
        );
    }
}
