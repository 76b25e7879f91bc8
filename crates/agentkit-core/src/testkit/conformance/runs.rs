//! Runs (compare-and-swap) and approvals (decided exactly once, queue order).

use super::support::*;

/// Runs: duplicate ids conflict, updates are compare-and-swap on `version`, a missing run is
/// `NotFound`, and of many concurrent updates from the same version exactly one wins.
pub async fn runs_compare_and_swap(store: &dyn StateStore) {
    let t = fresh_tenant();
    let (session, run) = setup_run(store, &t).await;
    expect_err(
        store.create_run(&run.tenant, &run).await,
        ErrorKind::Conflict,
        "create_run with an existing id",
    );
    assert_eq!(
        ok(store.get_run(&t, &run.id).await, "get_run"),
        Some(run.clone()),
        "a run must round-trip"
    );

    // A suspended run with its pending calls survives the round trip.
    let mut v2 = run.clone();
    v2.version = 2;
    v2.status = RunStatus::Suspended;
    v2.turns = 1;
    v2.tool_calls = 2;
    v2.call_fingerprints = vec!["fp-1".into(), "fp-2".into()];
    v2.pending = vec![
        PendingCall::Resolved {
            call: ToolCall::new("c1", "crm.lookup", json!({"id": 7})),
            result: Message::tool_result("c1", "crm.lookup", "{\"name\":\"Ada\"}"),
        },
        PendingCall::AwaitingApproval {
            call: ToolCall::new("c2", "crm.delete", json!({"id": 7})),
            approval: ApprovalId::generate(),
            arguments_hash: "abc".into(),
        },
    ];
    v2.updated_at = now();
    ok(
        store.update_run(&v2.tenant, &v2, 1).await,
        "update_run from version 1",
    );
    assert_eq!(
        ok(store.get_run(&t, &run.id).await, "get_run"),
        Some(v2.clone()),
        "update_run must replace the run"
    );

    let mut stale = run.clone();
    stale.version = 2;
    stale.reply = Some("stale writer".into());
    expect_err(
        store.update_run(&stale.tenant, &stale, 1).await,
        ErrorKind::Conflict,
        "update_run with a stale expected version",
    );
    assert_eq!(
        ok(store.get_run(&t, &run.id).await, "get_run"),
        Some(v2.clone()),
        "a refused update must change nothing"
    );

    let mut ghost = new_run(&t, &session);
    ghost.version = 2;
    expect_err(
        store.update_run(&ghost.tenant, &ghost, 1).await,
        ErrorKind::NotFound,
        "update_run of a run that does not exist",
    );
    assert_eq!(
        ok(store.get_run(&t, &ghost.id).await, "get_run"),
        None,
        "update_run must not create runs"
    );

    // Concurrent compare-and-swap from the same version: exactly one wins.
    let attempts: Vec<RunRecord> = (0..20u32)
        .map(|i| {
            let mut r = v2.clone();
            r.version = 3;
            r.turns = 100 + i;
            r
        })
        .collect();
    let results = join_all(attempts.iter().map(|r| store.update_run(&r.tenant, r, 2))).await;
    let mut winners = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(()) => winners.push(i),
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::Conflict,
                "a losing concurrent update_run must be a Conflict, got: {e}"
            ),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 20 concurrent update_run calls from version 2 must win, won: {winners:?}"
    );
    assert_eq!(
        ok(store.get_run(&t, &run.id).await, "get_run"),
        Some(attempts[winners[0]].clone()),
        "the stored run must be the winner's"
    );
}

