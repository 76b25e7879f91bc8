//! `SqliteStore` on the hot paths of a turn, each next to a bare rusqlite baseline doing the same
//! SQL work on the same kind of database file (WAL, `synchronous=NORMAL`): pre-serialized rows,
//! one prepared statement per step, one transaction per store call, on the calling thread.
//!
//! `cargo bench -p agentkit-store-sqlite -- --warm-up-time 1 --measurement-time 3`
//!
//! `vector_search_5000x384` scans 5,000 knowledge chunks (384-dimension vectors, ~700-character
//! texts) for the top 5, against a bare rusqlite scan of a table of the same shape.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::path::Path;

use agentkit_core::id::{AgentId, ApprovalId, RunId, SessionId, TenantId};
use agentkit_core::message::{Message, ToolCall};
use agentkit_core::policy::Priority;
use agentkit_core::store::{
    ApprovalDecision, ApprovalRequest, ApprovalStore, MessageWindow, RunRecord, RunStore,
    SessionRecord, SessionStore, UsageEvent, UsageKind, UsageStore,
};
use agentkit_store_sqlite::SqliteStore;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use rusqlite::{Connection, params};
use serde_json::json;

fn turn(n: u64) -> Vec<Message> {
    vec![
        Message::user(format!("turn {n}: where is order {n}?")),
        Message::Assistant {
            content: String::new(),
            tool_calls: vec![ToolCall::new(
                format!("call-{n}"),
                "orders.get",
                json!({"order": n}),
            )],
        },
        Message::tool_result(
            format!("call-{n}"),
            "orders.get",
            json!({"order": n, "status": "shipped"}).to_string(),
        ),
        Message::assistant(format!("Order {n} has shipped.")),
    ]
}

