//! `PgVectorStore` passes the vector store conformance suite (`agentkit_rag::testkit::vectors`,
//! text search included), connected as an application role subject to row-level security, each
//! check in a schema of its own; the database itself keeps tenants' vectors, documents and text
//! search apart; the store's own tenant conditions isolate tenants even for a role that bypasses
//! row-level security; and the text index back-fills existing rows and takes long texts. On a
//! server with pgvector (`AGENTKIT_TEST_PGVECTOR_URL`), the store with its HNSW index passes
//! the same suite, walks the index, and still returns k hits under a 1 % filter.
#![allow(clippy::unwrap_used)]

mod common;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use agentkit_core::ErrorKind;
use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{DocumentEntry, SearchRequest, TextSearchRequest, VectorStore};
use agentkit_rag::testkit::text;
use agentkit_rag::testkit::vectors::{self as suite, DIMENSIONS, record};
use agentkit_store_postgres::{
    MIGRATOR, PgVectorExtension, PgVectorStore, PostgresStore, TENANT_SETTING, VectorBackend,
};
use common::TestDb;
use sqlx::{Connection, Postgres, Transaction};

/// A transaction of the application role scoped to `tenant`, as the store scopes its own.
async fn tenant_tx(store: &PostgresStore, tenant: &TenantId) -> Transaction<'static, Postgres> {
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("SELECT set_config($1, $2, true)")
        .bind(TENANT_SETTING)
        .bind(tenant.as_str())
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

fn sqlstate(result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>) -> String {
    match result {
        Ok(done) => panic!("expected an error, the statement succeeded: {done:?}"),
        Err(sqlx::Error::Database(db)) => db.code().map(|c| c.into_owned()).unwrap_or_default(),
        Err(e) => panic!("expected a database error, got: {e}"),
    }
}

