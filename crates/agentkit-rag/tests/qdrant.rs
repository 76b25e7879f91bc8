//! `QdrantStore` against an in-process Qdrant (`qdrant_server`: qdrant-client's own gRPC
//! services on an in-memory database, with an isolation guard and fault injection): the vector
//! store conformance suite, tenant isolation, collection checks, interrupted replacements and
//! deletions, an unreachable server, ties at the cut.

#![cfg(feature = "qdrant")]

mod qdrant_server;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentkit_core::id::{AgentId, TenantId};
use agentkit_core::retrieval::{DocumentEntry, SearchRequest, VectorRecord, VectorStore};
use agentkit_core::{Error, ErrorKind};
use agentkit_rag::qdrant::{Qdrant, QdrantStore};
use agentkit_rag::testkit::vectors::{DIMENSIONS, record, run_all, vector};
use qdrant_client::QdrantError;
use qdrant_client::qdrant::payload_index_params::IndexParams;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::points_selector::PointsSelectorOneOf;
use qdrant_client::qdrant::vectors_config::Config;
use qdrant_client::qdrant::{
    Condition, CountPoints, CreateCollection, DeletePoints, Distance, Filter, PointId, PointStruct,
    PointsSelector, Query, QueryPoints, ScrollPoints, SearchPoints, UpsertPoints, Value,
    VectorParams, VectorParamsMap, VectorsConfig,
};
use qdrant_server::TestServer;
use tonic::Code;

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("a valid tenant id")
}

fn agent(name: &str) -> AgentId {
    AgentId::new(name).expect("a valid agent id")
}

fn entry(id: &str, hash: &str, chunks: usize) -> DocumentEntry {
    DocumentEntry {
        id: id.to_string(),
        title: Some(format!("{id}.md")),
        content_hash: hash.to_string(),
        chunks,
        metadata: BTreeMap::from([("kind".to_string(), "guide".to_string())]),
    }
}

