//! The workflow store conformance suite: every [`WorkflowStore`] backend runs it.
//!
//! Each check takes a fresh, empty store from the factory (claims are worker-wide, so checks
//! must not see each other's runs). Failures panic with what broke, like any test assertion.
//!
//! ```
//! # async fn demo() {
//! use std::sync::Arc;
//! use agentkit_workflow::InMemoryWorkflowStore;
//! use agentkit_workflow::testkit::conformance;
//!
//! conformance::run_all(|| async { Arc::new(InMemoryWorkflowStore::new()) as _ }).await;
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo());
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use agentkit_core::Error;
use agentkit_core::id::{RunId, TenantId, WorkflowId};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::json;

use crate::definition::{Node, NodeKind, WorkflowDefinition};
use crate::record::{
    ClaimRequest, Delivery, Lease, RunQuery, RunState, StepCommit, StepRecord, StepStatus, Wait,
    WorkflowEvent, WorkflowRun,
};
use crate::store::WorkflowStore;

/// A fixed instant the checks count from.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

fn tenant(name: &str) -> TenantId {
    TenantId::new(name).unwrap()
}

fn wf() -> WorkflowId {
    WorkflowId::from_static("flow")
}

/// A pending run of `flow` v1 in `tenant`, created at `created`.
pub fn new_run(tenant: &TenantId, created: DateTime<Utc>) -> WorkflowRun {
    WorkflowRun::new(
        tenant.clone(),
        RunId::generate(),
        wf(),
        1,
        "a",
        json!({"n": 1}),
        created,
    )
}

fn step(run: &WorkflowRun, seq: u64) -> StepRecord {
    StepRecord {
        tenant: run.tenant.clone(),
        run: run.id.clone(),
        seq,
        node: "a".into(),
        kind: "tool".into(),
        attempt: 1,
        visit: 1,
        status: StepStatus::Succeeded,
        input: json!({"seq": seq}),
        output: json!({"ok": true}),
        error: None,
        worker: "w".into(),
        started_at: t0(),
        finished_at: t0(),
    }
}

/// `run` moved to its next version (the caller changes the rest).
fn bumped(run: &WorkflowRun) -> WorkflowRun {
    let mut next = run.clone();
    next.version += 1;
    next
}

fn claim(worker: &str, now: DateTime<Utc>, limit: usize) -> ClaimRequest {
    ClaimRequest::new(worker, now, now + TimeDelta::seconds(30), limit)
}

/// Runs every check, each on a fresh store from `fresh`.
pub async fn run_all<F, Fut>(fresh: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn WorkflowStore>>,
{
    definitions_are_immutable(fresh().await).await;
    one_run_per_trigger_key(fresh().await).await;
    claims_are_exclusive(fresh().await).await;
    expired_leases_are_reclaimed(fresh().await).await;
    steps_commit_with_their_run(fresh().await).await;
    events_wake_waiting_runs(fresh().await).await;
    early_events_are_kept(fresh().await).await;
    timers_make_runs_due(fresh().await).await;
    tenants_are_isolated(fresh().await).await;
    queries_filter_runs(fresh().await).await;
    claims_respect_the_tenant_cap(fresh().await).await;
    concurrent_steps_stay_separate(fresh().await).await;
}

/// Publishing is idempotent for the same content and refused for other content.
pub async fn definitions_are_immutable(store: Arc<dyn WorkflowStore>) {
    let t = tenant("acme");
    let v1 = WorkflowDefinition::new(wf(), 1, "a").with_node(Node::new("a", NodeKind::Branch {}));
    store.put_workflow(&t, &v1).await.unwrap();
    store.put_workflow(&t, &v1).await.unwrap();
    let changed = v1.clone().with_node(Node::new("b", NodeKind::Branch {}));
    let err = store.put_workflow(&t, &changed).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict(_)),
        "republishing v1 changed: {err}"
    );
    let mut v2 = changed.clone();
    v2.version = 2;
    store.put_workflow(&t, &v2).await.unwrap();
    assert_eq!(
        store.get_workflow(&t, &wf(), Some(1)).await.unwrap(),
        Some(v1)
    );
    assert_eq!(store.get_workflow(&t, &wf(), None).await.unwrap(), Some(v2));
    assert_eq!(
        store
            .get_workflow(&tenant("other"), &wf(), None)
            .await
            .unwrap(),
        None,
        "another tenant sees no definition"
    );
}