fn entry(id: &str, hash: &str, chunks: usize) -> DocumentEntry {
    DocumentEntry {
        id: id.into(),
        title: None,
        content_hash: hash.into(),
        chunks,
        metadata: BTreeMap::new(),
    }
}

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_store_conforms() {
    // Probe once: skip (or fail in CI) without a server.
    let Some(probe) = TestDb::from_env("vectors::vector_store_conforms").await else {
        return;
    };
    probe.cleanup().await;
    let dbs: Arc<Mutex<Vec<TestDb>>> = Arc::default();
    let stores: Arc<Mutex<Vec<PostgresStore>>> = Arc::default();
    suite::run_all(|| {
        let (dbs, stores) = (dbs.clone(), stores.clone());
        async move {
            let db = TestDb::from_env("vectors::vector_store_conforms")
                .await
                .unwrap();
            let store = db.app_store().await;
            assert!(
                store.enforces_row_level_security().await.unwrap(),
                "the tests must run as a role subject to row-level security"
            );
            let vectors = store.vectors(DIMENSIONS).await.unwrap();
            dbs.lock().unwrap().push(db);
            stores.lock().unwrap().push(store);
            Arc::new(vectors) as Arc<dyn VectorStore>
        }
    })
    .await;
    let stores: Vec<_> = std::mem::take(&mut *stores.lock().unwrap());
    for s in stores {
        s.pool().close().await;
    }
    let dbs: Vec<_> = std::mem::take(&mut *dbs.lock().unwrap());
    for db in dbs {
        db.cleanup().await;
    }
}

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_keeps_vectors_and_documents_apart() {
    let Some(db) = TestDb::from_env("vectors::row_level_security").await else {
        return;
    };
    let store = db.app_store().await;
    assert!(store.enforces_row_level_security().await.unwrap());
    let vectors = store.vectors(DIMENSIONS).await.unwrap();
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let agent = AgentId::from_static("support");
    // The same chunk and document ids in both tenants.
    for (tenant, seed) in [(&a, 1), (&b, 2)] {
        vectors
            .replace_document(
                tenant,
                &agent,
                &entry("doc", tenant.as_str(), 2),
                &[
                    record("doc#0", "doc", seed),
                    record("doc#1", "doc", seed + 10),
                ],
            )
            .await
            .unwrap();
    }
    vectors
        .upsert(&b, &agent, &[record("b-only", "loose", 3)])
        .await
        .unwrap();

    // As tenant A, queries without any tenant filter see only A's rows.
    let mut tx = tenant_tx(&store, &a).await;
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT tenant, id FROM rag_vectors ORDER BY id")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(
        rows,
        [
            (a.to_string(), "doc#0".to_string()),
            (a.to_string(), "doc#1".to_string())
        ],
        "A sees exactly its own chunks"
    );
    let docs: Vec<(String, String)> =
        sqlx::query_as("SELECT tenant, content_hash FROM rag_documents")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(
        docs,
        [(a.to_string(), a.to_string())],
        "A sees only its entry"
    );
    let filtered: i64 = sqlx::query_scalar("SELECT count(*) FROM rag_vectors WHERE tenant = $1")
        .bind(b.as_str())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(filtered, 0, "asking for B's rows by name finds none");

    // Writing a row of tenant B as tenant A is refused by the policy's WITH CHECK.
    let insert = sqlx::query(
        "INSERT INTO rag_vectors (tenant, agent, id, document_id, vector, norm, text, source) \
         VALUES ($1, 'support', 'forged', 'doc', '{1,0,0,0,0,0,0,0}', 1, 'forged', '{}')",
    )
    .bind(b.as_str())
    .execute(&mut *tx)
    .await;
    assert_eq!(
        sqlstate(insert),
        "42501",
        "inserting a row of another tenant must violate the row-level security policy"
    );
    tx.rollback().await.unwrap();

    // Changing B's rows as A finds nothing to change.
    let mut tx = tenant_tx(&store, &a).await;
    let updated = sqlx::query("UPDATE rag_vectors SET text = 'hijacked' WHERE tenant = $1")
        .bind(b.as_str())
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    let deleted = sqlx::query("DELETE FROM rag_documents WHERE tenant = $1")
        .bind(b.as_str())
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    tx.commit().await.unwrap();
    assert_eq!((updated, deleted), (0, 0), "A cannot touch B's rows");
    let b_hits = vectors
        .search(&SearchRequest::new(
            b.clone(),
            agent.clone(),
            suite::vector(2),
            10,
        ))
        .await
        .unwrap();
    assert_eq!(b_hits.len(), 3);
    assert!(b_hits.iter().all(|h| h.text.starts_with("text of")));
    assert!(vectors.document(&b, &agent, "doc").await.unwrap().is_some());

    // Without the setting, nothing at all is visible.
    let mut conn = store.pool().acquire().await.unwrap();
    let visible: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM rag_vectors) + (SELECT count(*) FROM rag_documents)",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(visible, 0, "no tenant set: no rows");
    drop(conn);

    // Text search: the same word in both tenants, and a word only B has.
    for (tenant, id, own_word) in [(&a, "a-note", "alphaonly"), (&b, "b-note", "bravoonly")] {
        let mut note = record(id, "notes", 9);
        note.text = format!("quarterly forecast {own_word}");
        vectors.upsert(tenant, &agent, &[note]).await.unwrap();
    }
    let text_ids = |hits: Vec<agentkit_core::retrieval::ScoredChunk>| -> Vec<String> {
        hits.into_iter().map(|h| h.id).collect()
    };
    let a_text = vectors
        .search_text(&TextSearchRequest::new(
            a.clone(),
            agent.clone(),
            "quarterly bravoonly",
            10,
        ))
        .await
        .unwrap()
        .expect("a text index");
    assert_eq!(
        text_ids(a_text),
        ["a-note"],
        "A's text search finds only A's note"
    );
    let b_text = vectors
        .search_text(&TextSearchRequest::new(
            b.clone(),
            agent.clone(),
            "bravoonly",
            10,
        ))
        .await
        .unwrap()
        .expect("a text index");
    assert_eq!(text_ids(b_text), ["b-note"], "B finds its own word");
    // A text query as A without any tenant or agent condition (what the store's query would
    // be with its WHERE missing) matches only A's rows.
    let mut tx = tenant_tx(&store, &a).await;
    let matched: Vec<(String, String)> = sqlx::query_as(
        "SELECT tenant, id FROM rag_vectors \
         WHERE text_search @@ to_tsquery('english', 'quarterly | bravoonly') ORDER BY id",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert_eq!(
        matched,
        [(a.to_string(), "a-note".to_string())],
        "row-level security hides B's matching rows from an unfiltered text query"
    );
    let theirs: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rag_vectors WHERE text_search @@ to_tsquery('english', $1)",
    )
    .bind("bravoonly")
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(theirs, 0, "B's word is found nowhere A can see");
    tx.rollback().await.unwrap();
    let mut conn = store.pool().acquire().await.unwrap();
    let visible: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM rag_vectors \
         WHERE text_search @@ to_tsquery('english', 'quarterly')",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(visible, 0, "no tenant set: no text matches");
    drop(conn);

    // Both tables have row-level security enabled and forced, with a policy.
    let mut admin = db.admin_conn().await;
    let tables: Vec<(String, bool, bool, i64)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity, \
         (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname LIKE 'rag\\_%' ORDER BY 1",
    )
    .bind(&db.schema)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            ("rag_documents".to_string(), true, true, 1),
            ("rag_vectors".to_string(), true, true, 1)
        ]
    );
    admin.close().await.ok();

    store.pool().close().await;
    db.cleanup().await;
}

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backend_follows_the_pgvector_extension_as_found() {
    let Some(db) = TestDb::from_env("vectors::backend").await else {
        return;
    };
    let store = db.app_store().await;
    let vectors: PgVectorStore = store.vectors(DIMENSIONS).await.unwrap();
    let (installed, available): (Option<String>, bool) = sqlx::query_as(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'vector'), \
         EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    let expected = match (installed, available) {
        (Some(version), _) => PgVectorExtension::Installed { version },
        (None, true) => PgVectorExtension::Available,
        (None, false) => PgVectorExtension::Absent,
    };
    assert_eq!(vectors.pgvector(), &expected);
    // The exact scan without the extension; its index where it is installed.
    let backend = match expected {
        PgVectorExtension::Installed { .. } => VectorBackend::PgVector,
        _ => VectorBackend::Exact,
    };
    assert_eq!(vectors.backend(), backend);
    eprintln!(
        "pgvector on this server: {expected:?}; backend: {:?}",
        vectors.backend()
    );

    for bad in [0, usize::MAX] {
        let err = store
            .vectors(bad)
            .await
            .expect_err("an impossible dimension");
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{bad}: {err}");
    }

    // Zero vectors score 0 (on either side), never NULL or NaN.
    let (t, a) = (TenantId::generate(), AgentId::from_static("support"));
    let mut zero = record("zero", "d", 1);
    zero.vector = vec![0.0; DIMENSIONS];
    vectors
        .upsert(&t, &a, &[zero, record("one", "d", 1)])
        .await
        .unwrap();
    let hits = vectors
        .search(&SearchRequest::new(
            t.clone(),
            a.clone(),
            suite::vector(1),
            5,
        ))
        .await
        .unwrap();
    let scores: Vec<_> = hits.iter().map(|h| (h.id.as_str(), h.score)).collect();
    assert_eq!(scores.len(), 2);
    assert_eq!(scores[0].0, "one");
    assert!((scores[0].1 - 1.0).abs() < 1e-4, "{scores:?}");
    assert_eq!(scores[1], ("zero", 0.0));
    let hits = vectors
        .search(&SearchRequest::new(
            t.clone(),
            a.clone(),
            vec![0.0; DIMENSIONS],
            5,
        ))
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.score == 0.0), "{hits:?}");
    assert_eq!(hits.len(), 2);

    // A store of another dimension over the same tables never returns these records.
    let other = store.vectors(DIMENSIONS + 1).await.unwrap();
    let hits = other
        .search(&SearchRequest::new(
            t.clone(),
            a.clone(),
            vec![1.0; DIMENSIONS + 1],
            5,
        ))
        .await
        .unwrap();
    assert!(hits.is_empty(), "{hits:?}");

    // A batch holding one id twice keeps the last (what upserting in order leaves).
    let mut first = record("dup", "d", 5);
    first.text = "first".into();
    let mut second = record("dup", "d", 6);
    second.text = "second".into();
    vectors.upsert(&t, &a, &[first, second]).await.unwrap();
    let hit = vectors
        .search(&SearchRequest::new(
            t.clone(),
            a.clone(),
            suite::vector(6),
            1,
        ))
        .await
        .unwrap()
        .remove(0);
    assert_eq!((hit.id.as_str(), hit.text.as_str()), ("dup", "second"));

    // Text Postgres cannot store (a NUL byte) is a typed error, and writes nothing.
    let mut nul = record("nul", "d", 7);
    nul.text = "a\0b".into();
    let err = vectors
        .upsert(&t, &a, &[record("ok", "d", 8), nul])
        .await
        .expect_err("a NUL byte");
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let hits = vectors
        .search(&SearchRequest::new(
            t.clone(),
            a.clone(),
            suite::vector(8),
            10,
        ))
        .await
        .unwrap();
    assert!(
        !hits.iter().any(|h| h.id == "ok"),
        "the batch wrote nothing"
    );

    store.pool().close().await;
    db.cleanup().await;
}

