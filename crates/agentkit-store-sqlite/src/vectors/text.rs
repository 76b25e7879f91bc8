//! Keyword search for [`SqliteVectorStore`](super::SqliteVectorStore): the FTS5 index
//! `rag_vector_text` (schema v5) and
//! [`VectorStore::search_text`](agentkit_core::retrieval::VectorStore::search_text).
//!
//! The index has external content (`content='rag_vectors'`, `content_rowid='rid'`): it keeps
//! the postings and the lengths BM25 needs, not a copy of the texts, and each entry's rowid is
//! its chunk's `rid`. FTS5 does not follow its content table by itself: the vector store's
//! write paths call [`unindex`] or [`unindex_document`] before a row changes or goes (an entry
//! is removed by handing FTS5 the exact text it indexed, which the row still holds then) and
//! [`index`] after a row is written, all in the write's transaction, so the index changes
//! exactly when the rows do. (A contentless table with `contentless_delete=1` would remove
//! entries by rowid alone, but in the bundled SQLite it never takes a removed row out of the
//! totals BM25 divides by, so scores would drift with every deletion.)
//!
//! A query never reaches FTS5 as the user typed it: [`fts_query`] keeps its words (runs of
//! Unicode letters and digits), quotes each as an FTS5 string and joins them with `OR`, so
//! operators, column filters, quotes, NUL and SQL are plain separators. The search is one
//! statement (one snapshot): the FTS5 match joined to `rag_vectors` on `rid`, the tenant and
//! agent conditions and each metadata filter in its `WHERE`, ordered by `-bm25` (higher is
//! better) then id, limited to `top_k`.

use std::collections::{BTreeMap, HashSet};

use agentkit_core::Result;
use agentkit_core::retrieval::{ScoredChunk, SourceRef};
use rusqlite::types::Value;
use rusqlite::{Connection, Transaction, params, params_from_iter};

use crate::codec::from_json;
use crate::error::db_err;
use crate::sql::{col, text};

/// Indexes chunk `rid`'s text (its row just written, any old entry already removed).
pub(super) fn index(tx: &Transaction<'_>, rid: i64, body: &str) -> Result<()> {
    tx.prepare_cached("INSERT INTO rag_vector_text (rowid, text) VALUES (?1, ?2)")
        .and_then(|mut st| st.execute(params![rid, body]))
        .map_err(db_err)?;
    Ok(())
}

/// The statement removing the entry of one chunk (`?3` its id), run while its row still holds
/// the text it was indexed with: an external-content entry is removed by giving FTS5 that text.
pub(super) const UNINDEX_ID: &str = "INSERT INTO rag_vector_text \
     (rag_vector_text, rowid, text) SELECT 'delete', rid, text FROM rag_vectors \
     WHERE tenant = ?1 AND agent = ?2 AND id = ?3";

/// The statement removing the entries of a document's chunks (`?3` the document), run while
/// their rows are still there.
pub(super) const UNINDEX_DOCUMENT: &str = "INSERT INTO rag_vector_text \
     (rag_vector_text, rowid, text) SELECT 'delete', rid, text FROM rag_vectors \
     WHERE tenant = ?1 AND agent = ?2 AND document_id = ?3";

/// Removes the entry of one chunk, if it exists, before its row is replaced or deleted.
pub(super) fn unindex(tx: &Transaction<'_>, tenant: &str, agent: &str, id: &str) -> Result<()> {
    tx.prepare_cached(UNINDEX_ID)
        .and_then(|mut st| st.execute(params![tenant, agent, id]))
        .map_err(db_err)?;
    Ok(())
}

/// Removes the entries of every chunk of a document, before its rows are deleted.
pub(super) fn unindex_document(
    tx: &Transaction<'_>,
    tenant: &str,
    agent: &str,
    document: &str,
) -> Result<()> {
    tx.prepare_cached(UNINDEX_DOCUMENT)
        .and_then(|mut st| st.execute(params![tenant, agent, document]))
        .map_err(db_err)?;
    Ok(())
}

