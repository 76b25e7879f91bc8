//! Reopening, migrations, the schema version guard and the append-only triggers.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use agentkit_core::ErrorKind;
use agentkit_core::id::{AgentId, RunId, SessionId, TenantId};
use agentkit_core::message::Message;
use agentkit_core::store::{
    AuditQuery, AuditStore, CounterStore, MessageWindow, NewAuditEntry, RunRecord, RunStore,
    SessionRecord, SessionStore, UsageEvent, UsageKind, UsageQuery, UsageStore, verify_audit_chain,
};
use agentkit_store_sqlite::{OpenError, SCHEMA_VERSION, SqliteStore};
use chrono::{DateTime, SubsecRound, Utc};
use rusqlite::Connection;

fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap()
}

fn user_version(path: &Path) -> u32 {
    raw(path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// A timestamp with nanoseconds, as `Utc::now()` gives them.
fn nanos_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-03-04T05:06:07.123456789Z")
        .unwrap()
        .with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopening_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reopen.db");
    let tenant = TenantId::from_static("acme");
    let session = SessionRecord::new(
        tenant.clone(),
        SessionId::from_static("s-1"),
        AgentId::from_static("support"),
    );
    let mut run = RunRecord::new(&agentkit_core::scope::Scope::new(
        tenant.clone(),
        session.agent.clone(),
        session.id.clone(),
        RunId::generate(),
    ));
    // Nanosecond precision in, microseconds out.
    run.created_at = nanos_time();
    run.usage.latency = std::time::Duration::from_micros(1_234_567);

    {
        let store = SqliteStore::open(&path).await.unwrap();
        assert!(format!("{store:?}").contains("reopen.db"));
        assert!(
            store
                .create_session(&session.tenant, &session)
                .await
                .unwrap()
        );
        store.create_run(&run.tenant, &run).await.unwrap();
        store
            .append_messages(
                &tenant,
                &session.id,
                Some(&run.id),
                &[Message::user("hello"), Message::assistant("hi")],
            )
            .await
            .unwrap();
        let mut entry = NewAuditEntry::new(tenant.clone(), "run.completed", "agent:support", "run");
        entry.at = nanos_time();
        let appended = store.append_audit(&tenant, entry).await.unwrap();
        assert_eq!(appended.entry.at, nanos_time().trunc_subsecs(6));
        store
            .append_usage(
                &tenant,
                &[UsageEvent::new(
                    tenant.clone(),
                    session.agent.clone(),
                    UsageKind::InputTokens,
                    42,
                )],
            )
            .await
            .unwrap();
        store.counter_add(&tenant, "budget", 7, None).await.unwrap();
    }
    assert_eq!(user_version(&path), SCHEMA_VERSION);

    for round in 0..2 {
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            user_version(&path),
            SCHEMA_VERSION,
            "migrations are idempotent"
        );
        let mut expected_session = session.clone();
        expected_session.created_at = session.created_at.trunc_subsecs(6);
        assert_eq!(
            store.get_session(&tenant, &session.id).await.unwrap(),
            Some(expected_session)
        );
        let mut expected_run = run.clone();
        expected_run.created_at = run.created_at.trunc_subsecs(6);
        expected_run.updated_at = run.updated_at.trunc_subsecs(6);
        assert_eq!(
            store.get_run(&tenant, &run.id).await.unwrap(),
            Some(expected_run),
            "runs read back exactly (latency included), timestamps to the microsecond"
        );
        let messages = store
            .load_messages(&tenant, &session.id, MessageWindow::All)
            .await
            .unwrap();
        assert_eq!(
            messages
                .iter()
                .map(|m| m.message.text())
                .collect::<Vec<_>>(),
            ["hello", "hi"]
        );
        let audit = store.list_audit(&tenant, &AuditQuery::all()).await.unwrap();
        assert_eq!(
            audit.len(),
            1 + round,
            "one entry plus one per earlier round"
        );
        assert_eq!(audit[0].entry.at, nanos_time().trunc_subsecs(6));
        assert_eq!(
            verify_audit_chain(&audit),
            Ok(()),
            "the chain verifies after reopening"
        );
        assert_eq!(
            store
                .list_usage(&tenant, &UsageQuery::all())
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.counter_get(&tenant, "budget").await.unwrap(), 7);
        // The chain continues across reopenings.
        let next = store
            .append_audit(
                &tenant,
                NewAuditEntry::new(tenant.clone(), "k", "user:a", "x"),
            )
            .await
            .unwrap();
        assert_eq!(next.prev_hash, audit[round].hash);
        store
            .list_audit(&tenant, &AuditQuery::all())
            .await
            .map(|all| assert_eq!(verify_audit_chain(&all), Ok(())))
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_build_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    drop(SqliteStore::open(&path).await.unwrap());
    let newer = SCHEMA_VERSION + 1;
    raw(&path)
        .pragma_update(None, "user_version", newer)
        .unwrap();

    let err = SqliteStore::open(&path).await.unwrap_err();
    match &err {
        OpenError::SchemaTooNew { found, supported } => {
            assert_eq!((*found, *supported), (newer, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(!err.is_retryable());
    let core: agentkit_core::Error = err.into();
    assert_eq!(core.kind(), ErrorKind::Storage);
    assert_eq!(user_version(&path), newer, "the database is left untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_creates_the_file_but_not_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir").join("x.db");
    let err = SqliteStore::open(&missing).await.unwrap_err();
    assert!(
        matches!(err, OpenError::Database { .. }),
        "expected a database error, got {err:?}"
    );
    assert!(!missing.exists());

    let path = dir.path().join("new.db");
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(path.exists());
    assert_eq!(store.path(), Some(path.canonicalize().unwrap().as_path()));
    let mode: String = raw(&path)
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_audit_cannot_be_changed_even_with_raw_sql() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("append-only.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let tenant = TenantId::from_static("acme");
    let mut event = UsageEvent::new(
        tenant.clone(),
        AgentId::from_static("support"),
        UsageKind::OutputTokens,
        10,
    );
    event.at = event.at.trunc_subsecs(6);
    store
        .append_usage(&tenant, std::slice::from_ref(&event))
        .await
        .unwrap();
    for i in 0..3 {
        store
            .append_audit(
                &tenant,
                NewAuditEntry::new(
                    tenant.clone(),
                    "tool.call",
                    "agent:support",
                    format!("a{i}"),
                ),
            )
            .await
            .unwrap();
    }
    let audit_before = store.list_audit(&tenant, &AuditQuery::all()).await.unwrap();

    let conn = raw(&path);
    let tampering = [
        "UPDATE usage_events SET quantity = 0",
        "DELETE FROM usage_events",
        "DELETE FROM usage_events WHERE tenant = 'acme'",
        "INSERT OR REPLACE INTO usage_events (tenant, id, agent, kind, quantity, at) \
         SELECT tenant, id, agent, kind, 0, at FROM usage_events",
        "UPDATE audit_entries SET body = '{}' WHERE seq = 2",
        "UPDATE audit_entries SET hash = 'x'",
        "DELETE FROM audit_entries WHERE seq = 3",
        "DELETE FROM audit_entries",
        "INSERT OR REPLACE INTO audit_entries \
         SELECT tenant, seq, kind, agent, session, run, at, prev_hash, hash, '{}' \
         FROM audit_entries WHERE seq = 2",
        // Appending out of chain: a gap, or the wrong previous hash.
        "INSERT INTO audit_entries \
         SELECT tenant, seq + 2, kind, agent, session, run, at, hash, 'h', body \
         FROM audit_entries WHERE seq = 3",
        "INSERT INTO audit_entries \
         SELECT tenant, seq + 1, kind, agent, session, run, at, 'forged', 'h', body \
         FROM audit_entries WHERE seq = 3",
    ];
    for sql in tampering {
        let err = conn.execute(sql, []).unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{sql}: expected the append-only trigger, got: {err}"
        );
    }
    drop(conn);

    assert_eq!(
        store.list_usage(&tenant, &UsageQuery::all()).await.unwrap(),
        vec![event]
    );
    let audit_after = store.list_audit(&tenant, &AuditQuery::all()).await.unwrap();
    assert_eq!(audit_after, audit_before);
    assert_eq!(verify_audit_chain(&audit_after), Ok(()));

    // The store's own path still appends.
    let fourth = store
        .append_audit(
            &tenant,
            NewAuditEntry::new(tenant.clone(), "k", "user:a", "x"),
        )
        .await
        .unwrap();
    assert_eq!(fourth.seq, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_configs_and_succeeded_executions_are_immutable_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("immutable.db");
    let _store = SqliteStore::open(&path).await.unwrap();
    let conn = raw(&path);
    conn.execute_batch(
        "INSERT INTO agent_configs VALUES ('t', 'a', 1, 'final', '{}');
         INSERT INTO tool_executions (tenant, idempotency_key, agent, session, run, status, \
             started_at, body) VALUES ('t', 'k', 'a', 's', 'r', 'succeeded', 0, '{}');",
    )
    .unwrap();
    for sql in [
        "UPDATE agent_configs SET config = '{\"x\":1}'",
        "DELETE FROM agent_configs",
        "UPDATE tool_executions SET status = 'started'",
    ] {
        let err = conn.execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("agentkit:"), "{sql}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_share_one_audit_chain() {
    // Two "processes" (two stores, each with its own writer connection) appending at once: the
    // IMMEDIATE transactions and the busy timeout keep one chain.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let a = SqliteStore::open(&path).await.unwrap();
    let b = SqliteStore::open(&path).await.unwrap();
    let tenant = TenantId::from_static("acme");
    let appends = (0..60).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let tenant = tenant.clone();
        tokio::spawn(async move {
            store
                .append_audit(
                    &tenant,
                    NewAuditEntry::new(tenant.clone(), "k", "agent:x", format!("{i}")),
                )
                .await
        })
    });
    for r in futures::future::join_all(appends).await {
        r.unwrap().unwrap();
    }
    let all = a.list_audit(&tenant, &AuditQuery::all()).await.unwrap();
    assert_eq!(all.len(), 60);
    assert_eq!(verify_audit_chain(&all), Ok(()));
}

/// A decision and its audit record are one transaction: when the audit write fails, the
/// approval stays pending (no decision without its record).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_decision_is_not_stored_without_its_audit_record() {
    use agentkit_core::message::ToolCall;
    use agentkit_core::policy::Priority;
    use agentkit_core::store::{ApprovalDecision, ApprovalRequest, ApprovalStatus, ApprovalStore};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decide.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let tenant = TenantId::from_static("acme");
    let scope = agentkit_core::scope::Scope::new(
        tenant.clone(),
        AgentId::from_static("ops"),
        SessionId::from_static("s-1"),
        RunId::generate(),
    );
    store
        .create_session(
            &tenant,
            &SessionRecord::new(tenant.clone(), scope.session.clone(), scope.agent.clone()),
        )
        .await
        .unwrap();
    store
        .create_run(&tenant, &RunRecord::new(&scope))
        .await
        .unwrap();
    let request = ApprovalRequest::new(
        &scope,
        ToolCall::new("c1", "payments.refund", serde_json::json!({"amount": 5})),
        "refunds need approval",
        Priority::High,
    );
    store.create_approval(&tenant, &request).await.unwrap();

    raw(&path)
        .execute_batch(
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_entries \
             BEGIN SELECT RAISE(ABORT, 'audit unavailable'); END;",
        )
        .unwrap();
    store
        .decide_approval(&tenant, &request.id, &ApprovalDecision::approve("ann"))
        .await
        .unwrap_err();
    let stored = store
        .get_approval(&tenant, &request.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.status,
        ApprovalStatus::Pending,
        "no decision without its audit"
    );

    raw(&path)
        .execute_batch("DROP TRIGGER audit_down;")
        .unwrap();
    store
        .decide_approval(&tenant, &request.id, &ApprovalDecision::approve("ann"))
        .await
        .unwrap();
    let audit = store
        .list_audit(&tenant, &AuditQuery::all().kind("approval.decided"))
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.actor, "user:ann");
}

fn page_size(path: &Path) -> u32 {
    raw(path)
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_size_option_sets_new_files_only_and_bad_sizes_are_refused() {
    use agentkit_store_sqlite::SqliteOptions;

    let dir = tempfile::tempdir().unwrap();
    let tenant = TenantId::from_static("acme");
    let session = |id: &str| {
        SessionRecord::new(
            tenant.clone(),
            SessionId::new(id).unwrap(),
            AgentId::from_static("support"),
        )
    };
    let small = SqliteOptions::default().page_size(2048);

    // The default keeps SQLite's 4,096; the option sets a new file's pages.
    let default = dir.path().join("default.db");
    drop(SqliteStore::open(&default).await.unwrap());
    assert_eq!(page_size(&default), 4096);
    let fresh = dir.path().join("fresh.db");
    let store = SqliteStore::open_with(&fresh, small.clone()).await.unwrap();
    store.create_session(&tenant, &session("s1")).await.unwrap();
    drop(store);
    assert_eq!(page_size(&fresh), 2048);

    // A file that has pages keeps their size, and the store works on it.
    let store = SqliteStore::open_with(&default, small.clone())
        .await
        .unwrap();
    store.create_session(&tenant, &session("s2")).await.unwrap();
    let s2 = SessionId::new("s2").unwrap();
    assert!(store.get_session(&tenant, &s2).await.unwrap().is_some());
    drop(store);
    assert_eq!(page_size(&default), 4096);

    // A size SQLite does not have is refused before the file is created.
    for bad in [1000, 256, 131_072] {
        let path = dir.path().join(format!("bad-{bad}.db"));
        let Err(err) = SqliteStore::open_with(&path, SqliteOptions::default().page_size(bad)).await
        else {
            panic!("page size {bad} must be refused");
        };
        assert!(
            matches!(
                err,
                OpenError::Database {
                    retryable: false,
                    ..
                }
            ),
            "{err}"
        );
        assert!(!path.exists());
    }
}