/// A trigger key starts one run per workflow; a taken run id is a conflict.
pub async fn one_run_per_trigger_key(store: Arc<dyn WorkflowStore>) {
    let t = tenant("acme");
    let mut first = new_run(&t, t0());
    first.trigger_key = Some("webhook-17".into());
    assert!(
        store
            .create_workflow_run(&t, &first)
            .await
            .unwrap()
            .is_new()
    );
    let mut again = new_run(&t, at(1));
    again.trigger_key = Some("webhook-17".into());
    let created = store.create_workflow_run(&t, &again).await.unwrap();
    assert!(
        !created.is_new(),
        "a retried trigger must not start a second run"
    );
    assert_eq!(created.run().id, first.id);
    assert_eq!(store.get_workflow_run(&t, &again.id).await.unwrap(), None);
    let mut other_flow = new_run(&t, at(2));
    other_flow.workflow = WorkflowId::from_static("other-flow");
    other_flow.trigger_key = Some("webhook-17".into());
    assert!(
        store
            .create_workflow_run(&t, &other_flow)
            .await
            .unwrap()
            .is_new()
    );
    let dup = store.create_workflow_run(&t, &first.clone()).await;
    // Same trigger key: the existing run; without one, a taken id conflicts.
    assert!(matches!(dup, Ok(ref c) if !c.is_new()));
    let mut same_id = first.clone();
    same_id.trigger_key = None;
    assert!(matches!(
        store.create_workflow_run(&t, &same_id).await,
        Err(Error::Conflict(_))
    ));
}

/// Under concurrent claims every runnable run goes to exactly one worker.
pub async fn claims_are_exclusive(store: Arc<dyn WorkflowStore>) {
    let t = tenant("acme");
    let mut ids = HashSet::new();
    for i in 0..40 {
        let run = new_run(&t, at(i));
        ids.insert(run.id.clone());
        store.create_workflow_run(&t, &run).await.unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim_workflow_runs(&claim(&format!("w{w}"), at(100), 3))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                for r in got {
                    assert_eq!(r.lease.as_ref().unwrap().owner, format!("w{w}"));
                    mine.push(r.id);
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut seen = Vec::new();
    for task in tasks {
        seen.extend(task.await.unwrap());
    }
    let unique: HashSet<RunId> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), unique.len(), "a run was claimed twice");
    assert_eq!(unique, ids, "every run is claimed");
    let again = store
        .claim_workflow_runs(&claim("late", at(101), 100))
        .await
        .unwrap();
    assert!(again.is_empty(), "live leases are not claimable");
}

/// An expired lease goes to another worker; the old holder can neither renew nor commit.
pub async fn expired_leases_are_reclaimed(store: Arc<dyn WorkflowStore>) {
    let t = tenant("acme");
    let run = new_run(&t, t0());
    store.create_workflow_run(&t, &run).await.unwrap();
    let first = store
        .claim_workflow_runs(&claim("old", at(0), 1))
        .await
        .unwrap();
    let held = first.into_iter().next().expect("claimed");
    assert_eq!(
        held.version,
        run.version + 1,
        "a claim increments the version"
    );
    let renewed = Lease {
        owner: "old".into(),
        until: at(40),
    };
    assert!(
        store
            .renew_workflow_lease(&t, &run.id, held.version, &renewed)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_workflow_runs(&claim("new", at(39), 1))
            .await
            .unwrap()
            .is_empty()
    );
    let taken = store
        .claim_workflow_runs(&claim("new", at(41), 1))
        .await
        .unwrap();
    let taken = taken.into_iter().next().expect("reclaimed after expiry");
    assert_eq!(taken.lease.as_ref().unwrap().owner, "new");
    assert!(taken.version > held.version);
    let stale = Lease {
        owner: "old".into(),
        until: at(90),
    };
    assert!(
        !store
            .renew_workflow_lease(&t, &run.id, held.version, &stale)
            .await
            .unwrap(),
        "the old holder cannot renew"
    );
    let mut late = bumped(&held);
    late.state = RunState::Done;
    let err = store
        .commit_workflow_step(
            &t,
            &StepCommit::new(late, held.version, Some(step(&held, 1))),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Conflict(_)),
        "the old holder's commit: {err}"
    );
    assert!(
        store
            .list_workflow_steps(&t, &run.id)
            .await
            .unwrap()
            .is_empty()
    );
}