/// The FTS5 query of a user's text: each distinct word (a run of Unicode letters and digits,
/// compared case-insensitively) as an FTS5 string, joined with `OR`. `None` when the text has
/// no word.
pub(super) fn fts_query(query: &str) -> Option<String> {
    let mut seen = HashSet::new();
    let mut out = String::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        if word.is_empty() || !seen.insert(word.to_lowercase()) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(" OR ");
        }
        // A word holds no `"` (it is letters and digits only); doubling keeps that true for
        // any future change of what a word is.
        out.push('"');
        out.push_str(&word.replace('"', "\"\""));
        out.push('"');
    }
    (!out.is_empty()).then_some(out)
}

/// What one text search asks of the database.
pub(super) struct TextScan<'a> {
    pub(super) tenant: &'a str,
    pub(super) agent: &'a str,
    /// From [`fts_query`].
    pub(super) query: &'a str,
    pub(super) top_k: usize,
    pub(super) filters: &'a [(String, String)],
}

/// The search's SQL: parameters `?1` the FTS5 query, `?2` tenant, `?3` agent, `?4` the limit,
/// then key and value of each filter pair.
pub(super) fn text_sql(filters: usize) -> String {
    let mut sql = String::from(
        "SELECT v.id, -bm25(rag_vector_text) AS score, v.text, v.source, v.metadata \
         FROM rag_vector_text JOIN rag_vectors AS v ON v.rid = rag_vector_text.rowid \
         WHERE rag_vector_text MATCH ?1 AND v.tenant = ?2 AND v.agent = ?3",
    );
    for i in 0..filters {
        sql.push_str(&format!(
            " AND v.id IN (SELECT id FROM rag_vector_meta \
             WHERE tenant = ?2 AND agent = ?3 AND key = ?{} AND value = ?{})",
            5 + 2 * i,
            6 + 2 * i
        ));
    }
    sql.push_str(" ORDER BY score DESC, v.id LIMIT ?4");
    sql
}

