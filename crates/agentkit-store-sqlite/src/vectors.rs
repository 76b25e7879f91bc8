//! [`SqliteVectorStore`]: the core [`VectorStore`] contract in the store's SQLite file (schema
//! v4: `rag_vectors`, `rag_vector_meta`, `rag_documents`; v5: the chunks' `rid` key and the FTS5
//! text index `rag_vector_text`).
//!
//! A search is an exact scan of the tenant and agent's vectors, narrowed in SQL by the metadata
//! filters (each pair is a `rag_vector_meta` row, found through its index), scored in Rust with
//! the core [`dot`] against the normalised query divided by the stored norm (the cosine every
//! backend reports) and kept in a [`TopK`]; only the winners' text, citation data and metadata
//! are then read, in the same snapshot. Every write is one `BEGIN IMMEDIATE` transaction: a
//! batch, a document replacement (old chunks out, new chunks and the entry in) or a document
//! deletion lands whole or not at all, its text index entries included.
//!
//! Keyword search ([`VectorStore::search_text`], BM25 over FTS5) lives in [`text`]: every
//! write path here adds, replaces or removes a chunk's index entry in the transaction that
//! writes its row.

mod text;

use std::collections::BTreeMap;
use std::fmt;

use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{
    DocumentEntry, ScoredChunk, SearchRequest, SourceRef, TextSearchRequest, TopK, VectorRecord,
    VectorStore, check_records, check_vector, dot, norm,
};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params, params_from_iter};

use crate::SqliteStore;
use crate::codec::{from_json, int, to_json, uint};
use crate::error::{corrupt, db_err};
use crate::sql::{col, immediate, text};

/// Knowledge vectors of one dimension, kept in a [`SqliteStore`]'s database beside its other
/// tables. Obtained with [`SqliteStore::vectors`].
///
/// Implements [`VectorStore`]: every call is for one tenant and agent, whose records no call
/// for another pair reads, changes or deletes. Vectors of another length than the store's
/// dimension are refused with [`Error::DimensionMismatch`] (a stored vector of another length,
/// written by a store of another dimension on the same file, makes a search of its tenant and
/// agent fail the same way). Cheap to clone; clones share the database connections.
#[derive(Clone)]
pub struct SqliteVectorStore {
    store: SqliteStore,
    dims: usize,
}

impl SqliteVectorStore {
    pub(crate) fn new(store: SqliteStore, dimensions: usize) -> Self {
        Self {
            store,
            dims: dimensions,
        }
    }

    /// The store whose database holds the vectors.
    pub fn store(&self) -> &SqliteStore {
        &self.store
    }
}

impl fmt::Debug for SqliteVectorStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteVectorStore")
            .field("store", &self.store)
            .field("dimensions", &self.dims)
            .finish()
    }
}

/// A record as column values, made before the writer is taken.
struct Chunk {
    id: String,
    document_id: String,
    norm: f64,
    vector: Vec<u8>,
    text: String,
    source: String,
    metadata: String,
    pairs: Vec<(String, String)>,
}

impl Chunk {
    fn of(r: &VectorRecord) -> Result<Self> {
        Ok(Self {
            id: r.id.clone(),
            document_id: r.source.document_id.clone(),
            norm: f64::from(norm(&r.vector)),
            vector: encode(&r.vector),
            text: r.text.clone(),
            source: to_json(&r.source)?,
            metadata: to_json(&r.metadata)?,
            pairs: r
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        })
    }
}

/// A vector as its BLOB: little-endian `f32`s.
fn encode(v: &[f32]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(v.len() * 4);
    for x in v {
        blob.extend_from_slice(&x.to_le_bytes());
    }
    blob
}

