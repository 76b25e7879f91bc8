//! Retries, failure strategies, policy approvals, cancellation, and crash recovery without
//! repeating a completed effect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use agentkit_core::id::{RunId, TenantId, WorkflowId};
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::store::{ApprovalDecision, ApprovalStatus};
use agentkit_core::{Error, Result, async_trait};
use agentkit_workflow::record::{
    ClaimRequest, CommitOutcome, Created, Delivery, Lease, RunQuery, StepCommit, StepRecord,
    WorkflowEvent,
};
use agentkit_workflow::{
    InMemoryWorkflowStore, RunState, StepStatus, Wait, WorkflowDefinition, WorkflowRun,
    WorkflowStore,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use support::{Harness, flaky_tool};

#[tokio::test]
async fn failing_nodes_retry_with_durable_backoff() {
    let h = Harness::new(|effects, _| vec![flaky_tool("sms.send", 2, effects)]);
    h.publish(json!({
        "id": "sms", "version": 1, "start": "send",
        "nodes": [{"id": "send", "kind": "tool", "tool": "sms.send", "args": {"to": "+1"},
                   "retry": {"max_attempts": 3, "backoff_ms": 60000}}]
    }))
    .await;
    let run = h.start("sms", json!({})).await;
    h.settle().await;
    let waiting = h.run(&run).await;
    assert_eq!(waiting.state, RunState::Running);
    assert_eq!(waiting.wake_at, Some(h.clock_now() + TimeDelta::minutes(1)));
    assert!(waiting.lease.is_none(), "a backing-off run holds no worker");
    h.advance(TimeDelta::seconds(59));
    assert_eq!(h.settle().await, 0);
    h.advance(TimeDelta::seconds(1));
    h.settle().await;
    h.advance(TimeDelta::minutes(2));
    h.settle().await;
    assert_eq!(h.state_of(&run).await, RunState::Done);
    assert_eq!(h.effects.count("sms.send"), 1);
    let steps = h.engine.steps(&h.tenant, &run).await.unwrap();
    let attempts: Vec<(u32, StepStatus)> = steps.iter().map(|s| (s.attempt, s.status)).collect();
    assert_eq!(
        attempts,
        vec![
            (1, StepStatus::Failed),
            (2, StepStatus::Failed),
            (3, StepStatus::Succeeded)
        ]
    );
    assert!(
        steps[0]
            .error
            .as_deref()
            .unwrap()
            .contains("sms.send is down")
    );
}

#[tokio::test]
async fn abort_fails_the_run_with_the_nodes_error() {
    let h = Harness::new(|effects, _| vec![flaky_tool("sms.send", 99, effects)]);
    h.publish(json!({
        "id": "sms", "version": 1, "start": "send",
        "nodes": [
            {"id": "send", "kind": "tool", "tool": "sms.send", "args": {}},
            {"id": "never", "kind": "tool", "tool": "mail.send", "args": {}}
        ],
        "edges": [{"from": "send", "to": "never"}]
    }))
    .await;
    let run = h.start("sms", json!({})).await;
    h.settle().await;
    let failed = h.run(&run).await;
    assert_eq!(failed.state, RunState::Failed);
    assert!(failed.error.unwrap().contains("node `send` failed"));
    assert_eq!(h.effects.count("mail.send"), 0);
}

async fn failure_approval(h: &Harness) -> agentkit_core::id::ApprovalId {
    let pending = h.state.list_pending_approvals(&h.tenant).await.unwrap();
    let failure = pending
        .iter()
        .find(|p| p.call.name == "workflow.failure")
        .expect("a failure approval");
    failure.id.clone()
}

#[tokio::test]
async fn wait_for_human_turns_a_failure_into_a_retry_skip_or_abort_decision() {
    let h = Harness::new(|effects, _| vec![flaky_tool("sms.send", 1, effects)]);
    h.publish(json!({
        "id": "sms", "version": 1, "start": "send", "on_failure": "WAIT_FOR_HUMAN",
        "nodes": [
            {"id": "send", "kind": "tool", "tool": "sms.send", "args": {}},
            {"id": "after", "kind": "tool", "tool": "mail.send", "args": {"sent": "${send.ok}"}}
        ],
        "edges": [{"from": "send", "to": "after"}]
    }))
    .await;
    // Retry: the tool works the second time.
    let retried = h.start("sms", json!({})).await;
    h.settle().await;
    let run = h.run(&retried).await;
    assert_eq!(run.state, RunState::Waiting);
    assert!(matches!(run.wait, Some(Wait::Approval { .. })));
    let id = failure_approval(&h).await;
    h.engine
        .decide_approval(&h.tenant, &id, &ApprovalDecision::approve("ops"))
        .await
        .unwrap();
    h.settle().await;
    assert_eq!(h.state_of(&retried).await, RunState::Done);
    assert_eq!(h.effects.calls("mail.send"), vec![json!({"sent": true})]);

    // Skip and abort, on a tool that always fails.
    let h = Harness::new(|effects, _| vec![flaky_tool("sms.send", 99, effects)]);
    h.publish(json!({
        "id": "sms", "version": 1, "start": "send", "on_failure": "wait_for_human",
        "nodes": [
            {"id": "send", "kind": "tool", "tool": "sms.send", "args": {}},
            {"id": "after", "kind": "tool", "tool": "mail.send", "args": {"sent": "${send}"}}
        ],
        "edges": [{"from": "send", "to": "after"}]
    }))
    .await;
    let skipped = h.start("sms", json!({})).await;
    h.settle().await;
    let mut skip = ApprovalDecision::approve("ops");
    skip.edited_arguments = Some(json!({"action": "skip"}));
    h.engine
        .decide_approval(&h.tenant, &failure_approval(&h).await, &skip)
        .await
        .unwrap();
    h.settle().await;
    assert_eq!(h.state_of(&skipped).await, RunState::Done);
    assert_eq!(h.effects.calls("mail.send"), vec![json!({"sent": null})]);
    assert!(
        h.step_nodes(&skipped)
            .await
            .contains(&"send:skipped".to_owned())
    );

    let aborted = h.start("sms", json!({})).await;
    h.settle().await;
    let id = failure_approval(&h).await;
    h.engine
        .decide_approval(&h.tenant, &id, &ApprovalDecision::reject("ops", "give up"))
        .await
        .unwrap();
    h.settle().await;
    let run = h.run(&aborted).await;
    assert_eq!(run.state, RunState::Failed);
    assert!(run.error.unwrap().contains("aborted"));
}

#[tokio::test]
async fn rollback_runs_the_compensations_of_completed_nodes_in_reverse_order() {
    let h = Harness::new(|effects, _| vec![flaky_tool("crm.fail", 99, effects)]);
    h.publish(json!({
        "id": "campaign", "version": 1, "start": "ads", "on_failure": "ROLLBACK",
        "nodes": [
            {"id": "ads", "kind": "tool", "tool": "ads.launch", "args": {"id": "A1"},
             "compensate": {"tool": "ads.stop", "args": {"id": "A1", "launched": "${ads.ok}"}}},
            {"id": "note", "kind": "transform", "set": {"x": 1}},
            {"id": "crm", "kind": "tool", "tool": "crm.update", "args": {"lead": "L1"},
             "compensate": {"tool": "crm.revert", "args": {"lead": "L1"}}},
            {"id": "fail", "kind": "tool", "tool": "crm.fail", "args": {}}
        ],
        "edges": [
            {"from": "ads", "to": "note"}, {"from": "note", "to": "crm"}, {"from": "crm", "to": "fail"}
        ]
    }))
    .await;
    let run = h.start("campaign", json!({})).await;
    h.settle().await;
    let failed = h.run(&run).await;
    assert_eq!(failed.state, RunState::Failed);
    assert!(
        failed.error.as_deref().unwrap().contains("rolled back"),
        "{:?}",
        failed.error
    );
    let log = h.log.lock().unwrap().clone();
    let names: Vec<&str> = log.iter().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(
        names,
        vec!["ads.launch", "crm.update", "crm.revert", "ads.stop"]
    );
    assert_eq!(
        h.effects.calls("ads.stop"),
        vec![json!({"id": "A1", "launched": true})]
    );
    let steps = h.step_nodes(&run).await;
    assert_eq!(
        steps[steps.len() - 2..],
        ["crm:compensated".to_owned(), "ads:compensated".to_owned()]
    );
    // The undo calls are governed calls too, audited as compensations.
    use agentkit_core::store::AuditQuery;
    let audit = h
        .state
        .list_audit(&h.tenant, &AuditQuery::default())
        .await
        .unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|e| e.entry.kind == "tool.compensate")
            .count(),
        2
    );
}