/// A step's row and its run's new state are written together or not at all.
pub async fn steps_commit_with_their_run(store: Arc<dyn WorkflowStore>) {
    let t = tenant("acme");
    let run = new_run(&t, t0());
    store.create_workflow_run(&t, &run).await.unwrap();
    let mut next = bumped(&run);
    next.state = RunState::Running;
    next.next_seq = 2;
    next.context = json!({"n": 2});
    store
        .commit_workflow_step(
            &t,
            &StepCommit::new(next.clone(), run.version, Some(step(&run, 1))),
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_workflow_run(&t, &run.id).await.unwrap(),
        Some(next.clone())
    );
    // A taken seq: refused, the run unchanged.
    let mut dup = bumped(&next);
    dup.context = json!({"n": 99});
    let err = store
        .commit_workflow_step(&t, &StepCommit::new(dup, next.version, Some(step(&run, 1))))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "a taken seq: {err}");
    assert_eq!(
        store.get_workflow_run(&t, &run.id).await.unwrap(),
        Some(next.clone())
    );
    // A stale version: refused, no row.
    let mut stale = bumped(&run);
    stale.context = json!({"n": 50});
    let err = store
        .commit_workflow_step(
            &t,
            &StepCommit::new(stale, run.version, Some(step(&run, 2))),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "a stale version: {err}");
    let steps = store.list_workflow_steps(&t, &run.id).await.unwrap();
    assert_eq!(steps, vec![step(&run, 1)]);
    // Many steps keep their order.
    let mut cur = next;
    for seq in 2..=12 {
        let mut n = bumped(&cur);
        n.next_seq = seq + 1;
        store
            .commit_workflow_step(
                &t,
                &StepCommit::new(n.clone(), cur.version, Some(step(&run, seq))),
            )
            .await
            .unwrap();
        cur = n;
    }
    let seqs: Vec<u64> = store
        .list_workflow_steps(&t, &run.id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.seq)
        .collect();
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
    // A missing run.
    let ghost = new_run(&t, t0());
    let err = store
        .commit_workflow_step(&t, &StepCommit::new(bumped(&ghost), ghost.version, None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "a missing run: {err}");
}

fn waiting_for(run: &WorkflowRun, name: &str, correlation: &str) -> WorkflowRun {
    let mut w = bumped(run);
    w.state = RunState::Waiting;
    w.wait = Some(Wait::Event {
        name: name.into(),
        correlation: correlation.into(),
    });
    w.cursor.waiting = Some(1);
    w.lease = None;
    w
}