/// A collection name no other test of this binary uses.
fn fresh_collection(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn connect(server: &TestServer, collection: &str) -> QdrantStore {
    QdrantStore::connect(&server.url(), collection, DIMENSIONS)
        .await
        .expect("connect to the test server")
}

fn raw_client(server: &TestServer) -> Qdrant {
    Qdrant::from_url(&server.url())
        .skip_compatibility_check()
        .build()
        .expect("a client")
}

/// The gRPC code of a client error.
fn code(e: QdrantError) -> (Code, String) {
    match e {
        QdrantError::ResponseError { status } => (status.code(), status.message().to_string()),
        other => panic!("not a gRPC status: {other}"),
    }
}

fn keyword(key: &str, value: &str) -> Condition {
    Condition::matches(key, value.to_string())
}

/// The ids of every hit of a wide search.
async fn chunk_ids(store: &QdrantStore, t: &TenantId, a: &AgentId) -> Vec<String> {
    let hits = store
        .search(&SearchRequest::new(t.clone(), a.clone(), vector(0), 1000))
        .await
        .expect("search");
    let mut ids: Vec<String> = hits.into_iter().map(|h| h.id).collect();
    ids.sort();
    ids
}

fn ids_of(records: &[VectorRecord]) -> Vec<String> {
    let mut ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    ids
}

fn count_of(calls: &[&str], rpc: &str) -> usize {
    calls.iter().filter(|c| **c == rpc).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_conforms() {
    let server = TestServer::start().await;
    let url = server.url();
    let stores = std::sync::atomic::AtomicUsize::new(0);
    run_all(|| {
        stores.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (url, name) = (url.clone(), fresh_collection("conformance"));
        async move {
            Arc::new(
                QdrantStore::connect(&url, &name, DIMENSIONS)
                    .await
                    .expect("connect"),
            ) as Arc<dyn VectorStore>
        }
    })
    .await;
    let calls = server.control().calls();
    assert_eq!(
        count_of(&calls, "create_collection"),
        stores.into_inner(),
        "a collection per check"
    );
    assert!(count_of(&calls, "query") > 0);
    assert_eq!(
        server.control().exact_queries(),
        0,
        "HNSW search by default"
    );
    assert!(server.control().failures().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_conforms_with_exact_search() {
    let server = TestServer::start().await;
    let url = server.url();
    run_all(|| {
        let (url, name) = (url.clone(), fresh_collection("conformance-exact"));
        async move {
            Arc::new(
                QdrantStore::connect(&url, &name, DIMENSIONS)
                    .await
                    .expect("connect")
                    .exact(true),
            ) as Arc<dyn VectorStore>
        }
    })
    .await;
    let queries = count_of(&server.control().calls(), "query");
    assert!(queries > 0);
    assert_eq!(
        server.control().exact_queries(),
        queries,
        "every query asks for the exact scan"
    );
}

/// The guard itself: without it, the isolation checks below would prove little.
#[tokio::test]
async fn the_isolation_guard_refuses_unscoped_requests() {
    let server = TestServer::start().await;
    let name = fresh_collection("guard");
    let store = connect(&server, &name).await;
    let client = store.client();
    let only_tenant = Filter::must([keyword("tenant", "t1")]);
    let scoped = Filter::must([keyword("tenant", "t1"), keyword("agent", "a1")]);
    let in_should = Filter::should([keyword("tenant", "t1"), keyword("agent", "a1")]);
    let scroll = |filter: Option<Filter>| ScrollPoints {
        collection_name: name.clone(),
        filter,
        ..ScrollPoints::default()
    };
    for filter in [None, Some(only_tenant.clone()), Some(in_should)] {
        let err = client.scroll(scroll(filter)).await.expect_err("refused");
        let (code, message) = code(err);
        assert_eq!(code, Code::InvalidArgument, "{message}");
        assert!(message.contains("isolation guard"), "{message}");
    }
    client
        .scroll(scroll(Some(scoped.clone())))
        .await
        .expect("a scoped scroll");
    let err = client
        .count(CountPoints {
            collection_name: name.clone(),
            filter: Some(only_tenant),
            ..CountPoints::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(code(err).0, Code::InvalidArgument);
    let err = client
        .query(QueryPoints {
            collection_name: name.clone(),
            query: Some(Query::from(vector(1))),
            filter: Some(Filter::must([keyword("agent", "a1")])),
            ..QueryPoints::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(code(err).0, Code::InvalidArgument);
    let err = client
        .delete_points(DeletePoints {
            collection_name: name.clone(),
            points: Some(PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Filter(Filter::must([keyword(
                    "id", "x",
                )]))),
            }),
            ..DeletePoints::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(code(err).0, Code::InvalidArgument);
}

#[tokio::test]
async fn the_same_chunk_id_in_two_tenants_is_two_points() {
    let server = TestServer::start().await;
    let name = fresh_collection("tenants");
    let store = connect(&server, &name).await;
    let (ta, tb, a) = (tenant("tenant-a"), tenant("tenant-b"), agent("support"));
    let mut mine = record("shared", "doc", 1);
    mine.text = "tenant A's".into();
    let mut theirs = record("shared", "doc", 1);
    theirs.text = "tenant B's".into();
    store.upsert(&ta, &a, &[mine]).await.expect("upsert");
    store.upsert(&tb, &a, &[theirs]).await.expect("upsert");

    let client = store.client();
    let info = client.collection_info(name.clone()).await.expect("info");
    assert_eq!(
        info.result.and_then(|i| i.points_count),
        Some(2),
        "two points"
    );
    let point_of = |t: &'static str| {
        let name = name.clone();
        async move {
            let page = client
                .scroll(ScrollPoints {
                    collection_name: name,
                    filter: Some(Filter::must([
                        keyword("tenant", t),
                        keyword("agent", "support"),
                    ])),
                    with_payload: Some(true.into()),
                    ..ScrollPoints::default()
                })
                .await
                .expect("scroll");
            assert_eq!(page.result.len(), 1, "one point in {t}");
            page.result[0].id.clone()
        }
    };
    assert_ne!(point_of("tenant-a").await, point_of("tenant-b").await);

    // Deleting in A leaves B's point.
    let gone = store
        .delete(&ta, &a, &["shared".to_string()])
        .await
        .expect("delete");
    assert_eq!(gone, 1);
    let hits = store
        .search(&SearchRequest::new(tb.clone(), a.clone(), vector(1), 5))
        .await
        .expect("search");
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].text, "tenant B's");
    assert!(chunk_ids(&store, &ta, &a).await.is_empty());

    // Documents too: deleting A's leaves B's entry and chunks.
    for (t, seed) in [(&ta, 10), (&tb, 20)] {
        store
            .replace_document(
                t,
                &a,
                &entry("guide", "h", 1),
                &[record("guide#0", "guide", seed)],
            )
            .await
            .expect("replace");
    }
    let removed = store
        .delete_document(&ta, &a, "guide")
        .await
        .expect("delete_document");
    assert_eq!(removed.map(|e| e.content_hash), Some("h".to_string()));
    assert_eq!(
        store.document(&tb, &a, "guide").await.expect("document"),
        Some(entry("guide", "h", 1))
    );
    assert_eq!(chunk_ids(&store, &tb, &a).await, ["guide#0", "shared"]);
    assert!(
        store
            .documents(&ta, &a)
            .await
            .expect("documents")
            .is_empty()
    );
}

#[tokio::test]
async fn connecting_creates_the_collection_and_its_indexes_once() {
    let server = TestServer::start().await;
    let name = fresh_collection("indexes");
    let store = connect(&server, &name).await;
    let calls = server.control().calls();
    assert_eq!(
        calls[..3],
        ["collection_exists", "create_collection", "collection_info"]
    );
    assert_eq!(count_of(&calls, "create_field_index"), 7);
    let info = store
        .client()
        .collection_info(name.clone())
        .await
        .expect("info")
        .result
        .expect("info");
    let mut fields: Vec<&str> = info.payload_schema.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "agent",
            "document_id",
            "generation",
            "id",
            "kind",
            "metadata_pairs",
            "tenant"
        ]
    );
    let is_tenant = |field: &str| match info.payload_schema[field]
        .params
        .as_ref()
        .and_then(|p| p.index_params.as_ref())
    {
        Some(IndexParams::KeywordIndexParams(k)) => k.is_tenant,
        _ => None,
    };
    assert_eq!(is_tenant("tenant"), Some(true));
    assert_eq!(is_tenant("agent"), Some(false));

    let (t, a) = (tenant("t1"), agent("a1"));
    store
        .upsert(&t, &a, &[record("x", "d", 1)])
        .await
        .expect("upsert");
    server.control().clear_calls();
    let again = connect(&server, &name).await;
    assert_eq!(
        server.control().calls(),
        ["collection_exists", "collection_info"],
        "an existing, complete collection is used as it is"
    );
    assert_eq!(chunk_ids(&again, &t, &a).await, ["x"]);

    // A collection made elsewhere, with a `tenant` index that is not a tenant index: the
    // missing indexes are added and `tenant` is redone.
    let other = fresh_collection("made-elsewhere");
    let client = raw_client(&server);
    client
        .create_collection(CreateCollection {
            collection_name: other.clone(),
            vectors_config: Some(VectorsConfig {
                config: Some(Config::Params(VectorParams {
                    size: DIMENSIONS as u64,
                    distance: Distance::Cosine as i32,
                    ..VectorParams::default()
                })),
            }),
            ..CreateCollection::default()
        })
        .await
        .expect("create");
    client
        .create_field_index(qdrant_client::qdrant::CreateFieldIndexCollection {
            collection_name: other.clone(),
            field_name: "tenant".into(),
            field_type: Some(qdrant_client::qdrant::FieldType::Keyword as i32),
            ..Default::default()
        })
        .await
        .expect("index");
    server.control().clear_calls();
    connect(&server, &other).await;
    assert_eq!(
        count_of(&server.control().calls(), "create_field_index"),
        7,
        "six missing indexes and the tenant index redone"
    );
}

#[tokio::test]
async fn an_existing_collection_of_other_dimensions_is_refused() {
    let server = TestServer::start().await;
    let name = fresh_collection("dims");
    connect(&server, &name).await;
    let err = QdrantStore::connect(&server.url(), &name, DIMENSIONS * 2)
        .await
        .expect_err("16 dimensions on an 8-dimension collection");
    assert!(
        matches!(err, Error::DimensionMismatch { expected, got } if expected == DIMENSIONS * 2 && got == DIMENSIONS),
        "{err}"
    );
}

#[tokio::test]
async fn a_collection_of_another_distance_or_named_vectors_is_refused() {
    let server = TestServer::start().await;
    let client = raw_client(&server);
    let euclid = fresh_collection("euclid");
    let named = fresh_collection("named");
    let params = |distance: Distance| VectorParams {
        size: DIMENSIONS as u64,
        distance: distance as i32,
        ..VectorParams::default()
    };
    client
        .create_collection(CreateCollection {
            collection_name: euclid.clone(),
            vectors_config: Some(VectorsConfig {
                config: Some(Config::Params(params(Distance::Euclid))),
            }),
            ..CreateCollection::default()
        })
        .await
        .expect("create");
    client
        .create_collection(CreateCollection {
            collection_name: named.clone(),
            vectors_config: Some(VectorsConfig {
                config: Some(Config::ParamsMap(VectorParamsMap {
                    map: [("dense".to_string(), params(Distance::Cosine))].into(),
                })),
            }),
            ..CreateCollection::default()
        })
        .await
        .expect("create");
    let err = QdrantStore::connect(&server.url(), &euclid, DIMENSIONS)
        .await
        .expect_err("Euclid");
    assert!(
        matches!(&err, Error::InvalidConfig(m) if m.contains("Euclid")),
        "{err}"
    );
    let err = QdrantStore::connect(&server.url(), &named, DIMENSIONS)
        .await
        .expect_err("named vectors");
    assert!(matches!(err, Error::InvalidConfig(_)), "{err}");
    assert_eq!(
        count_of(&server.control().calls(), "create_field_index"),
        0,
        "nothing is changed on a refused collection"
    );
}

/// `replace_document` sends: 1. the pending entry, 2. the new chunks, 3. the delete of the
/// other generations, 4. the ready entry. The server goes down at each in turn.
#[tokio::test]
async fn an_interrupted_replacement_is_reported_and_repaired() {
    const STEPS: [&str; 4] = ["upsert", "upsert", "delete", "upsert"];
    let server = TestServer::start().await;
    let (t, a) = (tenant("t1"), agent("a1"));
    let v1: Vec<_> = (0..3)
        .map(|i| record(&format!("guide#{i}"), "guide", i))
        .collect();
    let v2: Vec<_> = (0..2)
        .map(|i| record(&format!("guide#v2-{i}"), "guide", 20 + i))
        .collect();
    let other = [record("other#0", "other", 9)];
    for step in 1..=STEPS.len() {
        let store = connect(&server, &fresh_collection("replace")).await;
        store
            .replace_document(&t, &a, &entry("guide", "h1", 3), &v1)
            .await
            .expect("first version");
        store
            .replace_document(&t, &a, &entry("other", "h9", 1), &other)
            .await
            .expect("another document");
        let control = server.control();
        control.clear_calls();
        control.down_from(step);
        let err = store
            .replace_document(&t, &a, &entry("guide", "h2", 2), &v2)
            .await
            .expect_err("the server is down");
        control.heal();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "step {step}: {err}");
        assert!(err.is_retryable());
        // The steps up to the failed one (resent once by the client), nothing after it.
        let mut sent = STEPS[..step].to_vec();
        sent.push(STEPS[step - 1]);
        assert_eq!(control.calls(), sent, "step {step}");

        let found = store
            .document(&t, &a, "guide")
            .await
            .expect("document")
            .expect("an entry");
        if step == 1 {
            assert_eq!(found, entry("guide", "h1", 3), "nothing was written");
        } else {
            assert_eq!(
                found.content_hash, "",
                "step {step}: a half-done replacement claims no content"
            );
            let listed = store.documents(&t, &a).await.expect("documents");
            assert_eq!(listed[0].content_hash, "", "documents() agrees");
        }
        let mut expected = match step {
            1 | 2 => ids_of(&v1),
            3 => [ids_of(&v1), ids_of(&v2)].concat(),
            _ => ids_of(&v2),
        };
        expected.push("other#0".into());
        expected.sort();
        assert_eq!(chunk_ids(&store, &t, &a).await, expected, "step {step}");

        // Running it again repairs it.
        store
            .replace_document(&t, &a, &entry("guide", "h2", 2), &v2)
            .await
            .expect("the second run");
        assert_eq!(
            store.document(&t, &a, "guide").await.expect("document"),
            Some(entry("guide", "h2", 2))
        );
        let mut expected = ids_of(&v2);
        expected.push("other#0".into());
        assert_eq!(
            chunk_ids(&store, &t, &a).await,
            expected,
            "step {step}: exactly the new chunks"
        );
        assert_eq!(
            store.document(&t, &a, "other").await.expect("document"),
            Some(entry("other", "h9", 1))
        );
    }
}

/// `delete_document` sends: 1. the scroll for the entry, 2. the pending entry, 3. the delete of
/// the chunks, 4. the delete of the entry.
#[tokio::test]
async fn an_interrupted_deletion_is_reported_and_finished_by_the_next() {
    const STEPS: [&str; 4] = ["scroll", "upsert", "delete", "delete"];
    let server = TestServer::start().await;
    let (t, a) = (tenant("t1"), agent("a1"));
    let v1: Vec<_> = (0..3)
        .map(|i| record(&format!("guide#{i}"), "guide", i))
        .collect();
    for step in 1..=STEPS.len() {
        let store = connect(&server, &fresh_collection("delete")).await;
        store
            .replace_document(&t, &a, &entry("guide", "h1", 3), &v1)
            .await
            .expect("replace");
        let control = server.control();
        control.clear_calls();
        control.down_from(step);
        let err = store
            .delete_document(&t, &a, "guide")
            .await
            .expect_err("the server is down");
        control.heal();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "step {step}: {err}");
        let mut sent = STEPS[..step].to_vec();
        sent.push(STEPS[step - 1]);
        assert_eq!(control.calls(), sent, "step {step}");

        let found = store
            .document(&t, &a, "guide")
            .await
            .expect("document")
            .expect("the entry is still there");
        let hash = if step <= 2 { "h1" } else { "" };
        assert_eq!(found.content_hash, hash, "step {step}");
        let chunks = if step <= 3 { ids_of(&v1) } else { Vec::new() };
        assert_eq!(chunk_ids(&store, &t, &a).await, chunks, "step {step}");

        let removed = store
            .delete_document(&t, &a, "guide")
            .await
            .expect("the second run");
        assert_eq!(removed.map(|e| e.content_hash), Some(hash.to_string()));
        assert!(
            store
                .document(&t, &a, "guide")
                .await
                .expect("document")
                .is_none()
        );
        assert!(chunk_ids(&store, &t, &a).await.is_empty());
    }
}

#[tokio::test]
async fn one_unavailable_points_rpc_is_resent_by_the_client() {
    let server = TestServer::start().await;
    let name = fresh_collection("transient");
    let store = connect(&server, &name).await;
    let (t, a) = (tenant("t1"), agent("a1"));
    store
        .upsert(&t, &a, &[record("x", "d", 1)])
        .await
        .expect("upsert");
    let control = server.control();
    control.clear_calls();
    control.fail_nth(1);
    let hits = store
        .search(&SearchRequest::new(t, a, vector(1), 3))
        .await
        .expect("resent once, then answered");
    assert_eq!(hits.len(), 1);
    assert_eq!(control.calls(), ["query", "query"]);
    assert_eq!(control.failures(), ["query"]);

    // Collections RPCs are not resent.
    control.fail_next("collection_exists");
    let err = QdrantStore::connect(&server.url(), &name, DIMENSIONS)
        .await
        .expect_err("unavailable");
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
}

#[tokio::test]
async fn a_server_that_is_down_is_unavailable() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let err = QdrantStore::connect(&format!("http://127.0.0.1:{port}"), "docs", DIMENSIONS)
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    assert!(err.is_retryable());

    // A server that goes down during a session: injected, then for real.
    let mut server = TestServer::start().await;
    let store = connect(&server, &fresh_collection("down")).await;
    let (t, a) = (tenant("t1"), agent("a1"));
    store
        .upsert(&t, &a, &[record("x", "d", 1)])
        .await
        .expect("upsert");
    server.control().down_from(1);
    let request = SearchRequest::new(t.clone(), a.clone(), vector(1), 3);
    let err = store.search(&request).await.expect_err("down");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
    let err = store.documents(&t, &a).await.expect_err("down");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    server.control().heal();
    assert_eq!(store.search(&request).await.expect("back").len(), 1);
    server.stop().await;
    let err = store.search(&request).await.expect_err("stopped");
    assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
}

