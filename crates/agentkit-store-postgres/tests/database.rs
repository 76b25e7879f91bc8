//! What the database itself enforces, beyond the store's own queries: row-level security
//! between tenants, append-only usage and audit tables, the tenant setting's scope, the
//! indexed `Last(n)` window, and a `Debug` that keeps the password out.
#![allow(clippy::unwrap_used)]

mod common;

use agentkit_core::ErrorKind;
use agentkit_core::id::{AgentId, RunId, SessionId, TenantId};
use agentkit_core::message::Message;
use agentkit_core::store::{
    AuditQuery, AuditStore, MessageWindow, NewAuditEntry, RunRecord, RunStore, SessionRecord,
    SessionStore, UsageEvent, UsageKind, UsageQuery, UsageStore, verify_audit_chain,
};
use agentkit_store_postgres::{PostgresStore, TENANT_SETTING};
use chrono::SubsecRound;
use common::TestDb;
use sqlx::{Connection, PgConnection, Postgres, Transaction};

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

async fn session_with_messages(store: &PostgresStore, tenant: &TenantId, n: usize) -> SessionId {
    let session = SessionRecord::new(
        tenant.clone(),
        SessionId::generate(),
        AgentId::from_static("support"),
    );
    assert!(
        store
            .create_session(&session.tenant, &session)
            .await
            .unwrap()
    );
    let messages: Vec<Message> = (0..n)
        .map(|i| Message::user(format!("{tenant} message {i}")))
        .collect();
    store
        .append_messages(tenant, &session.id, None, &messages)
        .await
        .unwrap();
    session.id
}

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_hides_and_protects_other_tenants_rows() {
    let Some(db) = TestDb::from_env("database::row_level_security").await else {
        return;
    };
    let store = db.app_store().await;
    assert!(store.enforces_row_level_security().await.unwrap());
    let (a, b) = (TenantId::generate(), TenantId::generate());
    let a_session = session_with_messages(&store, &a, 3).await;
    let b_session = session_with_messages(&store, &b, 2).await;
    let mut a_run = RunRecord::new(&agentkit_core::scope::Scope::new(
        a.clone(),
        agentkit_core::id::AgentId::from_static("support"),
        a_session.clone(),
        RunId::generate(),
    ));
    // The store keeps microseconds.
    a_run.created_at = a_run.created_at.trunc_subsecs(6);
    a_run.updated_at = a_run.created_at;
    store.create_run(&a_run.tenant, &a_run).await.unwrap();

    // As tenant B, a query without any tenant filter sees only B's rows.
    let mut tx = tenant_tx(&store, &b).await;
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT tenant, session_id, seq FROM messages")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(
        rows.len(),
        2,
        "B sees exactly its own two messages: {rows:?}"
    );
    assert!(
        rows.iter()
            .all(|(t, s, _)| t == b.as_str() && s == b_session.as_str()),
        "B must see none of A's messages: {rows:?}"
    );
    let sessions: Vec<(String,)> = sqlx::query_as("SELECT tenant FROM sessions")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(sessions, vec![(b.to_string(),)]);

    // Writing a row of tenant A as tenant B is refused by the policy's WITH CHECK.
    let insert = sqlx::query(
        "INSERT INTO messages (tenant, session_id, seq, message, created_at) \
         VALUES ($1, $2, 100, '{\"role\":\"user\",\"content\":\"forged\"}', now())",
    )
    .bind(a.as_str())
    .bind(a_session.as_str())
    .execute(&mut *tx)
    .await;
    assert_eq!(
        sqlstate(insert),
        "42501",
        "inserting a row of another tenant must violate the row-level security policy"
    );
    tx.rollback().await.unwrap();

    // Changing A's rows as B finds nothing to change.
    let mut tx = tenant_tx(&store, &b).await;
    let updated = sqlx::query("UPDATE runs SET reply = 'hijacked'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    let deleted = sqlx::query("DELETE FROM messages WHERE tenant = $1")
        .bind(a.as_str())
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    tx.commit().await.unwrap();
    assert_eq!((updated, deleted), (0, 0), "B cannot touch A's rows");
    assert_eq!(store.get_run(&a, &a_run.id).await.unwrap(), Some(a_run));
    assert_eq!(
        store
            .load_messages(&a, &a_session, MessageWindow::All)
            .await
            .unwrap()
            .len(),
        3
    );

    // Without the setting, nothing at all is visible.
    let mut conn = store.pool().acquire().await.unwrap();
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(visible, 0, "no tenant set: no rows");
    drop(conn);

    // Every table of the schema has row-level security enabled and forced, with a policy.
    let mut admin = db.admin_conn().await;
    let tables: Vec<(String, bool, bool, i64)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity, \
         (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname <> '_sqlx_migrations' \
         ORDER BY 1",
    )
    .bind(&db.schema)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(tables.len(), 16, "{tables:?}");
    for (table, enabled, forced, policies) in &tables {
        assert!(
            *enabled && *forced && *policies >= 1,
            "{table}: row-level security enabled {enabled}, forced {forced}, {policies} policies"
        );
    }
    admin.close().await.ok();

    store.pool().close().await;
    db.cleanup().await;
}

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_audit_rows_cannot_be_changed_or_removed() {
    let Some(db) = TestDb::from_env("database::append_only").await else {
        return;
    };
    let store = db.app_store().await;
    let t = TenantId::generate();
    let mut event = UsageEvent::new(
        t.clone(),
        AgentId::from_static("support"),
        UsageKind::InputTokens,
        42,
    );
    event.at = event.at.trunc_subsecs(6);
    store
        .append_usage(&t, std::slice::from_ref(&event))
        .await
        .unwrap();
    for i in 0..3 {
        store
            .append_audit(
                &t,
                NewAuditEntry::new(t.clone(), "k", "agent:support", format!("a{i}")),
            )
            .await
            .unwrap();
    }

    // The application role (which owns the tables here) has no UPDATE/DELETE/TRUNCATE.
    let statements = [
        "UPDATE usage_events SET quantity = 0",
        "DELETE FROM usage_events",
        "TRUNCATE usage_events",
        "UPDATE audit_entries SET reason = 'rewritten' WHERE seq = 2",
        "DELETE FROM audit_entries WHERE seq = 3",
        "TRUNCATE audit_entries",
    ];
    for sql in statements {
        let mut tx = tenant_tx(&store, &t).await;
        let code = sqlstate(sqlx::query(sql).execute(&mut *tx).await);
        assert_eq!(code, "42501", "the application role must not run `{sql}`");
        tx.rollback().await.unwrap();
    }

    // Even a superuser, who bypasses privileges and row-level security, hits the triggers.
    let mut admin = PgConnection::connect_with(&db.admin_schema_options())
        .await
        .unwrap();
    for sql in statements {
        let result = sqlx::query(sql).execute(&mut admin).await;
        match result {
            Err(sqlx::Error::Database(e)) => assert!(
                e.message().contains("append-only"),
                "`{sql}` as superuser: {}",
                e.message()
            ),
            other => panic!("`{sql}` as superuser must be refused, got {other:?}"),
        }
    }
    admin.close().await.ok();

    assert_eq!(
        store.list_usage(&t, &UsageQuery::all()).await.unwrap(),
        vec![event]
    );
    let chain = store.list_audit(&t, &AuditQuery::all()).await.unwrap();
    assert_eq!(chain.len(), 3);
    assert_eq!(verify_audit_chain(&chain), Ok(()));
    store.pool().close().await;
    db.cleanup().await;
}

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_setting_ends_with_each_operation() {
    let Some(db) = TestDb::from_env("database::tenant_setting_scope").await else {
        return;
    };
    // One connection, so the next query surely runs on the connection the store just used.
    let pool = db
        .app_pool_with(PostgresStore::pool_options().max_connections(1))
        .await;
    let store = PostgresStore::from_pool(pool).await.unwrap();
    let t = TenantId::generate();
    session_with_messages(&store, &t, 1).await;
    let setting: Option<String> = sqlx::query_scalar("SELECT current_setting($1, true)")
        .bind(TENANT_SETTING)
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert!(
        setting.as_deref().unwrap_or("").is_empty(),
        "the tenant must not outlive the operation's transaction, found {setting:?}"
    );
    let visible: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(visible, 0);

    // The empty tenant (what an ended setting reads as) cannot even be named: the id type
    // refuses it, so no store call can carry it.
    let err = TenantId::new("").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    store.pool().close().await;
    db.cleanup().await;
}

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_n_window_reads_the_primary_key_backwards() {
    let Some(db) = TestDb::from_env("database::last_n_is_indexed").await else {
        return;
    };
    let store = db.app_store().await;
    let t = TenantId::generate();
    let session = session_with_messages(&store, &t, 2_000).await;
    for _ in 0..3 {
        session_with_messages(&store, &TenantId::generate(), 500).await;
    }
    sqlx::query("ANALYZE messages")
        .execute(store.pool())
        .await
        .unwrap();
    let mut tx = tenant_tx(&store, &t).await;
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT seq, run_id, message::text AS message, created_at FROM messages \
         WHERE tenant = $1 AND session_id = $2 ORDER BY seq DESC LIMIT $3",
    )
    .bind(t.as_str())
    .bind(session.as_str())
    .bind(20_i64)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan Backward using messages_pkey") && !plan.contains("Sort"),
        "Last(n) must be a backward index scan without a sort:\n{plan}"
    );
    let window = store
        .load_messages(&t, &session, MessageWindow::Last(20))
        .await
        .unwrap();
    assert_eq!(
        window.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1981..=2000).collect::<Vec<u64>>()
    );
    store.pool().close().await;
    db.cleanup().await;
}