#[tokio::test]
async fn a_tool_the_policy_holds_for_approval_waits_and_runs_once_approved() {
    let policy = AllowListPolicy::allow_all()
        .require_approval_for(["ads.launch"])
        .into_arc();
    let h = Harness::with_policy(|_, _| vec![], policy);
    h.publish(json!({
        "id": "ads", "version": 1, "start": "launch",
        "nodes": [{"id": "launch", "kind": "tool", "tool": "ads.launch", "args": {"budget": 100}}]
    }))
    .await;
    let run = h.start("ads", json!({})).await;
    h.settle().await;
    let waiting = h.run(&run).await;
    let Some(Wait::Approval { approval, .. }) = waiting.wait.clone() else {
        panic!("expected an approval wait, got {waiting:?}");
    };
    assert_eq!(h.effects.count("ads.launch"), 0);
    // A nudge before the decision changes nothing.
    assert!(h.engine.resume(&h.tenant, &run, json!(null)).await.unwrap());
    h.settle().await;
    assert_eq!(h.state_of(&run).await, RunState::Waiting);
    let decided = h
        .engine
        .decide_approval(&h.tenant, &approval, &ApprovalDecision::approve("cfo"))
        .await
        .unwrap();
    assert_eq!(decided.status, ApprovalStatus::Approved);
    h.settle().await;
    assert_eq!(h.state_of(&run).await, RunState::Done);
    assert_eq!(h.effects.calls("ads.launch"), vec![json!({"budget": 100})]);
}