/// A delivered event wakes exactly the runs waiting for its name and correlation, once.
pub async fn events_wake_waiting_runs(store: Arc<dyn WorkflowStore>) {
    let t = tenant("acme");
    let a = new_run(&t, t0());
    let b = new_run(&t, at(1));
    for r in [&a, &b] {
        store.create_workflow_run(&t, r).await.unwrap();
    }
    let wa = waiting_for(&a, "lead.created", "L-1");
    let wb = waiting_for(&b, "lead.created", "L-2");
    for (w, r) in [(&wa, &a), (&wb, &b)] {
        let out = store
            .commit_workflow_step(&t, &StepCommit::new(w.clone(), r.version, None))
            .await
            .unwrap();
        assert!(out.woken.is_none());
    }
    assert!(
        store
            .claim_workflow_runs(&claim("w", at(5), 10))
            .await
            .unwrap()
            .is_empty()
    );
    let event = WorkflowEvent::new("e-1", "lead.created", "L-1", json!({"lead": "L-1"}), at(6));
    assert_eq!(
        store.deliver_workflow_event(&t, &event).await.unwrap(),
        Delivery::Woke(vec![a.id.clone()])
    );
    let woken = store.get_workflow_run(&t, &a.id).await.unwrap().unwrap();
    assert_eq!(woken.state, RunState::Running);
    assert_eq!(woken.resume_input, Some(json!({"lead": "L-1"})));
    assert_eq!(woken.version, wa.version + 1);
    assert_eq!(
        store.get_workflow_run(&t, &b.id).await.unwrap(),
        Some(wb.clone()),
        "another correlation is not woken"
    );
    assert_eq!(
        store.deliver_workflow_event(&t, &event).await.unwrap(),
        Delivery::Duplicate,
        "a retried delivery changes nothing"
    );
    let claimed = store
        .claim_workflow_runs(&claim("w", at(7), 10))
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&a.id]
    );
}

/// An event that comes before anyone waits is kept and taken by the first run that waits.
pub async fn early_events_are_kept(store: Arc<dyn WorkflowStore>) {
    let t = tenant("acme");
    let event = WorkflowEvent::new("e-9", "call.done", "C-9", json!({"minutes": 4}), at(0));
    assert_eq!(
        store.deliver_workflow_event(&t, &event).await.unwrap(),
        Delivery::Kept
    );
    let run = new_run(&t, t0());
    store.create_workflow_run(&t, &run).await.unwrap();
    let w = waiting_for(&run, "call.done", "C-9");
    let out = store
        .commit_workflow_step(
            &t,
            &StepCommit::new(w.clone(), run.version, Some(step(&run, 1))),
        )
        .await
        .unwrap();
    let woken = out
        .woken
        .expect("the kept event wakes the run in the same commit");
    assert_eq!(woken.state, RunState::Running);
    assert_eq!(woken.resume_input, Some(json!({"minutes": 4})));
    assert_eq!(
        store.get_workflow_run(&t, &run.id).await.unwrap(),
        Some(woken.clone())
    );
    // Consumed: a second run waiting for it is not woken.
    let other = new_run(&t, at(1));
    store.create_workflow_run(&t, &other).await.unwrap();
    let out = store
        .commit_workflow_step(
            &t,
            &StepCommit::new(waiting_for(&other, "call.done", "C-9"), other.version, None),
        )
        .await
        .unwrap();
    assert!(out.woken.is_none(), "an event is taken once");
}

/// A run with a `wake_at` is claimable from then on, and the earliest is reported.
pub async fn timers_make_runs_due(store: Arc<dyn WorkflowStore>) {
    let t = tenant("acme");
    let run = new_run(&t, t0());
    store.create_workflow_run(&t, &run).await.unwrap();
    let mut w = bumped(&run);
    w.state = RunState::Waiting;
    w.wait = Some(Wait::Timer);
    w.wake_at = Some(at(3600));
    store
        .commit_workflow_step(&t, &StepCommit::new(w.clone(), run.version, None))
        .await
        .unwrap();
    let mut backoff = new_run(&t, at(1));
    backoff.state = RunState::Running;
    backoff.wake_at = Some(at(60));
    store.create_workflow_run(&t, &backoff).await.unwrap();
    assert_eq!(store.next_workflow_wake().await.unwrap(), Some(at(60)));
    assert!(
        store
            .claim_workflow_runs(&claim("w", at(59), 10))
            .await
            .unwrap()
            .is_empty()
    );
    let got = store
        .claim_workflow_runs(&claim("w", at(60), 10))
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&backoff.id]
    );
    let mut finished = bumped(&got[0]);
    finished.state = RunState::Done;
    finished.wake_at = None;
    finished.lease = None;
    store
        .commit_workflow_step(&t, &StepCommit::new(finished, got[0].version, None))
        .await
        .unwrap();
    assert_eq!(store.next_workflow_wake().await.unwrap(), Some(at(3600)));
    let got = store
        .claim_workflow_runs(&claim("w", at(3600), 10))
        .await
        .unwrap();
    assert_eq!(got.iter().map(|r| &r.id).collect::<Vec<_>>(), vec![&run.id]);
    assert_eq!(
        got[0].state,
        RunState::Waiting,
        "a claim does not change the state"
    );
}

