//! The approval queue: ordering, assignment, SLA breach, escalation, expiry (paused time), races.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use agentkit_core::message::ToolCall;
use agentkit_core::policy::Priority;
use agentkit_core::prelude::*;
use agentkit_core::store::{ApprovalRequest, ApprovalStatus};
use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
use agentkit_policy::approvals::{ApprovalQueue, Escalation, ExpiryOutcome, QueueConfig, Reviewer};
use serde_json::json;

fn reviewer(id: &str, roles: &[&str]) -> Reviewer {
    Reviewer {
        id: id.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        available: true,
        max_load: 5,
    }
}

async fn request(
    store: &Arc<dyn StateStore>,
    priority: Priority,
    created_offset_secs: i64,
) -> ApprovalRequest {
    let scope = agentkit_core::testkit::scope("acme", "ops", "s", RunId::generate());
    let session = agentkit_core::store::SessionRecord::new(
        scope.tenant.clone(),
        scope.session.clone(),
        scope.agent.clone(),
    );
    store.create_session(&scope.tenant, &session).await.unwrap();
    store
        .create_run(&scope.tenant, &agentkit_core::store::RunRecord::new(&scope))
        .await
        .unwrap();
    let mut r = ApprovalRequest::new(
        &scope,
        ToolCall::new("c", "payments.refund", json!({"amount": 100})),
        "refunds need approval",
        priority,
    );
    r.created_at += chrono::Duration::seconds(created_offset_secs);
    store.create_approval(&r.tenant, &r).await.unwrap();
    r
}