#[cfg_attr(agentkit_pg_unset, ignore = "AGENTKIT_TEST_POSTGRES_URL is not set")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_by_url_and_debug_without_the_password() {
    let Some(db) = TestDb::from_env("database::debug_without_password").await else {
        return;
    };
    let host = db.admin.get_host().to_string();
    let port = db.admin.get_port();
    let database = db.admin.get_database().unwrap_or("postgres").to_string();
    // `search_path` through the URL's `options` parameter (`-c search_path=<schema>`).
    let url = format!(
        "postgres://{}:{}@{host}:{port}/{database}?options=-c%20search_path%3D{}",
        db.role, db.password, db.schema
    );
    let store = PostgresStore::connect(&url).await.unwrap();
    let t = TenantId::generate();
    session_with_messages(&store, &t, 1).await;
    let debug = format!("{store:?}");
    assert!(debug.starts_with("PostgresStore"), "{debug}");
    assert!(debug.contains(&db.role), "{debug}");
    assert!(
        !debug.contains(&db.password),
        "Debug must not print the password: {debug}"
    );

    // Errors never echo the URL either.
    let bad = format!(
        "postgres://{}:{}@{host}:{port}/{database}?sslmode=bogus",
        db.role, db.password
    );
    let err = PostgresStore::connect(&bad).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidConfig);
    assert!(!err.to_string().contains(&db.password), "{err}");

    // Text Postgres cannot store is the caller's problem, not a retryable failure.
    let mut entry = NewAuditEntry::new(t.clone(), "k", "agent:support", "x");
    entry.reason = Some("nul \0 byte".into());
    let err = store.append_audit(&t, entry).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(!err.is_retryable());

    store.pool().close().await;
    db.cleanup().await;
}