/// The best `top_k` records holding a word of the query and matching every filter.
pub(super) fn search(c: &Connection, q: &TextScan<'_>) -> Result<Vec<ScoredChunk>> {
    let limit = i64::try_from(q.top_k).unwrap_or(i64::MAX);
    let mut values: Vec<Value> = Vec::with_capacity(4 + 2 * q.filters.len());
    values.extend([
        Value::Text(q.query.to_owned()),
        Value::Text(q.tenant.to_owned()),
        Value::Text(q.agent.to_owned()),
        Value::Integer(limit),
    ]);
    for (k, v) in q.filters {
        values.extend([Value::Text(k.clone()), Value::Text(v.clone())]);
    }
    let mut st = c
        .prepare_cached(&text_sql(q.filters.len()))
        .map_err(db_err)?;
    let mut rows = st.query(params_from_iter(values)).map_err(db_err)?;
    let mut hits = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        let score: f64 = col(row, 1)?;
        let source: SourceRef = from_json(text(row, 3)?, "vector source")?;
        let metadata: BTreeMap<String, String> = from_json(text(row, 4)?, "vector metadata")?;
        hits.push(ScoredChunk {
            id: col(row, 0)?,
            score: score as f32,
            text: col(row, 2)?,
            source,
            metadata,
        });
    }
    // Scores that differ in SQLite's doubles may round to one `f32`: order the reported
    // scores' ties by id too (a stable sort that changes nothing otherwise).
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
    Ok(hits)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use agentkit_core::id::{AgentId, TenantId};
    use agentkit_core::retrieval::{
        DocumentEntry, SearchRequest, TextSearchRequest, VectorRecord, VectorStore,
    };
    use agentkit_rag::testkit::vectors::{DIMENSIONS, record, vector};

    use super::*;
    use crate::SqliteStore;
    use crate::schema::{MIGRATIONS, configure_writer};
    use crate::sql::testing::{db, plan};
    use crate::vectors::Chunk;

    /// The index holds one entry per chunk and none for anything else.
    fn assert_in_step(c: &Connection) {
        let ids = |sql: &str| -> BTreeSet<i64> {
            c.prepare(sql)
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        // Index against content: every token of every row, the totals BM25 uses, the row count.
        c.execute(
            "INSERT INTO rag_vector_text (rag_vector_text, rank) VALUES ('integrity-check', 1)",
            [],
        )
        .unwrap();
        let rows = ids("SELECT rid FROM rag_vectors");
        let entries = ids("SELECT id FROM rag_vector_text_docsize");
        assert_eq!(rows, entries, "every chunk indexed once, nothing else");
    }

    /// On the writer: the integrity check is an `INSERT` (readers are query-only).
    async fn check_in_step(store: &SqliteStore) {
        store
            .db()
            .write(|c| {
                assert_in_step(c);
                Ok(())
            })
            .await
            .unwrap();
    }

    fn texted(id: &str, doc: &str, seed: u64, body: &str) -> VectorRecord {
        let mut r = record(id, doc, seed);
        r.text = body.to_string();
        r
    }

    fn ids(hits: &[ScoredChunk]) -> Vec<&str> {
        hits.iter().map(|h| h.id.as_str()).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_write_path_keeps_the_index_in_step() {
        let sqlite = SqliteStore::open_in_memory().await.unwrap();
        let store = sqlite.vectors(DIMENSIONS);
        let (t, a) = (TenantId::new("t").unwrap(), AgentId::new("a").unwrap());
        let entry = |hash: &str| DocumentEntry {
            id: "doc".into(),
            title: None,
            content_hash: hash.into(),
            chunks: 2,
            metadata: BTreeMap::new(),
        };
        store
            .upsert(
                &t,
                &a,
                &[
                    texted("x", "loose", 1, "alpha beta"),
                    texted("y", "loose", 2, "gamma"),
                ],
            )
            .await
            .unwrap();
        check_in_step(&sqlite).await;
        store
            .upsert(&t, &a, &[texted("x", "loose", 1, "delta")])
            .await
            .unwrap();
        check_in_step(&sqlite).await;
        store
            .delete(&t, &a, &["y".into(), "absent".into()])
            .await
            .unwrap();
        check_in_step(&sqlite).await;
        for (hash, words) in [("h1", "first version"), ("h2", "second version")] {
            let records = [
                texted("doc#0", "doc", 3, words),
                texted("doc#1", "doc", 4, words),
            ];
            store
                .replace_document(&t, &a, &entry(hash), &records)
                .await
                .unwrap();
            check_in_step(&sqlite).await;
        }
        store.delete_document(&t, &a, "doc").await.unwrap();
        check_in_step(&sqlite).await;
        store.delete(&t, &a, &["x".into()]).await.unwrap();
        check_in_step(&sqlite).await;
    }

    /// A database written at schema v4, before the text index, with two chunks.
    fn write_v4(path: &std::path::Path, records: &[VectorRecord]) {
        let mut conn = Connection::open(path).unwrap();
        configure_writer(&conn, true).unwrap();
        let tx = conn.transaction().unwrap();
        for sql in &MIGRATIONS[..4] {
            tx.execute_batch(sql).unwrap();
        }
        tx.pragma_update(None, "user_version", 4).unwrap();
        for r in records {
            let c = Chunk::of(r).unwrap();
            tx.execute(
                "INSERT INTO rag_vectors \
                     (tenant, agent, id, document_id, norm, vector, text, source, metadata) \
                 VALUES ('acme', 'support', ?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    c.id,
                    c.document_id,
                    c.norm,
                    c.vector,
                    c.text,
                    c.source,
                    c.metadata
                ],
            )
            .unwrap();
            for (k, v) in &c.pairs {
                tx.execute(
                    "INSERT INTO rag_vector_meta (tenant, agent, id, key, value) \
                     VALUES ('acme', 'support', ?1, ?2, ?3)",
                    params![c.id, k, v],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_v4_database_is_upgraded_with_its_chunks_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v4.db");
        let mut old = vec![
            texted("old#0", "old", 1, "The ZX81 sensor reports error E42."),
            texted("old#1", "old", 2, "Invoices are sent monthly."),
        ];
        old[0].metadata.insert("lang".into(), "en".into());
        old[1].metadata.insert("lang".into(), "en".into());
        write_v4(&path, &old);

        let sqlite = SqliteStore::open(&path).await.unwrap();
        check_in_step(&sqlite).await;
        let store = sqlite.vectors(DIMENSIONS);
        let (t, a) = (
            TenantId::new("acme").unwrap(),
            AgentId::new("support").unwrap(),
        );
        let mut request = TextSearchRequest::new(t.clone(), a.clone(), "zx81 invoices", 10);
        request.metadata.insert("lang".into(), "en".into());
        let hits = store.search_text(&request).await.unwrap().unwrap();
        assert_eq!(hits.len(), 2, "the old chunks are indexed: {hits:?}");
        let sensor = hits.iter().find(|h| h.id == "old#0").unwrap();
        assert_eq!(
            (&sensor.text, &sensor.source, &sensor.metadata),
            (&old[0].text, &old[0].source, &old[0].metadata)
        );
        let near = store
            .search(&SearchRequest::new(t.clone(), a.clone(), vector(2), 1))
            .await
            .unwrap();
        assert_eq!(
            ids(&near),
            ["old#1"],
            "vector search still reads the old rows"
        );

        // The upgraded tables take every write.
        store
            .upsert(
                &t,
                &a,
                &[texted("old#1", "old", 2, "Invoices go out weekly.")],
            )
            .await
            .unwrap();
        store
            .upsert(&t, &a, &[texted("new", "new", 3, "A new sensor manual.")])
            .await
            .unwrap();
        assert_eq!(store.delete(&t, &a, &["old#0".into()]).await.unwrap(), 1);
        check_in_step(&sqlite).await;
        let find = |q: &str| TextSearchRequest::new(t.clone(), a.clone(), q, 10);
        let hits = store
            .search_text(&find("sensor weekly monthly"))
            .await
            .unwrap()
            .unwrap();
        let mut found = ids(&hits);
        found.sort_unstable();
        assert_eq!(found, ["new", "old#1"]);
        drop((store, sqlite));

        let sqlite = SqliteStore::open(&path).await.unwrap();
        let store = sqlite.vectors(DIMENSIONS);
        let hits = store.search_text(&find("weekly")).await.unwrap().unwrap();
        assert_eq!(
            ids(&hits),
            ["old#1"],
            "reopened at v5: nothing migrates twice"
        );
        check_in_step(&sqlite).await;
    }

    #[test]
    fn queries_are_quoted_words() {
        assert_eq!(fts_query(""), None);
        assert_eq!(fts_query("  \" ' : * ^ - + () 🚀 \0"), None);
        assert_eq!(
            fts_query("warranty\" OR \"").as_deref(),
            Some("\"warranty\" OR \"OR\"")
        );
        assert_eq!(
            fts_query("Refund refund NEAR/2 w\0rranty").as_deref(),
            Some("\"Refund\" OR \"NEAR\" OR \"2\" OR \"w\" OR \"rranty\"")
        );
        assert_eq!(
            fts_query("garantía 保証").as_deref(),
            Some("\"garantía\" OR \"保証\"")
        );
    }

    #[test]
    fn every_quoted_query_parses() {
        let conn = db();
        let huge: String = (0..5000).map(|i| format!("w{i} ")).collect();
        for query in [
            "AND OR NOT NEAR",
            "col:word {a b}:c",
            "'; DROP TABLE rag_vectors; --",
            "the of and",
            "ǅ ß ﬁ ⅷ ١٢٣ Ⅻ ̈a",
            &huge,
        ] {
            let fts = fts_query(query).unwrap();
            let scan = TextScan {
                tenant: "t",
                agent: "a",
                query: &fts,
                top_k: 10,
                filters: &[],
            };
            assert!(search(&conn, &scan).unwrap().is_empty(), "{query:?}");
        }
    }

    #[test]
    fn the_text_search_starts_from_the_index() {
        let conn = db();
        for filters in [0, 2] {
            let p = plan(&conn, &text_sql(filters));
            assert!(p.contains("VIRTUAL TABLE INDEX"), "{p}");
            assert!(p.contains("INTEGER PRIMARY KEY"), "joined on rid: {p}");
            assert!(!p.contains("SCAN v"), "{p}");
        }
        let p = plan(&conn, UNINDEX_DOCUMENT);
        assert!(p.contains("rag_vectors_by_document"), "{p}");
        let p = plan(&conn, UNINDEX_ID);
        assert!(p.starts_with("SEARCH rag_vectors USING INDEX"), "{p}");
    }
}
