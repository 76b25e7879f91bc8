//! Run with:
//! `AGENTKIT_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo bench -p agentkit-store-postgres`
//!
//! The store's hot operations against the same work done with bare SQL over the same pool (no
//! tenant setting, no row-level security, no triggers or extra indexes, no sequence bookkeeping):
//!
//! - `append_turn_4_messages`: a turn's four messages vs one bare 4-row `INSERT` + commit;
//! - `load_window_20_of_1000`: `Last(20)` of a 1,000-message session vs a bare
//!   `SELECT ... ORDER BY seq DESC LIMIT 20` on a plain 1,000-row table;
//! - `append_usage_3_events`: three usage events vs one bare 3-row `INSERT` + commit;
//! - `approval_create_and_decide`: create + decide an approval vs a bare `INSERT` + commit
//!   followed by a bare `UPDATE` + commit;
//! - `turn_postgres`: the agent turn of `benches/turn.rs` (one tool call, everything recorded)
//!   durable on this store vs one bare single-row `INSERT` + commit over the same pool.
//!
//! The store connects as a `NOSUPERUSER NOBYPASSRLS` role in a schema of its own (dropped at
//! the end). Without `AGENTKIT_TEST_POSTGRES_URL` it prints a message and does nothing.
#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;

use agentkit_core::id::{AgentId, RunId, SessionId, TenantId};
use agentkit_core::message::{Message, ToolCall};
use agentkit_core::policy::Priority;
use agentkit_core::store::{
    ApprovalDecision, ApprovalRequest, ApprovalStore, MessageWindow, RunRecord, RunStore,
    SessionRecord, SessionStore, UsageEvent, UsageKind, UsageStore,
};
use agentkit_store_postgres::PostgresStore;
use common::{TestDb, URL_VAR};
use criterion::Criterion;
use serde_json::json;
use sqlx::PgPool;