#[tokio::test]
async fn cancelling_stops_a_waiting_run() {
    let h = Harness::new(|_, _| vec![]);
    h.publish(json!({
        "id": "w", "version": 1, "start": "wait",
        "nodes": [
            {"id": "wait", "kind": "wait_event", "event": "e", "correlation": "k"},
            {"id": "mail", "kind": "tool", "tool": "mail.send", "args": {}}
        ],
        "edges": [{"from": "wait", "to": "mail"}]
    }))
    .await;
    let run = h.start("w", json!({})).await;
    h.settle().await;
    assert!(
        h.engine
            .cancel(&h.tenant, &run, "customer left")
            .await
            .unwrap()
    );
    assert!(!h.engine.cancel(&h.tenant, &run, "again").await.unwrap());
    let e = WorkflowEvent::new("1", "e", "k", json!({}), h.clock_now());
    assert_eq!(
        h.engine.send_event(&h.tenant, &e).await.unwrap(),
        Delivery::Kept
    );
    h.settle().await;
    let cancelled = h.run(&run).await;
    assert_eq!(cancelled.state, RunState::Cancelled);
    assert_eq!(cancelled.error.as_deref(), Some("cancelled: customer left"));
    assert_eq!(h.effects.count("mail.send"), 0);
}

/// A store that refuses the next step commits while `crash` is set, as if the process died
/// between a step's effect and its commit.
struct CrashingStore {
    inner: InMemoryWorkflowStore,
    crash: AtomicBool,
}

#[async_trait]
impl WorkflowStore for CrashingStore {
    async fn put_workflow(&self, t: &TenantId, d: &WorkflowDefinition) -> Result<()> {
        self.inner.put_workflow(t, d).await
    }
    async fn get_workflow(
        &self,
        t: &TenantId,
        id: &WorkflowId,
        v: Option<u32>,
    ) -> Result<Option<WorkflowDefinition>> {
        self.inner.get_workflow(t, id, v).await
    }
    async fn create_workflow_run(&self, t: &TenantId, r: &WorkflowRun) -> Result<Created> {
        self.inner.create_workflow_run(t, r).await
    }
    async fn get_workflow_run(&self, t: &TenantId, id: &RunId) -> Result<Option<WorkflowRun>> {
        self.inner.get_workflow_run(t, id).await
    }
    async fn list_workflow_runs(&self, t: &TenantId, q: &RunQuery) -> Result<Vec<WorkflowRun>> {
        self.inner.list_workflow_runs(t, q).await
    }
    async fn list_workflow_steps(&self, t: &TenantId, r: &RunId) -> Result<Vec<StepRecord>> {
        self.inner.list_workflow_steps(t, r).await
    }
    async fn claim_workflow_runs(&self, r: &ClaimRequest) -> Result<Vec<WorkflowRun>> {
        self.inner.claim_workflow_runs(r).await
    }
    async fn renew_workflow_lease(
        &self,
        t: &TenantId,
        r: &RunId,
        v: u64,
        l: &Lease,
    ) -> Result<bool> {
        self.inner.renew_workflow_lease(t, r, v, l).await
    }
    async fn commit_workflow_step(&self, t: &TenantId, c: &StepCommit) -> Result<CommitOutcome> {
        if self.crash.load(Ordering::SeqCst) {
            return Err(Error::Storage {
                message: "the process died".into(),
                retryable: false,
                source: None,
            });
        }
        self.inner.commit_workflow_step(t, c).await
    }
    async fn deliver_workflow_event(&self, t: &TenantId, e: &WorkflowEvent) -> Result<Delivery> {
        self.inner.deliver_workflow_event(t, e).await
    }
    async fn next_workflow_wake(&self) -> Result<Option<DateTime<Utc>>> {
        self.inner.next_workflow_wake().await
    }
}