/// Decodes a BLOB into `out` (whose length it must have, four bytes per element).
fn decode_into(blob: &[u8], out: &mut [f32]) -> Result<()> {
    if blob.len() != out.len() * 4 {
        return Err(Error::DimensionMismatch {
            expected: out.len(),
            got: blob.len() / 4,
        });
    }
    for (x, b) in out.iter_mut().zip(blob.chunks_exact(4)) {
        *x = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(())
}

/// A document entry as column values.
struct Entry {
    id: String,
    title: Option<String>,
    content_hash: String,
    chunks: i64,
    metadata: String,
}

impl Entry {
    fn of(d: &DocumentEntry) -> Result<Self> {
        if d.id.is_empty() {
            return Err(Error::InvalidInput("a document needs an id".into()));
        }
        Ok(Self {
            id: d.id.clone(),
            title: d.title.clone(),
            content_hash: d.content_hash.clone(),
            chunks: int(u64::try_from(d.chunks).unwrap_or(u64::MAX), "chunk count")?,
            metadata: to_json(&d.metadata)?,
        })
    }
}

#[async_trait]
impl VectorStore for SqliteVectorStore {
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
        let chunks = records.iter().map(Chunk::of).collect::<Result<Vec<_>>>()?;
        let (tenant, agent) = (tenant.clone(), agent.clone());
        self.store
            .db()
            .write(move |c| {
                let tx = immediate(c)?;
                put_chunks(&tx, tenant.as_str(), agent.as_str(), &chunks)?;
                tx.commit().map_err(db_err)
            })
            .await
    }

    async fn search(&self, request: &SearchRequest) -> Result<Vec<ScoredChunk>> {
        check_vector(self.dims, &request.vector)?;
        if request.top_k == 0 {
            return Ok(Vec::new());
        }
        let length = norm(&request.vector);
        let query: Vec<f32> = if length == 0.0 {
            request.vector.clone()
        } else {
            request.vector.iter().map(|x| x / length).collect()
        };
        let (tenant, agent) = (request.tenant.clone(), request.agent.clone());
        let filters: Vec<(String, String)> = request
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let (top_k, min_score) = (request.top_k, request.min_score);
        self.store
            .db()
            .read(move |c| {
                let scan = Scan {
                    tenant: tenant.as_str(),
                    agent: agent.as_str(),
                    query: &query,
                    top_k,
                    filters: &filters,
                    min_score,
                };
                search(c, &scan)
            })
            .await
    }

    async fn search_text(&self, request: &TextSearchRequest) -> Result<Option<Vec<ScoredChunk>>> {
        let Some(query) = text::fts_query(&request.query) else {
            return Ok(Some(Vec::new()));
        };
        if request.top_k == 0 {
            return Ok(Some(Vec::new()));
        }
        let (tenant, agent) = (request.tenant.clone(), request.agent.clone());
        let filters: Vec<(String, String)> = request
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let top_k = request.top_k;
        self.store
            .db()
            .read(move |c| {
                let scan = text::TextScan {
                    tenant: tenant.as_str(),
                    agent: agent.as_str(),
                    query: &query,
                    top_k,
                    filters: &filters,
                };
                text::search(c, &scan).map(Some)
            })
            .await
    }

    async fn delete(&self, tenant: &TenantId, agent: &AgentId, ids: &[String]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let (tenant, agent, ids) = (tenant.clone(), agent.clone(), ids.to_vec());
        self.store
            .db()
            .write(move |c| {
                let tx = immediate(c)?;
                let n = delete_ids(&tx, tenant.as_str(), agent.as_str(), &ids)?;
                tx.commit().map_err(db_err)?;
                Ok(n)
            })
            .await
    }

    async fn replace_document(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        document: &DocumentEntry,
        records: &[VectorRecord],
    ) -> Result<()> {
        let entry = Entry::of(document)?;
        check_records(self.dims, Some(&document.id), records)?;
        let chunks = records.iter().map(Chunk::of).collect::<Result<Vec<_>>>()?;
        let (tenant, agent) = (tenant.clone(), agent.clone());
        self.store
            .db()
            .write(move |c| {
                let (t, a) = (tenant.as_str(), agent.as_str());
                let tx = immediate(c)?;
                delete_document_chunks(&tx, t, a, &entry.id)?;
                put_chunks(&tx, t, a, &chunks)?;
                tx.prepare_cached(
                    "INSERT INTO rag_documents \
                         (tenant, agent, id, title, content_hash, chunks, metadata) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (tenant, agent, id) DO UPDATE SET \
                         title = excluded.title, content_hash = excluded.content_hash, \
                         chunks = excluded.chunks, metadata = excluded.metadata",
                )
                .and_then(|mut st| {
                    st.execute(params![
                        t,
                        a,
                        entry.id,
                        entry.title,
                        entry.content_hash,
                        entry.chunks,
                        entry.metadata
                    ])
                })
                .map_err(db_err)?;
                tx.commit().map_err(db_err)
            })
            .await
    }

    async fn document(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        id: &str,
    ) -> Result<Option<DocumentEntry>> {
        let (tenant, agent, id) = (tenant.clone(), agent.clone(), id.to_owned());
        self.store
            .db()
            .read(move |c| get_document(c, tenant.as_str(), agent.as_str(), &id))
            .await
    }

    async fn documents(&self, tenant: &TenantId, agent: &AgentId) -> Result<Vec<DocumentEntry>> {
        let (tenant, agent) = (tenant.clone(), agent.clone());
        self.store
            .db()
            .read(move |c| {
                let mut st = c
                    .prepare_cached(&format!(
                        "SELECT {DOCUMENT_COLUMNS} FROM rag_documents \
                         WHERE tenant = ?1 AND agent = ?2 ORDER BY id"
                    ))
                    .map_err(db_err)?;
                let mut rows = st
                    .query(params![tenant.as_str(), agent.as_str()])
                    .map_err(db_err)?;
                let mut out = Vec::new();
                while let Some(row) = rows.next().map_err(db_err)? {
                    out.push(document_of(row)?);
                }
                Ok(out)
            })
            .await
    }

    async fn delete_document(
        &self,
        tenant: &TenantId,
        agent: &AgentId,
        id: &str,
    ) -> Result<Option<DocumentEntry>> {
        let (tenant, agent, id) = (tenant.clone(), agent.clone(), id.to_owned());
        self.store
            .db()
            .write(move |c| {
                let (t, a) = (tenant.as_str(), agent.as_str());
                let tx = immediate(c)?;
                let entry = get_document(&tx, t, a, &id)?;
                delete_document_chunks(&tx, t, a, &id)?;
                tx.prepare_cached(
                    "DELETE FROM rag_documents WHERE tenant = ?1 AND agent = ?2 AND id = ?3",
                )
                .and_then(|mut st| st.execute(params![t, a, id]))
                .map_err(db_err)?;
                tx.commit().map_err(db_err)?;
                Ok(entry)
            })
            .await
    }
}

