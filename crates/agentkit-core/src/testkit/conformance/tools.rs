//! Tool execution records.

use super::support::*;

/// Tool executions: upsert by idempotency key until the record succeeded, which makes it
/// final (`Conflict`); listing by run in the order first recorded.
pub async fn tool_executions_idempotent(store: &dyn StateStore) {
    let t = fresh_tenant();
    let (_, run) = setup_run(store, &t).await;
    let (_, other_run) = setup_run(store, &t).await;
    let key = |n: u32| key_of(format!("{}:{n}", run.id));

    let k1 = key(1);
    assert_eq!(
        ok(
            store.get_tool_execution(&t, &k1).await,
            "get_tool_execution"
        ),
        None
    );
    let started = new_tool_execution(&run, &k1, ToolExecutionStatus::Started);
    ok(
        store.record_tool_execution(&started.tenant, &started).await,
        "record(started)",
    );
    assert_eq!(
        ok(
            store.get_tool_execution(&t, &k1).await,
            "get_tool_execution"
        ),
        Some(started.clone()),
        "a tool execution must round-trip"
    );

    let failed = new_tool_execution(&run, &k1, ToolExecutionStatus::Failed);
    ok(
        store.record_tool_execution(&failed.tenant, &failed).await,
        "record(failed)",
    );
    assert_eq!(
        ok(
            store.get_tool_execution(&t, &k1).await,
            "get_tool_execution"
        ),
        Some(failed),
        "a failed execution may be recorded over a started one"
    );
    ok(
        store.record_tool_execution(&started.tenant, &started).await,
        "record(started) again after a failure (retry)",
    );

    let succeeded = new_tool_execution(&run, &k1, ToolExecutionStatus::Succeeded);
    ok(
        store
            .record_tool_execution(&succeeded.tenant, &succeeded)
            .await,
        "record(succeeded)",
    );
    assert_eq!(
        ok(
            store.get_tool_execution(&t, &k1).await,
            "get_tool_execution"
        ),
        Some(succeeded.clone())
    );
    expect_err(
        store.record_tool_execution(&started.tenant, &started).await,
        ErrorKind::Conflict,
        "recording over a succeeded execution",
    );
    expect_err(
        store
            .record_tool_execution(&succeeded.tenant, &succeeded)
            .await,
        ErrorKind::Conflict,
        "recording a succeeded execution twice",
    );
    assert_eq!(
        ok(
            store.get_tool_execution(&t, &k1).await,
            "get_tool_execution"
        ),
        Some(succeeded.clone()),
        "a succeeded execution is final"
    );

    // Order of first recording, unaffected by later updates and other runs.
    let k2 = key(2);
    let k3 = key(3);
    let k4 = key_of(format!("{}:1", other_run.id));
    ok(
        store
            .record_tool_execution(
                &t,
                &new_tool_execution(&run, &k2, ToolExecutionStatus::Started),
            )
            .await,
        "record k2",
    );
    ok(
        store
            .record_tool_execution(
                &t,
                &new_tool_execution(&other_run, &k4, ToolExecutionStatus::Started),
            )
            .await,
        "record k4 (other run)",
    );
    ok(
        store
            .record_tool_execution(
                &t,
                &new_tool_execution(&run, &k3, ToolExecutionStatus::Started),
            )
            .await,
        "record k3",
    );
    let k2_done = new_tool_execution(&run, &k2, ToolExecutionStatus::Succeeded);
    ok(
        store.record_tool_execution(&k2_done.tenant, &k2_done).await,
        "record k2 succeeded",
    );

    let listed = ok(
        store.list_tool_executions(&t, &run.id).await,
        "list_tool_executions",
    );
    assert_eq!(
        listed
            .iter()
            .map(|e| e.idempotency_key.clone())
            .collect::<Vec<_>>(),
        vec![k1, k2, k3],
        "executions of a run are listed in the order first recorded"
    );
    assert_eq!(listed[1], k2_done, "the list shows the latest state");
    let other = ok(
        store.list_tool_executions(&t, &other_run.id).await,
        "list_tool_executions",
    );
    assert_eq!(
        other.iter().map(|e| &e.idempotency_key).collect::<Vec<_>>(),
        vec![&k4],
        "another run's executions are listed separately"
    );
    assert!(
        ok(
            store.list_tool_executions(&t, &RunId::generate()).await,
            "list_tool_executions"
        )
        .is_empty()
    );
}