/// A store connected as the superuser, which row-level security does not restrict: only the
/// store's own tenant and agent conditions keep the checks' tenants apart.
async fn superuser_vectors(db: &TestDb) -> (PostgresStore, PgVectorStore) {
    let pool = PostgresStore::pool_options()
        .connect_with(db.admin_schema_options())
        .await
        .unwrap();
    let store = PostgresStore::from_pool(pool).await.unwrap();
    assert!(
        !store.enforces_row_level_security().await.unwrap(),
        "this test needs a role that bypasses row-level security"
    );
    let vectors = store.vectors(DIMENSIONS).await.unwrap();
    (store, vectors)
}

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stores_own_conditions_isolate_tenants_without_row_level_security() {
    for check in ["vectors", "text"] {
        let Some(db) = TestDb::from_env("vectors::isolation_without_rls").await else {
            return;
        };
        let (store, vectors) = superuser_vectors(&db).await;
        let vectors: Arc<dyn VectorStore> = Arc::new(vectors);
        match check {
            "vectors" => suite::tenant_isolation(vectors).await,
            _ => text::text_search_isolation(vectors).await,
        }
        store.pool().close().await;
        db.cleanup().await;
    }
}

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_text_index_back_fills_and_takes_long_texts() {
    let Some(db) = TestDb::from_env("vectors::text_index").await else {
        return;
    };
    let (t, a) = (TenantId::generate(), AgentId::from_static("support"));
    let find = |vectors: PgVectorStore, query: &'static str| {
        let request = TextSearchRequest::new(t.clone(), a.clone(), query, 10);
        async move {
            vectors
                .search_text(&request)
                .await
                .unwrap()
                .expect("a text index")
                .into_iter()
                .map(|h| (h.id, h.text))
                .collect::<Vec<_>>()
        }
    };

    // A schema migrated up to 0005 (before the text index), with a record in it.
    let pool = db.app_pool().await;
    let before_text_index = sqlx::migrate::Migrator {
        migrations: Cow::Owned(MIGRATOR.iter().filter(|m| m.version < 6).cloned().collect()),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    };
    before_text_index.run(&pool).await.unwrap();
    let old = PostgresStore::from_pool_unmigrated(pool.clone());
    let mut early = record("early", "d", 1);
    early.text = "Written before the index existed: flux capacitor".into();
    old.vectors(DIMENSIONS)
        .await
        .unwrap()
        .upsert(&t, &a, &[early.clone()])
        .await
        .unwrap();
    // The full migration adds the generated column, which fills in the existing row.
    let store = PostgresStore::from_pool(pool).await.unwrap();
    let vectors = store.vectors(DIMENSIONS).await.unwrap();
    assert_eq!(
        find(vectors.clone(), "capacitors").await,
        [("early".to_string(), early.text.clone())],
        "a row written before migration 0006 is found by its words"
    );

    // A long text of distinct words (its full tsvector would exceed Postgres' 1 MB limit) is
    // stored whole; its words within the first 100000 characters are searchable.
    let long: String = (0..200_000u32).map(|i| format!("w{i:x} ")).collect();
    assert!(long.len() > 1_000_000);
    let mut big = record("big", "d", 2);
    big.text = format!("needle {long} haystackend");
    vectors.upsert(&t, &a, &[big.clone()]).await.unwrap();
    assert_eq!(
        find(vectors.clone(), "needle").await,
        [("big".to_string(), big.text.clone())],
        "the long text is found by an early word and comes back whole"
    );
    assert!(
        find(vectors.clone(), "haystackend").await.is_empty(),
        "words past the first 100000 characters are not indexed"
    );

    store.pool().close().await;
    db.cleanup().await;
}