/// Approvals: duplicate ids conflict, invalid decisions are refused, a decision applies once,
/// and of 20 concurrent approve/reject decisions exactly one wins.
pub async fn approvals_decided_exactly_once(store: &dyn StateStore) {
    let t = fresh_tenant();
    let (_, run) = setup_run(store, &t).await;
    let request = new_approval(&run, "refund.issue", json!({"amount": 50}), Priority::High);
    ok(
        store.create_approval(&request.tenant, &request).await,
        "create_approval",
    );
    expect_err(
        store.create_approval(&request.tenant, &request).await,
        ErrorKind::Conflict,
        "create_approval with an existing id",
    );
    assert_eq!(
        ok(store.get_approval(&t, &request.id).await, "get_approval"),
        Some(request.clone()),
        "an approval request must round-trip"
    );
    assert_eq!(
        ok(
            store.get_approval(&t, &ApprovalId::generate()).await,
            "get_approval"
        ),
        None
    );

    let back_to_pending = ApprovalDecision {
        status: ApprovalStatus::Pending,
        ..ApprovalDecision::approve("mallory")
    };
    expect_err(
        store
            .decide_approval(&t, &request.id, &back_to_pending)
            .await,
        ErrorKind::InvalidInput,
        "a decision that sets the status to pending",
    );
    expect_err(
        store
            .decide_approval(
                &t,
                &ApprovalId::generate(),
                &ApprovalDecision::approve("alice"),
            )
            .await,
        ErrorKind::NotFound,
        "deciding an approval that does not exist",
    );
    assert_eq!(
        ok(store.get_approval(&t, &request.id).await, "get_approval"),
        Some(request.clone()),
        "refused decisions must change nothing"
    );

    let decision = ApprovalDecision::approve_with_arguments("alice", json!({"amount": 40}));
    let decided = ok(
        store.decide_approval(&t, &request.id, &decision).await,
        "decide_approval",
    );
    assert_eq!(decided.status, ApprovalStatus::Approved);
    assert_eq!(decided.reviewer.as_deref(), Some("alice"));
    assert!(decided.decided_at.is_some(), "a decision sets decided_at");
    assert_eq!(decided.approved_arguments(), &json!({"amount": 40}));
    assert_eq!(decided.call, request.call, "the original call is kept");
    let stored = ok(store.get_approval(&t, &request.id).await, "get_approval");
    let stored = stored.unwrap_or_else(|| panic!("decided approval disappeared"));
    assert_eq!(stored.status, ApprovalStatus::Approved);
    assert_eq!(stored.reviewer.as_deref(), Some("alice"));
    assert_eq!(stored.edited_arguments, Some(json!({"amount": 40})));
    assert!(stored.decided_at.is_some());

    expect_err(
        store
            .decide_approval(&t, &request.id, &ApprovalDecision::reject("bob", "no"))
            .await,
        ErrorKind::Conflict,
        "deciding an approval a second time",
    );
    let stored = ok(store.get_approval(&t, &request.id).await, "get_approval");
    assert_eq!(
        stored.as_ref().map(|s| (s.status, s.reviewer.clone())),
        Some((ApprovalStatus::Approved, Some("alice".to_string()))),
        "a second decision must not change the first"
    );
    assert!(
        ok(
            store.list_pending_approvals(&t).await,
            "list_pending_approvals"
        )
        .is_empty(),
        "a decided approval is not pending"
    );

    // 20 concurrent deciders, alternating approve and reject: exactly one wins.
    let contested = new_approval(&run, "crm.delete", json!({"id": 9}), Priority::Critical);
    ok(
        store.create_approval(&contested.tenant, &contested).await,
        "create_approval",
    );
    let decisions: Vec<ApprovalDecision> = (0..20)
        .map(|i| {
            if i % 2 == 0 {
                ApprovalDecision::approve(format!("reviewer-{i}"))
            } else {
                ApprovalDecision::reject(format!("reviewer-{i}"), format!("no from {i}"))
            }
        })
        .collect();
    let results = join_all(
        decisions
            .iter()
            .map(|d| store.decide_approval(&t, &contested.id, d)),
    )
    .await;
    let mut winners = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(request) => winners.push((i, request)),
            Err(e) => assert_eq!(
                e.kind(),
                ErrorKind::Conflict,
                "a losing concurrent decision must be a Conflict, got: {e}"
            ),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one of 20 concurrent decisions must win, won: {:?}",
        winners.iter().map(|(i, _)| i).collect::<Vec<_>>()
    );
    let (winner, returned) = &winners[0];
    let decision = &decisions[*winner];
    assert_eq!(returned.status, decision.status);
    assert_eq!(returned.reviewer.as_ref(), Some(&decision.reviewer));
    let stored = ok(store.get_approval(&t, &contested.id).await, "get_approval")
        .unwrap_or_else(|| panic!("contested approval disappeared"));
    assert_eq!(
        (
            stored.status,
            stored.reviewer.as_ref(),
            stored.comment.as_ref()
        ),
        (
            decision.status,
            Some(&decision.reviewer),
            decision.comment.as_ref()
        ),
        "the stored decision must be the winner's"
    );

    // Every decision is in the audit chain, written in the same step: one entry per decided
    // request (the contested one included), naming the winner, and the chain verifies.
    let decided = ok(
        store
            .list_audit(&t, &AuditQuery::all().kind("approval.decided"))
            .await,
        "list_audit",
    );
    for id in [&request.id, &contested.id] {
        let entries: Vec<_> = decided
            .iter()
            .filter(|e| e.entry.input["approval"] == json!(id))
            .collect();
        assert_eq!(
            entries.len(),
            1,
            "decide_approval must append exactly one `approval.decided` entry for {id}"
        );
    }
    let contested_entry = decided
        .iter()
        .find(|e| e.entry.input["approval"] == json!(contested.id))
        .map(|e| e.entry.actor.clone());
    assert_eq!(
        contested_entry,
        Some(format!("user:{}", decision.reviewer)),
        "the audit entry names the winning reviewer"
    );
    let automatic = new_approval(&run, "crm.archive", json!({}), Priority::Low);
    ok(
        store.create_approval(&automatic.tenant, &automatic).await,
        "create_approval",
    );
    let expired = ok(
        store
            .decide_approval(
                &t,
                &automatic.id,
                &ApprovalDecision::automatic(ApprovalStatus::Approved, "expiry", "timeout"),
            )
            .await,
        "decide_approval (automatic)",
    );
    assert!(
        expired.decided_automatically,
        "an automatic decision is recorded as one"
    );
    let stored = ok(store.get_approval(&t, &automatic.id).await, "get_approval");
    assert!(
        stored.is_some_and(|s| s.decided_automatically),
        "the stored request keeps that it was decided automatically"
    );
    let all = ok(store.list_audit(&t, &AuditQuery::all()).await, "list_audit");
    assert!(
        verify_audit_chain(&all).is_ok(),
        "the chain verifies with the decisions in it"
    );
}

