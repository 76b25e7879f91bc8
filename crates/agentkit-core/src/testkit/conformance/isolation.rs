//! Tenant isolation across every contract.

use super::support::*;

/// Tenant isolation: records written in tenant A are invisible to tenant B, B cannot change
/// them (decide A's approval, update A's run, append to A's session...), and ids chosen by the
/// host (sessions, agents, idempotency keys, counter and memory keys) can be reused by B
/// independently.
pub async fn tenant_isolation(store: &dyn StateStore) {
    let a = fresh_tenant();
    let b = fresh_tenant();

    // Everything in tenant A.
    let (session, run) = setup_run(store, &a).await;
    ok(
        store
            .append_messages(
                &a,
                &session.id,
                Some(&run.id),
                &[Message::user("secret"), Message::assistant("ok")],
            )
            .await,
        "append_messages (A)",
    );
    let agent = session.agent.clone();
    let config = agent_config(&agent, 1, "A's prompt").finalized();
    ok(
        store.put_agent_config(&a, &config).await,
        "put_agent_config (A)",
    );
    let approval = new_approval(&run, "crm.delete", json!({"id": 1}), Priority::High);
    ok(
        store.create_approval(&approval.tenant, &approval).await,
        "create_approval (A)",
    );
    let key = key_of(format!("{}:1", run.id));
    let execution = new_tool_execution(&run, &key, ToolExecutionStatus::Succeeded);
    ok(
        store
            .record_tool_execution(&execution.tenant, &execution)
            .await,
        "record_tool_execution (A)",
    );
    let mut usage = usage_event(&a, &agent, UsageKind::InputTokens, 10, Some(&run.id), now());
    usage.session = Some(session.id.clone());
    ok(
        store.append_usage(&a, std::slice::from_ref(&usage)).await,
        "append_usage (A)",
    );
    ok(
        store
            .append_audit(&a, NewAuditEntry::new(a.clone(), "k", "agent:support", "x"))
            .await,
        "append_audit (A)",
    );
    ok(
        store.counter_add(&a, "budget", 40, Some(50)).await,
        "counter_add (A)",
    );
    let scope = MemoryScope::Entity("customer:acme".into());
    ok(
        store.put_memory(&a, &scope, "note", &json!("A only")).await,
        "put_memory (A)",
    );

    // Tenant B sees none of it.
    assert_eq!(
        ok(store.get_session(&b, &session.id).await, "get_session (B)"),
        None,
        "B must not see A's session"
    );
    match store
        .load_messages(&b, &session.id, MessageWindow::All)
        .await
    {
        Ok(messages) => assert!(
            messages.is_empty(),
            "B must not see A's messages, got {messages:?}"
        ),
        Err(e) => assert_eq!(
            e.kind(),
            ErrorKind::NotFound,
            "load_messages of A's session as B: empty or NotFound, got: {e}"
        ),
    }
    assert_eq!(
        ok(
            store.get_agent_config(&b, &agent, None).await,
            "get_agent_config (B)"
        ),
        None,
        "B must not see A's agent config"
    );
    assert!(
        ok(
            store.list_agent_config_versions(&b, &agent).await,
            "list_agent_config_versions (B)"
        )
        .is_empty()
    );
    assert_eq!(
        ok(store.get_run(&b, &run.id).await, "get_run (B)"),
        None,
        "B must not see A's run"
    );
    assert_eq!(
        ok(
            store.get_approval(&b, &approval.id).await,
            "get_approval (B)"
        ),
        None,
        "B must not see A's approval"
    );
    assert!(
        ok(
            store.list_pending_approvals(&b).await,
            "list_pending_approvals (B)"
        )
        .is_empty(),
        "B must not see A's pending approvals"
    );
    assert_eq!(
        ok(
            store.get_tool_execution(&b, &key).await,
            "get_tool_execution (B)"
        ),
        None,
        "B must not see A's tool execution"
    );
    assert!(
        ok(
            store.list_tool_executions(&b, &run.id).await,
            "list_tool_executions (B)"
        )
        .is_empty()
    );
    assert!(
        ok(
            store.list_usage(&b, &UsageQuery::all()).await,
            "list_usage (B)"
        )
        .is_empty(),
        "B must not see A's usage"
    );
    assert!(
        ok(
            store.list_audit(&b, &AuditQuery::all()).await,
            "list_audit (B)"
        )
        .is_empty(),
        "B must not see A's audit trail"
    );
    assert_eq!(
        ok(store.counter_get(&b, "budget").await, "counter_get (B)"),
        0,
        "B must not see A's counter"
    );
    assert_eq!(
        ok(store.get_memory(&b, &scope, "note").await, "get_memory (B)"),
        None,
        "B must not see A's memory"
    );
    assert!(ok(store.list_memory(&b, &scope).await, "list_memory (B)").is_empty());

    // Tenant B cannot change A's records.
    expect_err(
        store
            .append_messages(&b, &session.id, None, &[Message::user("intruder")])
            .await,
        ErrorKind::NotFound,
        "B appending to A's session",
    );
    expect_err(
        store
            .decide_approval(&b, &approval.id, &ApprovalDecision::approve("intruder"))
            .await,
        ErrorKind::NotFound,
        "B deciding A's approval",
    );
    let mut hijack = run.clone();
    hijack.tenant = b.clone();
    hijack.version = run.version + 1;
    hijack.reply = Some("hijacked".into());
    expect_err(
        store.update_run(&hijack.tenant, &hijack, run.version).await,
        ErrorKind::NotFound,
        "B updating A's run",
    );
    assert!(
        !ok(
            store.delete_memory(&b, &scope, "note").await,
            "delete_memory (B)"
        ),
        "B deleting A's memory must find nothing"
    );

    // Host-chosen ids are per tenant: B may use the same ones.
    let mut b_session = session.clone();
    b_session.tenant = b.clone();
    assert!(
        ok(
            store.create_session(&b_session.tenant, &b_session).await,
            "create_session (B)"
        ),
        "B may create a session with the id of A's session"
    );
    assert_eq!(
        ok(
            store
                .append_messages(&b, &session.id, None, &[Message::user("hello from B")])
                .await,
            "append_messages (B)"
        ),
        1,
        "B's session has its own sequence numbers"
    );
    ok(
        store
            .put_agent_config(&b, &agent_config(&agent, 1, "B's prompt"))
            .await,
        "B may put version 1 of an agent id that is final in A",
    );
    let mut b_execution = execution.clone();
    b_execution.tenant = b.clone();
    b_execution.status = ToolExecutionStatus::Started;
    ok(
        store
            .record_tool_execution(&b_execution.tenant, &b_execution)
            .await,
        "B may record an idempotency key that succeeded in A",
    );
    let b_add = ok(
        store.counter_add(&b, "budget", 20, Some(50)).await,
        "counter_add (B)",
    );
    assert!(
        b_add.applied && b_add.value == 20,
        "B's counter must not include A's value: {b_add:?}"
    );
    ok(
        store.put_memory(&b, &scope, "note", &json!("B's")).await,
        "put_memory (B)",
    );
    let b_audit = ok(
        store
            .append_audit(&b, NewAuditEntry::new(b.clone(), "k", "user:b", "x"))
            .await,
        "append_audit (B)",
    );
    assert_eq!(
        (b_audit.seq, b_audit.prev_hash.as_str()),
        (1, AUDIT_GENESIS_HASH),
        "B's audit chain is its own"
    );

    // A's records are intact.
    let a_messages = ok(
        store
            .load_messages(&a, &session.id, MessageWindow::All)
            .await,
        "load_messages (A)",
    );
    assert_eq!(
        texts(&a_messages),
        vec!["secret", "ok"],
        "A's messages are intact"
    );
    assert_eq!(
        ok(store.get_session(&a, &session.id).await, "get_session (A)"),
        Some(session.clone())
    );
    assert_eq!(
        ok(
            store.get_agent_config(&a, &agent, None).await,
            "get_agent_config (A)"
        ),
        Some(config)
    );
    assert_eq!(
        ok(store.get_run(&a, &run.id).await, "get_run (A)"),
        Some(run.clone()),
        "A's run is unchanged"
    );
    assert_eq!(
        ok(
            store.get_approval(&a, &approval.id).await,
            "get_approval (A)"
        ),
        Some(approval.clone()),
        "A's approval is still pending"
    );
    assert_eq!(
        ok(
            store.get_tool_execution(&a, &key).await,
            "get_tool_execution (A)"
        ),
        Some(execution)
    );
    assert_eq!(
        ok(
            store.list_usage(&a, &UsageQuery::all()).await,
            "list_usage (A)"
        ),
        vec![usage]
    );
    let a_audit = ok(
        store.list_audit(&a, &AuditQuery::all()).await,
        "list_audit (A)",
    );
    assert_eq!(a_audit.len(), 1, "A's audit trail has only A's entry");
    assert_eq!(verify_audit_chain(&a_audit), Ok(()));
    assert_eq!(
        ok(store.counter_get(&a, "budget").await, "counter_get (A)"),
        40
    );
    assert_eq!(
        ok(store.get_memory(&a, &scope, "note").await, "get_memory (A)"),
        Some(json!("A only"))
    );
    assert_eq!(
        ok(
            store.list_pending_approvals(&a).await,
            "list_pending_approvals (A)"
        ),
        vec![approval]
    );
}