#[tokio::test]
async fn a_step_whose_commit_was_lost_does_not_repeat_its_effect() {
    let store = Arc::new(CrashingStore {
        inner: InMemoryWorkflowStore::new(),
        crash: AtomicBool::new(false),
    });
    let h = Harness::with_store(
        |_, _| vec![],
        AllowListPolicy::allow_all().into_arc(),
        store.clone(),
    );
    h.publish(json!({
        "id": "pay", "version": 1, "start": "charge",
        "nodes": [
            {"id": "charge", "kind": "tool", "tool": "crm.update", "args": {"amount": 42}},
            {"id": "receipt", "kind": "tool", "tool": "mail.send", "args": {"paid": "${charge.ok}"}}
        ],
        "edges": [{"from": "charge", "to": "receipt"}]
    }))
    .await;
    let run = h.start("pay", json!({})).await;
    store.crash.store(true, Ordering::SeqCst);
    let err = h.engine.run_due("w1").await.unwrap_err();
    assert!(err.to_string().contains("the process died"), "{err}");
    assert_eq!(h.effects.count("crm.update"), 1, "the effect happened");
    assert!(
        h.engine.steps(&h.tenant, &run).await.unwrap().is_empty(),
        "but no step was recorded"
    );
    // The "restarted" process: the lease expires, another worker claims the run.
    store.crash.store(false, Ordering::SeqCst);
    h.advance(TimeDelta::minutes(1));
    h.engine.run_due("w2").await.unwrap();
    assert_eq!(h.state_of(&run).await, RunState::Done);
    assert_eq!(
        h.effects.count("crm.update"),
        1,
        "the charge was replayed from its record, not repeated"
    );
    assert_eq!(h.effects.calls("mail.send"), vec![json!({"paid": true})]);
    let executions = h.state.list_tool_executions(&h.tenant, &run).await.unwrap();
    assert_eq!(executions.len(), 2, "one execution record per tool step");
}

#[tokio::test]
async fn a_run_whose_agentkit_record_was_lost_in_a_crash_still_gets_its_approvals() {
    let policy = AllowListPolicy::allow_all()
        .require_approval_for(["ads.launch"])
        .into_arc();
    let h = Harness::with_policy(|_, _| vec![], policy);
    let def = h
        .publish(json!({
            "id": "two", "version": 1, "start": "ok",
            "nodes": [
                {"id": "ok", "kind": "approval", "reason": "go?"},
                {"id": "launch", "kind": "tool", "tool": "ads.launch", "args": {}}
            ],
            "edges": [{"from": "ok", "to": "launch"}]
        }))
        .await;
    // As if the process died between storing the run and its agentkit record: the run exists
    // only in the workflow store.
    for start in ["ok", "launch"] {
        let run = WorkflowRun::new(
            h.tenant.clone(),
            RunId::generate(),
            def.id.clone(),
            1,
            start,
            json!({"params": {}}),
            h.clock_now(),
        );
        h.store.create_workflow_run(&h.tenant, &run).await.unwrap();
        h.settle().await;
        let waiting = h.run(&run.id).await;
        assert_eq!(waiting.state, RunState::Waiting, "{start}: {waiting:?}");
        assert!(matches!(waiting.wait, Some(Wait::Approval { .. })));
    }
}