/// Writes chunks (already checked), each replacing any of its id with its metadata rows and
/// its text index entry.
fn put_chunks(tx: &Transaction<'_>, tenant: &str, agent: &str, chunks: &[Chunk]) -> Result<()> {
    let mut clear = tx
        .prepare_cached("DELETE FROM rag_vector_meta WHERE tenant = ?1 AND agent = ?2 AND id = ?3")
        .map_err(db_err)?;
    let mut put = tx
        .prepare_cached(
            "INSERT INTO rag_vectors \
                 (tenant, agent, id, document_id, norm, vector, text, source, metadata) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
             ON CONFLICT (tenant, agent, id) DO UPDATE SET \
                 document_id = excluded.document_id, norm = excluded.norm, \
                 vector = excluded.vector, text = excluded.text, source = excluded.source, \
                 metadata = excluded.metadata \
             RETURNING rid",
        )
        .map_err(db_err)?;
    let mut pair = tx
        .prepare_cached(
            "INSERT INTO rag_vector_meta (tenant, agent, id, key, value) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(db_err)?;
    for c in chunks {
        clear
            .execute(params![tenant, agent, c.id])
            .map_err(db_err)?;
        text::unindex(tx, tenant, agent, &c.id)?;
        let rid: i64 = put
            .query_row(
                params![
                    tenant,
                    agent,
                    c.id,
                    c.document_id,
                    c.norm,
                    c.vector,
                    c.text,
                    c.source,
                    c.metadata
                ],
                |row| row.get(0),
            )
            .map_err(db_err)?;
        text::index(tx, rid, &c.text)?;
        for (k, v) in &c.pairs {
            pair.execute(params![tenant, agent, c.id, k, v])
                .map_err(db_err)?;
        }
    }
    Ok(())
}

/// Removes records by id with their metadata rows and text index entries; how many existed.
fn delete_ids(tx: &Transaction<'_>, tenant: &str, agent: &str, ids: &[String]) -> Result<usize> {
    let mut clear = tx
        .prepare_cached("DELETE FROM rag_vector_meta WHERE tenant = ?1 AND agent = ?2 AND id = ?3")
        .map_err(db_err)?;
    let mut remove = tx
        .prepare_cached("DELETE FROM rag_vectors WHERE tenant = ?1 AND agent = ?2 AND id = ?3")
        .map_err(db_err)?;
    let mut n = 0;
    for id in ids {
        clear.execute(params![tenant, agent, id]).map_err(db_err)?;
        text::unindex(tx, tenant, agent, id)?;
        n += remove.execute(params![tenant, agent, id]).map_err(db_err)?;
    }
    Ok(n)
}

/// Removes every record of a document with their metadata rows and text index entries.
fn delete_document_chunks(
    tx: &Transaction<'_>,
    tenant: &str,
    agent: &str,
    document: &str,
) -> Result<()> {
    text::unindex_document(tx, tenant, agent, document)?;
    tx.prepare_cached(
        "DELETE FROM rag_vector_meta WHERE tenant = ?1 AND agent = ?2 AND id IN \
         (SELECT id FROM rag_vectors WHERE tenant = ?1 AND agent = ?2 AND document_id = ?3)",
    )
    .and_then(|mut st| st.execute(params![tenant, agent, document]))
    .map_err(db_err)?;
    tx.prepare_cached(
        "DELETE FROM rag_vectors WHERE tenant = ?1 AND agent = ?2 AND document_id = ?3",
    )
    .and_then(|mut st| st.execute(params![tenant, agent, document]))
    .map_err(db_err)?;
    Ok(())
}

const DOCUMENT_COLUMNS: &str = "id, title, content_hash, chunks, metadata";

fn document_of(row: &Row<'_>) -> Result<DocumentEntry> {
    let chunks = uint(col(row, 3)?, "document chunk count")?;
    Ok(DocumentEntry {
        id: col(row, 0)?,
        title: col(row, 1)?,
        content_hash: col(row, 2)?,
        chunks: usize::try_from(chunks).map_err(|_| corrupt("document chunk count", chunks))?,
        metadata: from_json(text(row, 4)?, "document metadata")?,
    })
}

fn get_document(
    c: &Connection,
    tenant: &str,
    agent: &str,
    id: &str,
) -> Result<Option<DocumentEntry>> {
    let mut st = c
        .prepare_cached(&format!(
            "SELECT {DOCUMENT_COLUMNS} FROM rag_documents \
             WHERE tenant = ?1 AND agent = ?2 AND id = ?3"
        ))
        .map_err(db_err)?;
    let row = st
        .query(params![tenant, agent, id])
        .map_err(db_err)?
        .next()
        .map_err(db_err)?
        .map(document_of)
        .transpose()?;
    Ok(row)
}

/// What one search asks of the database.
struct Scan<'a> {
    tenant: &'a str,
    agent: &'a str,
    /// The query, normalised (a zero query stays zero).
    query: &'a [f32],
    top_k: usize,
    filters: &'a [(String, String)],
    min_score: Option<f32>,
}