/// A test schema and role on the pgvector server, the extension created in its database.
async fn pgvector_db(test: &str) -> Option<TestDb> {
    let url = common::pgvector_url(test)?;
    let db = TestDb::create(&url).await;
    let mut admin = db.admin_conn().await;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS vector")
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
    Some(db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pgvector_store_conforms() {
    let Some(probe) = pgvector_db("vectors::the_pgvector_store_conforms").await else {
        return;
    };
    probe.cleanup().await;
    let dbs: Arc<Mutex<Vec<TestDb>>> = Arc::default();
    let stores: Arc<Mutex<Vec<PostgresStore>>> = Arc::default();
    suite::run_all(|| {
        let (dbs, stores) = (dbs.clone(), stores.clone());
        async move {
            let db = pgvector_db("vectors::the_pgvector_store_conforms")
                .await
                .unwrap();
            let store = db.app_store().await;
            let vectors = store.vectors(DIMENSIONS).await.unwrap();
            assert_eq!(vectors.backend(), VectorBackend::PgVector);
            dbs.lock().unwrap().push(db);
            stores.lock().unwrap().push(store);
            Arc::new(vectors) as Arc<dyn VectorStore>
        }
    })
    .await;
    let stores: Vec<_> = std::mem::take(&mut *stores.lock().unwrap());
    for s in stores {
        s.pool().close().await;
    }
    let dbs: Vec<_> = std::mem::take(&mut *dbs.lock().unwrap());
    for db in dbs {
        db.cleanup().await;
    }
}

/// 384-dimensional vectors in tight clusters, like sentence embeddings of a topical corpus.
fn clustered(i: usize) -> Vec<f32> {
    let mut seed = (i / 20) as u64 * 2_654_435_761 + 1;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 10_000) as f32 / 10_000.0 - 0.5
    };
    let centre: Vec<f32> = (0..384).map(|_| next()).collect();
    centre
        .iter()
        .enumerate()
        .map(|(d, c)| c + ((i * 7919 + d * 104_729) % 1009) as f32 / 1009.0 * 0.2)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgvector_searches_walk_the_index_and_filters_still_return_k() {
    let Some(db) = pgvector_db("vectors::pgvector_index").await else {
        return;
    };
    let store = db.app_store().await;
    let vectors = store.vectors(384).await.unwrap();
    assert_eq!(vectors.backend(), VectorBackend::PgVector);
    let (acme, globex) = (
        TenantId::new("acme").unwrap(),
        TenantId::new("globex").unwrap(),
    );
    let agent = AgentId::new("support").unwrap();
    let records: Vec<_> = (0..3000)
        .map(|i| {
            let mut r = record(&format!("c{i:04}"), "doc", i as u64);
            r.vector = clustered(i);
            // 1 % of the records are `rare`.
            if i % 100 == 7 {
                r.metadata.insert("kind".into(), "rare".into());
            }
            r
        })
        .collect();
    for batch in records.chunks(500) {
        vectors.upsert(&acme, &agent, batch).await.unwrap();
    }
    // Another tenant's copy of the nearest vector never shows.
    let mut theirs = record("theirs", "globex-doc", 1);
    theirs.vector = clustered(1234);
    vectors.upsert(&globex, &agent, &[theirs]).await.unwrap();
    let mut admin = db.admin_conn().await;
    sqlx::query(&format!("ANALYZE \"{}\".rag_vectors", db.schema))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();

    let query = SearchRequest::new(acme.clone(), agent.clone(), clustered(1234), 10);
    let plan = vectors.explain_search(&query).await.unwrap().unwrap();
    assert!(plan.contains("rag_vectors_hnsw_cosine_384"), "{plan}");
    // Another store over the same tables finds the index made.
    let again = store.vectors(384).await.unwrap();
    assert_eq!(again.backend(), VectorBackend::PgVector);
    let hits = vectors.search(&query).await.unwrap();
    assert_eq!(hits.len(), 10);
    assert_eq!(hits[0].id, "c1234", "the query's own vector is nearest");
    assert!((hits[0].score - 1.0).abs() < 1e-4, "{}", hits[0].score);
    assert!(
        hits.iter().all(|h| h.id.starts_with('c')),
        "only acme's records"
    );
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    // The exact scan's top 10 (computed here) against the index's: the clusters are tight,
    // so the index finds the same ones.
    let mut exact: Vec<(f32, &str)> = records
        .iter()
        .map(|r| (cosine(&r.vector, &query.vector), r.id.as_str()))
        .collect();
    exact.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    let want: Vec<&str> = exact.iter().take(10).map(|(_, id)| *id).collect();
    let got: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    let found = want.iter().filter(|id| got.contains(id)).count();
    assert!(found >= 9, "recall@10 {found}/10: {got:?} vs {want:?}");

    // 1 % selectivity: the index's 40 candidates hold few `rare` ones; still 10 hits.
    let mut filtered = SearchRequest::new(acme.clone(), agent.clone(), clustered(1234), 10);
    filtered.metadata.insert("kind".into(), "rare".into());
    let hits = vectors.search(&filtered).await.unwrap();
    assert_eq!(hits.len(), 10, "{hits:?}");
    assert!(
        hits.iter()
            .all(|h| h.metadata.get("kind").map(String::as_str) == Some("rare"))
    );

    store.pool().close().await;
    db.cleanup().await;
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}