#[tokio::test]
async fn ties_at_the_cut_come_back_ordered_by_id() {
    let server = TestServer::start().await;
    let name = fresh_collection("ties");
    let store = connect(&server, &name).await;
    let (t, a) = (tenant("t1"), agent("a1"));
    // 30 records with one vector, and 10 others.
    let mut records: Vec<_> = (0..30)
        .map(|i| VectorRecord {
            id: format!("twin-{i:02}"),
            ..record("twin", "twins", 1000)
        })
        .collect();
    records.extend((0..10).map(|i| record(&format!("other-{i}"), "others", i)));
    store.upsert(&t, &a, &records).await.expect("upsert");

    // What the server returns for the store's first request (top_k 3 plus a margin of 8) is
    // not the three smallest ids: ties come back in the server's order.
    let raw = store
        .client()
        .query(QueryPoints {
            collection_name: name.clone(),
            query: Some(Query::from(vector(1000))),
            filter: Some(Filter::must([
                keyword("tenant", "t1"),
                keyword("agent", "a1"),
            ])),
            limit: Some(11),
            with_payload: Some(true.into()),
            ..QueryPoints::default()
        })
        .await
        .expect("query");
    let mut first: Vec<String> = raw
        .result
        .iter()
        .map(|p| match p.payload.get("id").and_then(|v| v.kind.clone()) {
            Some(qdrant_client::qdrant::value::Kind::StringValue(s)) => s,
            _ => panic!("a payload id"),
        })
        .collect();
    first.sort();
    first.truncate(3);
    assert_ne!(
        first,
        ["twin-00", "twin-01", "twin-02"],
        "an adversarial order"
    );

    // The first request asks for k + 8; while its last hit ties with the k-th, twice as many.
    for (k, queries) in [(3, 3), (12, 2), (30, 1)] {
        server.control().clear_calls();
        let hits = store
            .search(&SearchRequest::new(t.clone(), a.clone(), vector(1000), k))
            .await
            .expect("search");
        let expected: Vec<String> = (0..k).map(|i| format!("twin-{i:02}")).collect();
        let got: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
        assert_eq!(got, expected, "top {k}: ties by id");
        assert!(hits.iter().all(|h| (h.score - 1.0).abs() < 1e-4));
        assert_eq!(
            count_of(&server.control().calls(), "query"),
            queries,
            "top {k}: asked again while the last hit tied"
        );
    }
}