/// The bare baseline's database: the same kind of file and the same table shapes (keys and
/// indexes), without the store's triggers and foreign keys.
fn bare(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get::<_, String>(0))
        .unwrap();
    conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
    conn.execute_batch(
        "CREATE TABLE messages (tenant TEXT NOT NULL, session TEXT NOT NULL, seq INTEGER NOT NULL,
             run TEXT, created_at INTEGER NOT NULL, message TEXT NOT NULL,
             PRIMARY KEY (tenant, session, seq)) STRICT;
         CREATE TABLE usage_events (tenant TEXT NOT NULL, id TEXT NOT NULL, agent TEXT NOT NULL,
             session TEXT, run TEXT, kind TEXT NOT NULL, resource TEXT, quantity INTEGER NOT NULL,
             cost_nanos INTEGER, price_version TEXT, at INTEGER NOT NULL,
             PRIMARY KEY (tenant, id)) STRICT;
         CREATE INDEX usage_events_by_time ON usage_events (tenant, at);
         CREATE TABLE approvals (tenant TEXT NOT NULL, id TEXT NOT NULL, status TEXT NOT NULL,
             priority INTEGER NOT NULL, created_at INTEGER NOT NULL, decided_at INTEGER,
             body TEXT NOT NULL, PRIMARY KEY (tenant, id)) STRICT;",
    )
    .unwrap();
    conn
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(SqliteStore::open(dir.path().join("store.db")))
        .unwrap();
    let mut conn = bare(&dir.path().join("bare.db"));

    let tenant = TenantId::from_static("acme");
    let agent = AgentId::from_static("support");
    let session = SessionRecord::new(tenant.clone(), SessionId::generate(), agent.clone());
    let run = RunRecord::new(&agentkit_core::scope::Scope::new(
        tenant.clone(),
        agent.clone(),
        session.id.clone(),
        RunId::generate(),
    ));
    rt.block_on(async {
        store
            .create_session(&session.tenant, &session)
            .await
            .unwrap();
        store.create_run(&run.tenant, &run).await.unwrap();
    });

    // --- append a turn's 4 messages --------------------------------------------------------
    let messages = turn(7);
    let rows: Vec<String> = messages
        .iter()
        .map(|m| serde_json::to_string(m).unwrap())
        .collect();
    let mut group = c.benchmark_group("append_turn_4_messages");
    group.bench_function("sqlite_store", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                store
                    .append_messages(&tenant, &session.id, Some(&run.id), &messages)
                    .await
                    .unwrap(),
            )
        });
    });
    let mut seq = 0i64;
    group.bench_function("bare_rusqlite", |b| {
        b.iter(|| {
            let tx = conn.transaction().unwrap();
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO messages (tenant, session, seq, run, created_at, message) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )
                    .unwrap();
                for row in &rows {
                    seq += 1;
                    insert
                        .execute(params!["acme", "s-append", seq, "r", 0i64, row])
                        .unwrap();
                }
            }
            tx.commit().unwrap();
        });
    });
    group.finish();

    // --- load a 20-message window from a 1,000-message session ---------------------------
    let long = SessionRecord::new(tenant.clone(), SessionId::generate(), agent.clone());
    rt.block_on(async {
        store.create_session(&long.tenant, &long).await.unwrap();
        for n in 0..250 {
            store
                .append_messages(&tenant, &long.id, Some(&run.id), &turn(n))
                .await
                .unwrap();
        }
    });
    {
        let tx = conn.transaction().unwrap();
        for n in 0..250u64 {
            for (i, m) in turn(n).iter().enumerate() {
                tx.execute(
                    "INSERT INTO messages (tenant, session, seq, run, created_at, message) \
                     VALUES ('acme', 's-long', ?1, 'r', 0, ?2)",
                    params![
                        i64::try_from(n * 4 + i as u64 + 1).unwrap(),
                        serde_json::to_string(m).unwrap()
                    ],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let mut group = c.benchmark_group("load_window_20_of_1000");
    group.bench_function("sqlite_store", |b| {
        b.to_async(&rt).iter(|| async {
            let window = store
                .load_messages(&tenant, &long.id, MessageWindow::Last(20))
                .await
                .unwrap();
            assert_eq!(window.len(), 20);
            black_box(window)
        });
    });
    group.bench_function("bare_rusqlite", |b| {
        b.iter(|| {
            let mut st = conn
                .prepare_cached(
                    "SELECT seq, run, created_at, message FROM messages \
                     WHERE tenant = ?1 AND session = ?2 ORDER BY seq DESC LIMIT ?3",
                )
                .unwrap();
            let rows: Vec<(i64, String, i64, String)> = st
                .query_map(params!["acme", "s-long", 20], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert_eq!(rows.len(), 20);
            black_box(rows)
        });
    });
    group.finish();

    // --- append usage: a batch of 3 events ------------------------------------------------
    let usage_batch = || -> Vec<UsageEvent> {
        [
            UsageKind::InputTokens,
            UsageKind::OutputTokens,
            UsageKind::CachedInputTokens,
        ]
        .into_iter()
        .map(|kind| {
            let mut e = UsageEvent::new(tenant.clone(), agent.clone(), kind, 120);
            e.session = Some(session.id.clone());
            e.run = Some(run.id.clone());
            e.resource = Some("test-model".into());
            e
        })
        .collect()
    };
    let mut group = c.benchmark_group("append_usage_batch_of_3");
    group.bench_function("sqlite_store", |b| {
        b.to_async(&rt).iter_batched(
            usage_batch,
            |events| {
                let store = &store;
                async move {
                    store
                        .append_usage(&events[0].tenant, &events)
                        .await
                        .unwrap()
                }
            },
            BatchSize::SmallInput,
        );
    });
    let mut usage_id = 0u64;
    group.bench_function("bare_rusqlite", |b| {
        b.iter(|| {
            let tx = conn.transaction().unwrap();
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO usage_events (tenant, id, agent, session, run, kind, \
                         resource, quantity, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    )
                    .unwrap();
                for kind in ["input_tokens", "output_tokens", "cached_input_tokens"] {
                    usage_id += 1;
                    insert
                        .execute(params![
                            "acme",
                            format!("{usage_id:036}"),
                            "support",
                            "s",
                            "r",
                            kind,
                            "test-model",
                            120,
                            0i64
                        ])
                        .unwrap();
                }
            }
            tx.commit().unwrap();
        });
    });
    group.finish();

    // --- create an approval and decide it -------------------------------------------------
    let new_request = || {
        ApprovalRequest::new(
            &agentkit_core::testkit::scope(&tenant, &agent, &session.id, &run.id),
            ToolCall::new("call-1", "crm.delete", json!({"id": 7})),
            "deletes a record",
            Priority::High,
        )
    };
    let decision = ApprovalDecision::approve("alice");
    let mut group = c.benchmark_group("approval_create_and_decide");
    group.bench_function("sqlite_store", |b| {
        b.to_async(&rt).iter_batched(
            new_request,
            |request| {
                let (store, decision, tenant) = (&store, &decision, &tenant);
                async move {
                    store
                        .create_approval(&request.tenant, &request)
                        .await
                        .unwrap();
                    black_box(
                        store
                            .decide_approval(tenant, &request.id, decision)
                            .await
                            .unwrap(),
                    )
                }
            },
            BatchSize::SmallInput,
        );
    });
    let body = serde_json::to_string(&new_request()).unwrap();
    group.bench_function("bare_rusqlite", |b| {
        b.iter(|| {
            let id = ApprovalId::generate();
            conn.prepare_cached(
                "INSERT INTO approvals (tenant, id, status, priority, created_at, body) \
                 VALUES (?1, ?2, 'pending', 2, 0, ?3)",
            )
            .unwrap()
            .execute(params!["acme", id.as_str(), body])
            .unwrap();
            let changed = conn
                .prepare_cached(
                    "UPDATE approvals SET status = 'approved', decided_at = 1, body = ?3 \
                     WHERE tenant = ?1 AND id = ?2 AND status = 'pending'",
                )
                .unwrap()
                .execute(params!["acme", id.as_str(), body])
                .unwrap();
            assert_eq!(changed, 1);
        });
    });
    group.finish();

    vector_search(c, &rt, &store, &conn);
}

/// Knowledge chunks for the vector search: 384-dimension vectors (MiniLM's) and texts of
/// about 700 characters, as the chunker cuts them.
const CHUNKS: usize = 5_000;
const DIMENSIONS: usize = 384;

/// A deterministic pseudo-random unit vector.
fn unit_vector(seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let mut v: Vec<f32> = (0..DIMENSIONS)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect();
    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
    v.iter_mut().for_each(|a| *a /= norm);
    v
}

/// `vector_search_5000x384`: the top 5 of 5,000 chunks through `SqliteVectorStore::search`
/// vs a bare scan of the same rows (`SELECT id, norm, vector` over a table of the same shape,
/// the cosine in Rust, the best 5 kept).
fn vector_search(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    store: &SqliteStore,
    conn: &Connection,
) {
    use agentkit_core::retrieval::{SearchRequest, SourceRef, VectorRecord, VectorStore};

    let tenant = TenantId::from_static("acme");
    let agent = AgentId::from_static("support");
    let text = "The refund policy allows returns within thirty days of delivery. ".repeat(11);
    let records: Vec<VectorRecord> = (0..CHUNKS as u64)
        .map(|i| VectorRecord {
            id: format!("doc-{}#{i}", i / 20),
            vector: unit_vector(i),
            text: text.clone(),
            source: SourceRef {
                document_id: format!("doc-{}", i / 20),
                ..SourceRef::default()
            },
            metadata: std::collections::BTreeMap::new(),
        })
        .collect();
    let vectors = store.vectors(DIMENSIONS);
    rt.block_on(async {
        for batch in records.chunks(500) {
            vectors.upsert(&tenant, &agent, batch).await.unwrap();
        }
    });
    conn.execute_batch(
        "CREATE TABLE vecs (tenant TEXT NOT NULL, agent TEXT NOT NULL, id TEXT NOT NULL,
             document_id TEXT NOT NULL, norm REAL NOT NULL, vector BLOB NOT NULL,
             text TEXT NOT NULL, UNIQUE (tenant, agent, id)) STRICT;",
    )
    .unwrap();
    {
        let tx = conn.unchecked_transaction().unwrap();
        for r in &records {
            let blob: Vec<u8> = r.vector.iter().flat_map(|f| f.to_le_bytes()).collect();
            tx.execute(
                "INSERT INTO vecs VALUES ('acme', 'support', ?1, ?2, 1.0, ?3, ?4)",
                params![r.id, r.source.document_id, blob, r.text],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    let query = unit_vector(u64::MAX / 3);
    let mut group = c.benchmark_group("vector_search_5000x384");
    group.bench_function("sqlite_store", |b| {
        b.to_async(rt).iter(|| async {
            let request = SearchRequest::new(tenant.clone(), agent.clone(), query.clone(), 5);
            black_box(vectors.search(&request).await.unwrap())
        });
    });
    group.bench_function("bare_rusqlite", |b| {
        b.iter(|| {
            let mut st = conn
                .prepare_cached(
                    "SELECT id, norm, vector FROM vecs WHERE tenant = ?1 AND agent = ?2",
                )
                .unwrap();
            let mut rows = st.query(params!["acme", "support"]).unwrap();
            let mut top: Vec<(f32, String)> = Vec::with_capacity(6);
            while let Some(row) = rows.next().unwrap() {
                let norm: f64 = row.get(1).unwrap();
                let blob = row.get_ref(2).unwrap().as_blob().unwrap();
                let dot: f32 = blob
                    .chunks_exact(4)
                    .zip(&query)
                    .map(|(b, q)| f32::from_le_bytes([b[0], b[1], b[2], b[3]]) * q)
                    .sum();
                let score = dot / norm as f32;
                if top.len() < 5 || score > top[top.len() - 1].0 {
                    top.push((score, row.get(0).unwrap()));
                    top.sort_by(|a, b| b.0.total_cmp(&a.0));
                    top.truncate(5);
                }
            }
            black_box(top)
        });
    });
    group.finish();
}

criterion_group!(sqlite_store, benches);
criterion_main!(sqlite_store);