/// A tenant the id type refuses (empty, over 128 bytes, outside the character set) can reach no
/// store: the id constructors refuse it, and so does deserializing any record that carries one
/// (the only other way a host could build a record). Then `store` (any backend) has nothing of
/// such a tenant, and a valid tenant's write through it still works.
pub async fn invalid_tenants_never_reach_a_store(store: &dyn StateStore) {
    let long = "t".repeat(crate::id::MAX_ID_LEN + 1);
    for bad in ["", " ", "a b", "tenant\n", "t\u{e9}nant", long.as_str()] {
        expect_err(TenantId::new(bad), ErrorKind::InvalidInput, "TenantId::new");
        let t = json!(bad);
        let now = json!(now());
        let records = [
            (
                "session",
                serde_json::from_value::<SessionRecord>(json!({
                    "tenant": t, "id": "s", "agent": "a", "metadata": {}, "created_at": now
                }))
                .is_err(),
            ),
            (
                "usage event",
                serde_json::from_value::<UsageEvent>(json!({
                    "id": "u", "tenant": t, "agent": "a", "session": null, "run": null,
                    "kind": "tool_call", "resource": null, "quantity": 1, "cost": null,
                    "price_version": null, "at": now
                }))
                .is_err(),
            ),
            (
                "audit entry",
                serde_json::from_value::<NewAuditEntry>(json!({
                    "tenant": t, "kind": "k", "actor": "a", "action": "x", "decision": null,
                    "reason": null, "agent": null, "session": null, "run": null,
                    "input": null, "output": null, "at": now
                }))
                .is_err(),
            ),
        ];
        for (what, refused) in records {
            assert!(refused, "a {what} with tenant {bad:?} must not deserialize");
        }
    }
    // The same shapes with a valid tenant do deserialize (so the refusals above are about the
    // tenant), and the store takes the session.
    let t = fresh_tenant();
    let session: SessionRecord = serde_json::from_value(json!({
        "tenant": t, "id": "s", "agent": "a", "metadata": {}, "created_at": now()
    }))
    .expect("a valid session record deserializes");
    assert!(ok(
        store.create_session(&t, &session).await,
        "create_session"
    ));
}