/// Pending approvals list by priority (highest first), then deadline (earliest first, none
/// last), then age (oldest first); decided requests are left out.
pub async fn approval_queue_order(store: &dyn StateStore) {
    let t = fresh_tenant();
    let (_, run) = setup_run(store, &t).await;
    let t0 = now();
    let secs = Duration::seconds;
    let make = |priority, created: i64, deadline: Option<i64>| {
        let mut a = new_approval(&run, "crm.update", json!({}), priority);
        a.created_at = t0 + secs(created);
        a.deadline = deadline.map(|d| t0 + secs(d));
        a
    };
    let a = make(Priority::Critical, 5, None);
    let b = make(Priority::High, 1, Some(100));
    let c = make(Priority::High, 2, Some(50));
    let d = make(Priority::High, 0, None);
    let e = make(Priority::Low, 3, None);
    let f = make(Priority::Low, 4, None);
    let decided = make(Priority::Critical, 0, Some(1));
    for request in [&e, &b, &decided, &f, &a, &d, &c] {
        ok(
            store.create_approval(&request.tenant, request).await,
            "create_approval",
        );
    }
    ok(
        store
            .decide_approval(&t, &decided.id, &ApprovalDecision::reject("alice", "no"))
            .await,
        "decide_approval",
    );

    let pending = ok(
        store.list_pending_approvals(&t).await,
        "list_pending_approvals",
    );
    let got: Vec<&ApprovalId> = pending.iter().map(|p| &p.id).collect();
    let want: Vec<&ApprovalId> = [&a, &c, &b, &d, &e, &f].iter().map(|p| &p.id).collect();
    assert_eq!(
        got, want,
        "pending approvals: priority desc, then deadline asc (none last), then oldest first"
    );
    let mut resorted = pending.clone();
    resorted.sort_by(crate::store::approval_queue_order);
    assert_eq!(
        pending, resorted,
        "the order must match records::approval_queue_order"
    );
    assert_eq!(pending[0], a, "listed requests must equal what was created");
}

/// One rule on every backend: a run must belong to an existing session of its tenant, and an
/// approval to an existing run ([`ErrorKind::NotFound`] otherwise, nothing stored).
pub async fn records_point_to_existing_parents(store: &dyn StateStore) {
    let t = fresh_tenant();
    let orphan_session = new_session(&t);
    let run = new_run(&t, &orphan_session);
    expect_err(
        store.create_run(&t, &run).await,
        ErrorKind::NotFound,
        "create_run for a session that does not exist",
    );
    assert_eq!(
        ok(store.get_run(&t, &run.id).await, "get_run"),
        None,
        "a refused run must not be stored"
    );

    // A session of another tenant does not count.
    let other = fresh_tenant();
    let foreign = new_session(&other);
    ok(
        store.create_session(&other, &foreign).await,
        "create_session",
    );
    let mut crossing = new_run(&t, &foreign);
    crossing.tenant = t.clone();
    expect_err(
        store.create_run(&t, &crossing).await,
        ErrorKind::NotFound,
        "create_run for another tenant's session",
    );

    let (_, existing) = setup_run(store, &t).await;
    let mut missing_run = existing.clone();
    missing_run.id = RunId::generate();
    let approval = new_approval(&missing_run, "crm.delete", json!({}), Priority::High);
    expect_err(
        store.create_approval(&t, &approval).await,
        ErrorKind::NotFound,
        "create_approval for a run that does not exist",
    );
    assert_eq!(
        ok(store.get_approval(&t, &approval.id).await, "get_approval"),
        None,
        "a refused approval must not be stored"
    );
    let fine = new_approval(&existing, "crm.delete", json!({}), Priority::High);
    ok(
        store.create_approval(&t, &fine).await,
        "create_approval for an existing run",
    );
}