fn turn() -> Vec<Message> {
    vec![
        Message::user("Where is order 7?"),
        Message::Assistant {
            content: String::new(),
            tool_calls: vec![ToolCall::new("call-1", "orders.get", json!({"order": 7}))],
        },
        Message::tool_result("call-1", "orders.get", r#"{"id":7,"status":"shipped"}"#),
        Message::assistant("Order 7 shipped yesterday."),
    ]
}

fn usage_events(tenant: &TenantId, run: &RunId) -> Vec<UsageEvent> {
    [
        (UsageKind::InputTokens, 1_200),
        (UsageKind::OutputTokens, 80),
        (UsageKind::CachedInputTokens, 1_000),
    ]
    .into_iter()
    .map(|(kind, quantity)| {
        let mut e = UsageEvent::new(
            tenant.clone(),
            AgentId::from_static("support"),
            kind,
            quantity,
        );
        e.run = Some(run.clone());
        e.resource = Some("test-model".into());
        e
    })
    .collect()
}

/// Bare SQL: `rows` JSON bodies in one INSERT, one commit.
async fn bare_insert(pool: &PgPool, tenant: &str, bodies: &[String]) -> i64 {
    let mut tx = pool.begin().await.unwrap();
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO bench_baseline (tenant, body, at) \
         SELECT $1, b::json, now() FROM unnest($2::text[]) AS b RETURNING id",
    )
    .bind(tenant)
    .bind(bodies)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

fn main() {
    let url = match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            println!(
                "postgres_store bench skipped: {URL_VAR} is not set \
                 (e.g. {URL_VAR}=postgres://postgres@127.0.0.1:5432/test)"
            );
            return;
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(TestDb::create(&url));
    let store: PostgresStore = rt.block_on(db.app_store());
    let pool = store.pool().clone();

    let tenant = TenantId::generate();
    let (session, big_session, run) = rt.block_on(async {
        sqlx::raw_sql(
            "CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, tenant text NOT NULL, \
                 body json NOT NULL, at timestamptz NOT NULL);
             CREATE TABLE bench_window (session text NOT NULL, seq bigint NOT NULL, \
                 body json NOT NULL, PRIMARY KEY (session, seq));",
        )
        .execute(&pool)
        .await
        .unwrap();
        let session = SessionRecord::new(tenant.clone(), SessionId::generate(), AgentId::from_static("support"));
        store.create_session(&session.tenant, &session).await.unwrap();
        let run = RunRecord::new(&agentkit_core::scope::Scope::new(
            tenant.clone(),
            AgentId::from_static("support"),
            session.id.clone(),
            RunId::generate(),
        ));
        store.create_run(&run.tenant, &run).await.unwrap();

        // A 1,000-message session, and the same bodies in the plain table.
        let big = SessionRecord::new(tenant.clone(), SessionId::generate(), AgentId::from_static("support"));
        store.create_session(&big.tenant, &big).await.unwrap();
        let mut bodies = Vec::new();
        for _ in 0..250 {
            let messages = turn();
            store
                .append_messages(&tenant, &big.id, Some(&run.id), &messages)
                .await
                .unwrap();
            bodies.extend(messages.iter().map(|m| serde_json::to_string(m).unwrap()));
        }
        sqlx::query(
            "INSERT INTO bench_window (session, seq, body) \
             SELECT $1, b.ord, b.body::json FROM unnest($2::text[]) WITH ORDINALITY AS b (body, ord)",
        )
        .bind(big.id.as_str())
        .bind(&bodies)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::raw_sql("ANALYZE")
            .execute(&pool)
            .await
            .unwrap();
        (session.id, big.id, run)
    });

    let mut c = Criterion::default().configure_from_args();
    let turn_messages = turn();
    let turn_bodies: Vec<String> = turn_messages
        .iter()
        .map(|m| serde_json::to_string(m).unwrap())
        .collect();

    let mut group = c.benchmark_group("append_turn_4_messages");
    group.bench_function("store", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                store
                    .append_messages(&tenant, &session, Some(&run.id), &turn_messages)
                    .await
                    .unwrap(),
            )
        })
    });
    group.bench_function("baseline_insert_commit", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(bare_insert(&pool, tenant.as_str(), &turn_bodies).await) })
    });
    group.finish();

    let mut group = c.benchmark_group("load_window_20_of_1000");
    group.bench_function("store", |b| {
        b.to_async(&rt).iter(|| async {
            let window = store
                .load_messages(&tenant, &big_session, MessageWindow::Last(20))
                .await
                .unwrap();
            assert_eq!(window.len(), 20);
            black_box(window)
        })
    });
    group.bench_function("baseline_select", |b| {
        b.to_async(&rt).iter(|| async {
            let rows: Vec<(i64, String)> = sqlx::query_as(
                "SELECT seq, body::text FROM bench_window WHERE session = $1 \
                 ORDER BY seq DESC LIMIT 20",
            )
            .bind(big_session.as_str())
            .fetch_all(&pool)
            .await
            .unwrap();
            let mut messages: Vec<Message> = rows
                .iter()
                .map(|(_, body)| serde_json::from_str(body).unwrap())
                .collect();
            messages.reverse();
            black_box(messages)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("append_usage_3_events");
    group.bench_function("store", |b| {
        b.to_async(&rt).iter(|| async {
            store
                .append_usage(&tenant, &usage_events(&tenant, &run.id))
                .await
                .unwrap()
        })
    });
    group.bench_function("baseline_insert_commit", |b| {
        b.to_async(&rt).iter(|| async {
            let bodies: Vec<String> = usage_events(&tenant, &run.id)
                .iter()
                .map(|e| serde_json::to_string(e).unwrap())
                .collect();
            black_box(bare_insert(&pool, tenant.as_str(), &bodies).await)
        })
    });
    group.finish();

    let mut group = c.benchmark_group("approval_create_and_decide");
    group.bench_function("store", |b| {
        b.to_async(&rt).iter(|| async {
            let request = ApprovalRequest::new(
                &agentkit_core::testkit::scope(&tenant, &run.agent, &run.session, &run.id),
                ToolCall::new("call-1", "refund.issue", json!({"amount": 40})),
                "refunds need a human",
                Priority::High,
            );
            store
                .create_approval(&request.tenant, &request)
                .await
                .unwrap();
            black_box(
                store
                    .decide_approval(&tenant, &request.id, &ApprovalDecision::approve("alice"))
                    .await
                    .unwrap(),
            )
        })
    });
    group.bench_function("baseline_insert_commit_update_commit", |b| {
        b.to_async(&rt).iter(|| async {
            let request = ApprovalRequest::new(
                &agentkit_core::testkit::scope(&tenant, &run.agent, &run.session, &run.id),
                ToolCall::new("call-1", "refund.issue", json!({"amount": 40})),
                "refunds need a human",
                Priority::High,
            );
            let body = serde_json::to_string(&request).unwrap();
            let id = bare_insert(&pool, tenant.as_str(), std::slice::from_ref(&body)).await;
            let mut tx = pool.begin().await.unwrap();
            sqlx::query("UPDATE bench_baseline SET body = $2::json WHERE id = $1")
                .bind(id)
                .bind(r#"{"status":"approved","reviewer":"alice"}"#)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
            black_box(id)
        })
    });
    group.finish();

    turn_postgres(&mut c, &rt, &store, &pool);

    c.final_summary();
    rt.block_on(async {
        pool.close().await;
        db.cleanup().await;
    });
}

/// The agent turn of the root `turn` bench (a scripted model proposing one tool call, the
/// tool, the answer; allow-list, validation, policy, idempotency claim, execution record,
/// usage, audit, messages, run record) durable on Postgres, against one bare single-row
/// `INSERT` + commit over the same pool.
fn turn_postgres(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    store: &PostgresStore,
    pool: &PgPool,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use agentkit_core::agent::{Agent, MemoryPolicy, RunRequest};
    use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
    use agentkit_core::tool::{FnTool, Tool, ToolSpec};

    let lookup: Arc<dyn Tool> = Arc::new(FnTool::new(
        ToolSpec::new(
            "crm.lookup_lead",
            "Looks up a lead by id",
            json!({
                "type": "object",
                "properties": {"lead_id": {"type": "integer", "minimum": 1}},
                "required": ["lead_id"],
                "additionalProperties": false
            }),
        ),
        |_ctx, args| async move {
            Ok(json!({"lead_id": args["lead_id"], "name": "Ada", "stage": "qualified"}))
        },
    ));
    let script = vec![
        ScriptedResponse::tool_call("crm.lookup_lead", json!({"lead_id": 42})),
        ScriptedResponse::text("Lead 42 is Ada, qualified."),
    ];
    let agent = Agent::builder()
        .id("bench")
        .system_prompt("You are a CRM assistant.")
        .model(Arc::new(ScriptedModel::repeating(script)), "m")
        .tool(lookup)
        .store(Arc::new(store.clone()))
        .memory(MemoryPolicy::LastMessages { count: 20 })
        .build()
        .unwrap();
    let tenant = TenantId::generate();
    let n = AtomicU64::new(0);
    let mut group = c.benchmark_group("turn_postgres");
    group.bench_function("baseline_bare_insert_commit", |b| {
        b.to_async(rt).iter(|| async {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO bench_baseline (tenant, body, at) VALUES ($1, $2::json, now()) \
                 RETURNING id",
            )
            .bind(tenant.as_str())
            .bind(r#"{"role":"user","content":"Who is lead 42?"}"#)
            .fetch_one(pool)
            .await
            .unwrap();
            black_box(id)
        })
    });
    group.bench_function("agentkit_turn_durable", |b| {
        b.to_async(rt).iter(|| async {
            let s = n.fetch_add(1, Ordering::Relaxed);
            black_box(
                agent
                    .run(RunRequest::new(
                        tenant.clone(),
                        format!("s{s}"),
                        "Who is lead 42?",
                    ))
                    .await
                    .unwrap(),
            )
        })
    });
    group.finish();
}