/// Nothing of one tenant is readable or writable through another.
pub async fn tenants_are_isolated(store: Arc<dyn WorkflowStore>) {
    let a = tenant("tenant-a");
    let b = tenant("tenant-b");
    let run = new_run(&a, t0());
    store.create_workflow_run(&a, &run).await.unwrap();
    store
        .commit_workflow_step(
            &a,
            &StepCommit::new(
                waiting_for(&run, "ev", "k"),
                run.version,
                Some(step(&run, 1)),
            ),
        )
        .await
        .unwrap();
    assert_eq!(store.get_workflow_run(&b, &run.id).await.unwrap(), None);
    assert!(
        store
            .list_workflow_runs(&b, &RunQuery::all())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_workflow_steps(&b, &run.id)
            .await
            .unwrap()
            .is_empty()
    );
    // Writing A's run through B: refused (the record names A) or not found (B has no such run).
    let stored = store.get_workflow_run(&a, &run.id).await.unwrap().unwrap();
    let err = store
        .commit_workflow_step(&b, &StepCommit::new(bumped(&stored), stored.version, None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    let mut as_b = bumped(&stored);
    as_b.tenant = b.clone();
    let err = store
        .commit_workflow_step(&b, &StepCommit::new(as_b, stored.version, None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    assert!(matches!(
        store.create_workflow_run(&b, &new_run(&a, t0())).await,
        Err(Error::InvalidInput(_))
    ));
    let a_lease = Lease {
        owner: "w".into(),
        until: at(10),
    };
    assert!(
        !store
            .renew_workflow_lease(&b, &run.id, stored.version, &a_lease)
            .await
            .unwrap()
    );
    // B's event with A's name and key wakes nothing of A's.
    let event = WorkflowEvent::new("e", "ev", "k", json!(1), at(1));
    assert_eq!(
        store.deliver_workflow_event(&b, &event).await.unwrap(),
        Delivery::Kept
    );
    let still = store.get_workflow_run(&a, &run.id).await.unwrap().unwrap();
    assert_eq!(still.state, RunState::Waiting);
    // The same event id in A is A's own first delivery.
    assert_eq!(
        store.deliver_workflow_event(&a, &event).await.unwrap(),
        Delivery::Woke(vec![run.id.clone()])
    );
    // Trigger keys are per tenant.
    let mut ka = new_run(&a, t0());
    ka.trigger_key = Some("k".into());
    let mut kb = new_run(&b, t0());
    kb.trigger_key = Some("k".into());
    assert!(store.create_workflow_run(&a, &ka).await.unwrap().is_new());
    assert!(store.create_workflow_run(&b, &kb).await.unwrap().is_new());
}

/// Run queries filter by workflow, state and creation time, oldest first.
pub async fn queries_filter_runs(store: Arc<dyn WorkflowStore>) {
    let t = tenant("acme");
    let mut runs = Vec::new();
    for i in 0..6 {
        let mut r = new_run(&t, at(i * 10));
        if i % 2 == 1 {
            r.workflow = WorkflowId::from_static("other");
        }
        if i >= 4 {
            r.state = RunState::Done;
        }
        store.create_workflow_run(&t, &r).await.unwrap();
        runs.push(r);
    }
    let ids = |rs: Vec<WorkflowRun>| rs.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let all = ids(store
        .list_workflow_runs(&t, &RunQuery::all())
        .await
        .unwrap());
    assert_eq!(all, runs.iter().map(|r| r.id.clone()).collect::<Vec<_>>());
    let flow = ids(store
        .list_workflow_runs(&t, &RunQuery::all().workflow(wf()))
        .await
        .unwrap());
    assert_eq!(
        flow,
        vec![runs[0].id.clone(), runs[2].id.clone(), runs[4].id.clone()]
    );
    let done = ids(store
        .list_workflow_runs(&t, &RunQuery::all().states([RunState::Done]))
        .await
        .unwrap());
    assert_eq!(done, vec![runs[4].id.clone(), runs[5].id.clone()]);
    let window = ids(store
        .list_workflow_runs(
            &t,
            &RunQuery::all().created_between(at(10), at(30)).limit(5),
        )
        .await
        .unwrap());
    assert_eq!(window, vec![runs[1].id.clone(), runs[2].id.clone()]);
    let limited = ids(store
        .list_workflow_runs(&t, &RunQuery::all().limit(2))
        .await
        .unwrap());
    assert_eq!(limited.len(), 2);
}

/// A claim takes at most `per_tenant` runs of one tenant, so one tenant cannot starve others.
pub async fn claims_respect_the_tenant_cap(store: Arc<dyn WorkflowStore>) {
    let busy = tenant("busy");
    let quiet = tenant("quiet");
    for i in 0..10 {
        store
            .create_workflow_run(&busy, &new_run(&busy, at(i)))
            .await
            .unwrap();
    }
    store
        .create_workflow_run(&quiet, &new_run(&quiet, at(50)))
        .await
        .unwrap();
    let got = store
        .claim_workflow_runs(&claim("w", at(100), 5).per_tenant(2))
        .await
        .unwrap();
    let busy_n = got.iter().filter(|r| r.tenant == busy).count();
    let quiet_n = got.iter().filter(|r| r.tenant == quiet).count();
    assert_eq!((busy_n, quiet_n), (2, 1), "claimed {got:?}");
}

/// Concurrent step commits (which a store may write together, as group commits do) stay
/// separate steps: a stale one, or one whose step row is taken after its run update, is
/// refused alone and changes nothing; the others land.
pub async fn concurrent_steps_stay_separate(store: Arc<dyn WorkflowStore>) {
    let t = tenant("acme");
    let mut runs = Vec::new();
    for i in 0..40 {
        let mut run = new_run(&t, t0());
        store.create_workflow_run(&t, &run).await.unwrap();
        if i % 4 == 1 {
            // Step 1 is taken already: a second step 1 must be refused whole.
            let mut next = bumped(&run);
            next.next_seq = 2;
            let commit = StepCommit::new(next.clone(), run.version, Some(step(&run, 1)));
            store.commit_workflow_step(&t, &commit).await.unwrap();
            run = next;
        }
        runs.push(run);
    }
    let mut tasks = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let (store, t, run) = (store.clone(), t.clone(), run.clone());
        tasks.push(tokio::spawn(async move {
            let mut next = bumped(&run);
            next.context = json!({"i": i});
            // Every fourth commit names a version the store does not hold.
            let expected = if i % 4 == 0 {
                run.version + 7
            } else {
                run.version
            };
            let row = (i % 4 == 1).then(|| step(&run, 1));
            store
                .commit_workflow_step(&t, &StepCommit::new(next, expected, row))
                .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let result = task.await.unwrap();
        let stored = store
            .get_workflow_run(&t, &runs[i].id)
            .await
            .unwrap()
            .unwrap();
        if i % 4 <= 1 {
            assert!(matches!(result, Err(Error::Conflict(_))), "{i}: {result:?}");
            assert_eq!(stored, runs[i], "a refused step changes nothing");
        } else {
            result.unwrap();
            assert_eq!(stored.context, json!({"i": i}));
        }
    }
}