fn config() -> QueueConfig {
    QueueConfig {
        escalations: vec![Escalation {
            after: Duration::from_secs(3600),
            raise_to: Some(Priority::High),
            assign_role: Some("manager".into()),
        }],
        expire_after: Some(Duration::from_secs(6 * 3600)),
        on_expiry: ExpiryOutcome::Expire,
        ..QueueConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn ordering_assignment_breach_and_escalation() {
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let queue = ApprovalQueue::new(
        store.clone(),
        config(),
        vec![
            reviewer("ann", &[]),
            reviewer("bob", &[]),
            reviewer("mia", &["manager"]),
        ],
    )
    .with_clock(ApprovalQueue::tokio_clock());
    let tenant = TenantId::from_static("acme");
    let low = request(&store, Priority::Low, 0).await;
    let critical = request(&store, Priority::Critical, 1).await;
    let medium = request(&store, Priority::Medium, 2).await;
    let items = queue.pending(&tenant).await.unwrap();
    let order: Vec<_> = items.iter().map(|i| i.request.id.clone()).collect();
    assert_eq!(
        order,
        vec![critical.id.clone(), medium.id.clone(), low.id.clone()]
    );
    // Spread over the three reviewers (least loaded first).
    let mut assignees: Vec<_> = items.iter().map(|i| i.assignee.clone().unwrap()).collect();
    assignees.sort();
    assert_eq!(assignees, ["ann", "bob", "mia"]);
    queue.set_available("ann", false).unwrap();
    assert!(
        queue
            .pending(&tenant)
            .await
            .unwrap()
            .iter()
            .all(|i| i.assignee.as_deref() != Some("ann"))
    );

    // 20 minutes: the critical request (15 min SLA) is breached, the others are not.
    tokio::time::advance(Duration::from_secs(20 * 60)).await;
    let breached = queue.breached(&tenant).await.unwrap();
    assert_eq!(breached.len(), 1);
    assert_eq!(breached[0].request.id, critical.id);

    // After an hour: escalated to high priority and routed to managers.
    tokio::time::advance(Duration::from_secs(3600)).await;
    let items = queue.pending(&tenant).await.unwrap();
    let low_item = items.iter().find(|i| i.request.id == low.id).unwrap();
    assert_eq!(low_item.priority, Priority::High);
    assert_eq!(low_item.escalation_level, 1);
    assert_eq!(low_item.assignee.as_deref(), Some("mia"));
    let refused = queue
        .decide(&tenant, &low.id, &ApprovalDecision::approve("bob"))
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::PermissionDenied);
    queue
        .decide(&tenant, &low.id, &ApprovalDecision::approve("mia"))
        .await
        .unwrap();
    let stranger = queue
        .decide(&tenant, &medium.id, &ApprovalDecision::approve("mallory"))
        .await
        .unwrap_err();
    assert_eq!(stranger.kind(), ErrorKind::PermissionDenied);
}

#[tokio::test(start_paused = true)]
async fn expiry_under_paused_time_reaches_the_agent() {
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let refund = FnTool::new(
        ToolSpec::new("payments.refund", "refund", json!({"type": "object"})),
        |_c, _a| async { Ok(json!("refunded")) },
    );
    let agent = |model: ScriptedModel| {
        Agent::builder()
            .id("ops")
            .model(Arc::new(model), "m")
            .tool(Arc::new(FnTool::new(
                refund.spec().clone(),
                |_c, _a| async { Ok(json!("refunded")) },
            )))
            .store(store.clone())
            .policy(
                AllowListPolicy::new(["payments.*"])
                    .require_approval_for(["payments.refund"])
                    .into_arc(),
            )
            .build()
            .unwrap()
    };
    let out = agent(ScriptedModel::new([ScriptedResponse::tool_call(
        "payments.refund",
        json!({"amount": 100}),
    )]))
    .run(RunRequest::new("acme", "s1", "refund order 7"))
    .await
    .unwrap();
    let id = out.approvals()[0].id.clone();
    let queue = ApprovalQueue::new(store.clone(), config(), vec![reviewer("ann", &[])])
        .with_clock(ApprovalQueue::tokio_clock());
    let runner = queue.clone();
    let task = tokio::spawn(async move {
        runner
            .run_expiry(vec![TenantId::from_static("acme")], Duration::from_secs(60))
            .await
    });
    tokio::time::advance(Duration::from_secs(5 * 3600)).await;
    tokio::task::yield_now().await;
    assert_eq!(
        store
            .get_approval(&TenantId::from_static("acme"), &id)
            .await
            .unwrap()
            .unwrap()
            .status,
        ApprovalStatus::Pending
    );
    tokio::time::advance(Duration::from_secs(3600 + 61)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let decided = store
        .get_approval(&TenantId::from_static("acme"), &id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decided.status, ApprovalStatus::Expired);
    assert_eq!(decided.reviewer.as_deref(), Some("expiry"));
    assert!(decided.decided_automatically);
    task.abort();
    let model = ScriptedModel::new([ScriptedResponse::text(
        "The refund request expired; please ask again.",
    )]);
    let resumed = agent(model.clone())
        .resume("acme", out.run_id())
        .await
        .unwrap();
    assert!(resumed.reply().is_some());
    let told = model.requests()[0]
        .messages
        .last()
        .unwrap()
        .text()
        .to_string();
    assert!(told.contains("expired"), "{told}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_approve_and_reject_exactly_one_wins() {
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let queue = ApprovalQueue::new(
        store.clone(),
        QueueConfig::default(),
        vec![reviewer("ann", &[]), reviewer("bob", &[])],
    );
    for _ in 0..20 {
        let r = request(&store, Priority::Medium, 0).await;
        let (q1, q2, id1, id2) = (queue.clone(), queue.clone(), r.id.clone(), r.id.clone());
        let approve = tokio::spawn(async move {
            q1.decide(
                &TenantId::from_static("acme"),
                &id1,
                &ApprovalDecision::approve("ann"),
            )
            .await
        });
        let reject = tokio::spawn(async move {
            q2.decide(
                &TenantId::from_static("acme"),
                &id2,
                &ApprovalDecision::reject("bob", "no"),
            )
            .await
        });
        let (a, b) = (approve.await.unwrap(), reject.await.unwrap());
        assert!(
            a.is_ok() ^ b.is_ok(),
            "exactly one decision wins: {a:?} / {b:?}"
        );
        let loser = match (a, b) {
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
            other => panic!("expected one winner: {other:?}"),
        };
        assert_eq!(loser.kind(), ErrorKind::Conflict);
        let stored = store
            .get_approval(&TenantId::from_static("acme"), &r.id)
            .await
            .unwrap()
            .unwrap();
        let winner = if stored.status == ApprovalStatus::Approved {
            "ann"
        } else {
            "bob"
        };
        assert_eq!(stored.reviewer.as_deref(), Some(winner));
    }
}

/// An approval decided by expiry (`on_expiry = approve`) is recorded as automatic and never
/// counts as a human's: the call runs only where the policy accepts an automatic approval.
#[tokio::test(start_paused = true)]
async fn an_automatic_approval_is_not_a_humans() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    for accept_automatic in [false, true] {
        let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let agent = |model: ScriptedModel| {
            let runs = runs.clone();
            let mut policy =
                AllowListPolicy::new(["payments.*"]).require_approval_for(["payments.refund"]);
            if accept_automatic {
                policy = policy.accept_automatic_approval_for(["payments.refund"]);
            }
            Agent::builder()
                .id("ops")
                .model(Arc::new(model), "m")
                .tool(Arc::new(FnTool::new(
                    ToolSpec::new("payments.refund", "refund", json!({"type": "object"})),
                    move |_c, _a| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        async { Ok(json!("refunded")) }
                    },
                )))
                .store(store.clone())
                .policy(policy.into_arc())
                .build()
                .unwrap()
        };
        let out = agent(ScriptedModel::new([ScriptedResponse::tool_call(
            "payments.refund",
            json!({"amount": 100}),
        )]))
        .run(RunRequest::new("acme", "s1", "refund order 7"))
        .await
        .unwrap();
        let config = QueueConfig {
            expire_after: Some(Duration::from_secs(60)),
            on_expiry: ExpiryOutcome::Approve,
            ..QueueConfig::default()
        };
        let queue = ApprovalQueue::new(store.clone(), config, vec![reviewer("ann", &[])])
            .with_clock(ApprovalQueue::tokio_clock());
        tokio::time::advance(Duration::from_secs(120)).await;
        let decided = queue
            .expire_overdue(&TenantId::from_static("acme"))
            .await
            .unwrap();
        assert_eq!(decided.len(), 1);
        assert_eq!(decided[0].status, ApprovalStatus::Approved);
        assert!(decided[0].decided_automatically);

        let model = ScriptedModel::new([ScriptedResponse::text("done")]);
        agent(model.clone())
            .resume("acme", out.run_id())
            .await
            .unwrap();
        let told = model.requests()[0]
            .messages
            .last()
            .unwrap()
            .text()
            .to_string();
        if accept_automatic {
            assert_eq!(runs.load(Ordering::SeqCst), 1, "accepted: {told}");
        } else {
            assert_eq!(runs.load(Ordering::SeqCst), 0, "{told}");
            assert!(told.contains("human"), "{told}");
        }
        let audit = store
            .list_audit(
                &TenantId::from_static("acme"),
                &agentkit_core::store::AuditQuery::all().kind("approval.decided"),
            )
            .await
            .unwrap();
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].entry.actor, "system:expiry");
    }
}