#[tokio::test]
async fn documents_are_listed_across_scroll_pages() {
    let server = TestServer::start().await;
    let store = connect(&server, &fresh_collection("pages")).await;
    let (t, a) = (tenant("t1"), agent("a1"));
    for i in 0..260 {
        store
            .replace_document(&t, &a, &entry(&format!("doc-{i:03}"), "h", 0), &[])
            .await
            .expect("replace");
    }
    server.control().clear_calls();
    let listed = store.documents(&t, &a).await.expect("documents");
    assert_eq!(listed.len(), 260);
    assert!(listed.windows(2).all(|w| w[0].id < w[1].id), "by id");
    assert_eq!(
        server.control().calls(),
        ["scroll", "scroll"],
        "two pages of 256"
    );
}

/// The test server's own semantics, on the requests the store sends.
#[tokio::test]
async fn the_test_server_speaks_qdrant() {
    let server = TestServer::start().await;
    let client = raw_client(&server);
    let name = fresh_collection("server");
    let create = CreateCollection {
        collection_name: name.clone(),
        vectors_config: Some(VectorsConfig {
            config: Some(Config::Params(VectorParams {
                size: 3,
                distance: Distance::Cosine as i32,
                ..VectorParams::default()
            })),
        }),
        ..CreateCollection::default()
    };
    client
        .create_collection(create.clone())
        .await
        .expect("create");
    let (c, message) = code(
        client
            .create_collection(create)
            .await
            .expect_err("duplicate"),
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(message.contains("already exists"), "{message}");
    assert!(
        client
            .collection_exists(name.clone())
            .await
            .expect("exists")
    );
    assert!(!client.collection_exists("nope").await.expect("exists"));
    let (c, _) = code(client.collection_info("nope").await.expect_err("missing"));
    assert_eq!(c, Code::NotFound);

    let point = |n: u64, v: Vec<f32>, tag: &str| PointStruct {
        id: Some(PointId::from(n)),
        payload: [
            ("tenant".to_string(), Value::from("t")),
            ("agent".to_string(), Value::from("a")),
            ("tag".to_string(), Value::from(tag)),
            (
                "tags".to_string(),
                Value::from(vec![tag.to_string(), "all".to_string()]),
            ),
        ]
        .into(),
        vectors: Some(v.into()),
    };
    let upsert = |points: Vec<PointStruct>| UpsertPoints {
        collection_name: name.clone(),
        wait: Some(true),
        points,
        ..UpsertPoints::default()
    };
    // Ids 25 down to 1, to check that scrolls come back in id order.
    let points = (1..=25u64)
        .rev()
        .map(|n| {
            point(
                n,
                vec![n as f32, 1.0, 0.0],
                if n % 2 == 0 { "even" } else { "odd" },
            )
        })
        .collect();
    client.upsert_points(upsert(points)).await.expect("upsert");
    let (c, message) = code(
        client
            .upsert_points(upsert(vec![
                point(1, vec![1.0, 0.0], "odd"),
                point(99, vec![1.0; 3], "odd"),
            ]))
            .await
            .expect_err("two dimensions"),
    );
    assert_eq!(c, Code::InvalidArgument);
    assert!(message.contains("expected dim: 3, got 2"), "{message}");
    let scope = || vec![keyword("tenant", "t"), keyword("agent", "a")];
    let count = |filter: Filter| {
        let name = name.clone();
        let client = &client;
        async move {
            client
                .count(CountPoints {
                    collection_name: name,
                    filter: Some(filter),
                    exact: Some(true),
                    ..CountPoints::default()
                })
                .await
                .expect("count")
                .result
                .expect("a count")
                .count
        }
    };
    assert_eq!(
        count(Filter::must(scope())).await,
        25,
        "the refused batch wrote nothing"
    );
    let with = |extra: Vec<Condition>, must_not: Vec<Condition>, should: Vec<Condition>| Filter {
        must: [scope(), extra].concat(),
        must_not,
        should,
        min_should: None,
    };
    assert_eq!(
        count(with(vec![keyword("tag", "even")], vec![], vec![])).await,
        12
    );
    assert_eq!(
        count(with(vec![keyword("tags", "odd")], vec![], vec![])).await,
        13,
        "lists"
    );
    assert_eq!(
        count(with(vec![keyword("tags", "all")], vec![], vec![])).await,
        25
    );
    let any = Condition::matches("tag", vec!["even".to_string(), "odd".to_string()]);
    assert_eq!(
        count(with(vec![any], vec![], vec![])).await,
        25,
        "keywords: any"
    );
    assert_eq!(
        count(with(vec![], vec![keyword("tag", "even")], vec![])).await,
        13
    );
    let should = vec![keyword("tag", "none"), keyword("tag", "odd")];
    assert_eq!(count(with(vec![], vec![], should)).await, 13, "one should");
    assert_eq!(
        count(with(vec![keyword("missing", "x")], vec![], vec![])).await,
        0
    );

    // Scroll pages: in id order, the offset inclusive, the next page's first id.
    let mut offset = None;
    let mut pages = Vec::new();
    loop {
        let page = client
            .scroll(ScrollPoints {
                collection_name: name.clone(),
                filter: Some(Filter::must(scope())),
                offset: offset.take(),
                limit: Some(10),
                ..ScrollPoints::default()
            })
            .await
            .expect("scroll");
        let ids: Vec<u64> = page
            .result
            .iter()
            .map(
                |p| match p.id.as_ref().and_then(|i| i.point_id_options.clone()) {
                    Some(PointIdOptions::Num(n)) => n,
                    _ => panic!("numeric ids"),
                },
            )
            .collect();
        pages.push(ids);
        match page.next_page_offset {
            Some(next) => offset = Some(next),
            None => break,
        }
    }
    assert_eq!(
        pages,
        [
            (1..=10).collect::<Vec<u64>>(),
            (11..=20).collect(),
            (21..=25).collect()
        ]
    );

    // Nearest: cosine scores, threshold, limit, filter.
    let hits = client
        .query(QueryPoints {
            collection_name: name.clone(),
            query: Some(Query::from(vec![2.0, 0.0, 0.0])),
            filter: Some(with(vec![keyword("tag", "odd")], vec![], vec![])),
            score_threshold: Some(0.99),
            limit: Some(3),
            ..QueryPoints::default()
        })
        .await
        .expect("query")
        .result;
    let ids: Vec<_> = hits.iter().filter_map(|h| h.id.clone()).collect();
    assert_eq!(
        ids,
        [PointId::from(25), PointId::from(23), PointId::from(21)]
    );
    let cosine_25 = 25.0 / (25.0f32 * 25.0 + 1.0).sqrt();
    assert!((hits[0].score - cosine_25).abs() < 1e-6);
    assert!(
        hits.iter().all(|h| h.payload.is_empty()),
        "no payload unless asked"
    );
    let (c, _) = code(
        client
            .query(QueryPoints {
                collection_name: name.clone(),
                query: Some(Query::from(vec![1.0; 4])),
                filter: Some(Filter::must(scope())),
                ..QueryPoints::default()
            })
            .await
            .expect_err("four dimensions"),
    );
    assert_eq!(c, Code::InvalidArgument);

    // Deletes by filter; the other RPCs are not served.
    client
        .delete_points(DeletePoints {
            collection_name: name.clone(),
            wait: Some(true),
            points: Some(PointsSelector {
                points_selector_one_of: Some(PointsSelectorOneOf::Filter(with(
                    vec![keyword("tag", "even")],
                    vec![],
                    vec![],
                ))),
            }),
            ..DeletePoints::default()
        })
        .await
        .expect("delete");
    assert_eq!(count(Filter::must(scope())).await, 13);
    let (c, _) = code(
        client
            .search_points(SearchPoints {
                collection_name: name.clone(),
                vector: vec![1.0, 0.0, 0.0],
                limit: 3,
                ..SearchPoints::default()
            })
            .await
            .expect_err("not served"),
    );
    assert_eq!(c, Code::Unimplemented);
    assert_eq!(server.control().calls().last(), Some(&"points.search"));
}