/// The scan's SQL: the pair's vectors and norms, narrowed by one indexed `IN` per filter pair
/// (parameters `?1` tenant, `?2` agent, then key and value of each pair).
fn scan_sql(filters: usize) -> String {
    let mut sql =
        String::from("SELECT id, norm, vector FROM rag_vectors WHERE tenant = ?1 AND agent = ?2");
    for i in 0..filters {
        sql.push_str(&format!(
            " AND id IN (SELECT id FROM rag_vector_meta \
             WHERE tenant = ?1 AND agent = ?2 AND key = ?{} AND value = ?{})",
            3 + 2 * i,
            4 + 2 * i
        ));
    }
    sql
}

/// The best `top_k` records matching every filter, exactly, read in one snapshot.
fn search(c: &Connection, q: &Scan<'_>) -> Result<Vec<ScoredChunk>> {
    // One read transaction: the winners are loaded from the snapshot they were scored in.
    let tx = c.unchecked_transaction().map_err(db_err)?;
    let mut top = TopK::new(q.top_k);
    {
        let mut st = tx
            .prepare_cached(&scan_sql(q.filters.len()))
            .map_err(db_err)?;
        let mut values = Vec::with_capacity(2 + 2 * q.filters.len());
        values.extend([q.tenant, q.agent]);
        for (k, v) in q.filters {
            values.extend([k.as_str(), v.as_str()]);
        }
        let mut rows = st.query(params_from_iter(values)).map_err(db_err)?;
        let min = q.min_score.unwrap_or(f32::NEG_INFINITY);
        let mut vector = vec![0.0f32; q.query.len()];
        while let Some(row) = rows.next().map_err(db_err)? {
            let length: f64 = col(row, 1)?;
            let blob = row
                .get_ref(2)
                .and_then(|v| v.as_blob().map_err(Into::into))
                .map_err(db_err)?;
            decode_into(blob, &mut vector)?;
            let score = if length == 0.0 {
                0.0
            } else {
                dot(q.query, &vector) / length as f32
            };
            if score < min {
                continue;
            }
            let id = text(row, 0)?;
            if top.admits(score, id) {
                top.push(score, id.to_owned(), ());
            }
        }
    }
    let mut load = tx
        .prepare_cached(
            "SELECT text, source, metadata FROM rag_vectors \
             WHERE tenant = ?1 AND agent = ?2 AND id = ?3",
        )
        .map_err(db_err)?;
    let mut hits = Vec::new();
    for (score, id, ()) in top.into_sorted() {
        let found = load
            .query_row(params![q.tenant, q.agent, id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .optional()
            .map_err(db_err)?;
        // Same snapshot as the scan: every winner is still there.
        let Some((text, source, metadata)) = found else {
            return Err(Error::Internal(format!(
                "sqlite vector store: chunk `{id}` vanished between its scan and its load"
            )));
        };
        let source: SourceRef = from_json(&source, "vector source")?;
        let metadata: BTreeMap<String, String> = from_json(&metadata, "vector metadata")?;
        hits.push(ScoredChunk {
            id,
            score,
            text,
            source,
            metadata,
        });
    }
    drop(load);
    tx.commit().map_err(db_err)?;
    Ok(hits)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::sql::testing::{db, plan};

    #[test]
    fn blobs_round_trip_and_refuse_another_length() {
        let v = [1.5f32, -0.25, 3.0e-7, f32::MAX];
        let mut out = [0.0f32; 4];
        decode_into(&encode(&v), &mut out).unwrap();
        assert_eq!(out, v);
        let mut short = [0.0f32; 3];
        let err = decode_into(&encode(&v), &mut short).unwrap_err();
        assert!(
            matches!(
                err,
                Error::DimensionMismatch {
                    expected: 3,
                    got: 4
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn searches_and_writes_use_the_indexes() {
        let conn = db();
        let unfiltered = plan(&conn, &scan_sql(0));
        assert!(!unfiltered.starts_with("SCAN"), "{unfiltered}");
        let filtered = plan(&conn, &scan_sql(2));
        assert!(
            filtered.contains("rag_vector_meta_by_pair"),
            "filters read the pair index: {filtered}"
        );
        assert!(!filtered.starts_with("SCAN"), "{filtered}");
        let by_doc = plan(
            &conn,
            "DELETE FROM rag_vectors WHERE tenant = ?1 AND agent = ?2 AND document_id = ?3",
        );
        assert!(by_doc.contains("rag_vectors_by_document"), "{by_doc}");
    }
}
