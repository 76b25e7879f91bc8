//! Each node kind as a host uses it: tools, transforms and branches, approvals, events,
//! timers, parallel branches, sub-workflows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use agentkit_core::store::ApprovalDecision;
use agentkit_workflow::{Delivery, RunState, StartRequest, Wait, WorkflowEvent};
use chrono::TimeDelta;
use serde_json::json;
use support::Harness;

#[tokio::test]
async fn tools_transforms_and_branches_follow_the_context() {
    let h = Harness::new(|_, _| vec![]);
    h.publish(json!({
        "id": "score", "version": 1, "start": "rate", "inputs": ["lead"],
        "params": {"hot": 50},
        "nodes": [
            {"id": "rate", "kind": "transform", "set": {"score": "${lead.visits * 10}"}},
            {"id": "route", "kind": "branch"},
            {"id": "call", "kind": "tool", "tool": "crm.update",
             "args": {"lead": "${lead.id}", "stage": "hot", "score": "${score}"}},
            {"id": "nurture", "kind": "tool", "tool": "mail.send",
             "args": {"to": "${lead.email}", "subject": "Hi ${lead.name}"}}
        ],
        "edges": [
            {"from": "rate", "to": "route"},
            {"from": "route", "to": "call", "when": "score >= params.hot"},
            {"from": "route", "to": "nurture"}
        ]
    }))
    .await;
    let hot = h
        .start(
            "score",
            json!({"lead": {"id": "L1", "visits": 7, "email": "a@x", "name": "Ada"}}),
        )
        .await;
    let cold = h
        .start(
            "score",
            json!({"lead": {"id": "L2", "visits": 1, "email": "b@x", "name": "Bo"}}),
        )
        .await;
    h.settle().await;
    assert_eq!(h.state_of(&hot).await, RunState::Done);
    assert_eq!(h.state_of(&cold).await, RunState::Done);
    assert_eq!(
        h.effects.calls("crm.update"),
        vec![json!({"lead": "L1", "stage": "hot", "score": 70})]
    );
    assert_eq!(
        h.effects.calls("mail.send"),
        vec![json!({"to": "b@x", "subject": "Hi Bo"})]
    );
    let run = h.run(&hot).await;
    assert_eq!(
        run.context["call"]["ok"], true,
        "a node's output lands under its id"
    );
    assert_eq!(
        h.step_nodes(&hot).await,
        vec!["rate:succeeded", "route:succeeded", "call:succeeded"]
    );
    let steps = h.engine.steps(&h.tenant, &hot).await.unwrap();
    assert_eq!(
        steps[2].input,
        json!({"lead": "L1", "stage": "hot", "score": 70})
    );
    assert_eq!(
        steps.iter().map(|s| s.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[tokio::test]
async fn approval_nodes_wait_for_a_decision_and_continue_with_it() {
    let h = Harness::new(|_, _| vec![]);
    h.publish(json!({
        "id": "launch", "version": 1, "start": "review", "inputs": ["budget"],
        "nodes": [
            {"id": "review", "kind": "approval", "reason": "Launch the campaign?",
             "payload": {"budget": "${budget}"}, "on_reject": "notify"},
            {"id": "launch", "kind": "tool", "tool": "ads.launch",
             "args": {"budget": "${review.payload.budget}"}},
            {"id": "notify", "kind": "tool", "tool": "mail.send", "args": {"text": "rejected"}}
        ],
        "edges": [{"from": "review", "to": "launch"}]
    }))
    .await;
    let approved = h.start("launch", json!({"budget": 500})).await;
    let rejected = h.start("launch", json!({"budget": 9000})).await;
    h.settle().await;
    for id in [&approved, &rejected] {
        let run = h.run(id).await;
        assert_eq!(run.state, RunState::Waiting);
        assert!(run.lease.is_none(), "a waiting run holds no lease");
    }
    let pending = h.state.list_pending_approvals(&h.tenant).await.unwrap();
    assert_eq!(
        pending.len(),
        2,
        "approval nodes are ordinary approval requests"
    );
    let for_run =
        |id: &agentkit_core::id::RunId| pending.iter().find(|p| p.run == *id).unwrap().id.clone();
    // The reviewer lowers the budget.
    let mut edit = ApprovalDecision::approve("maria");
    edit.edited_arguments = Some(json!({"budget": 400}));
    h.engine
        .decide_approval(&h.tenant, &for_run(&approved), &edit)
        .await
        .unwrap();
    h.engine
        .decide_approval(
            &h.tenant,
            &for_run(&rejected),
            &ApprovalDecision::reject("maria", "too much"),
        )
        .await
        .unwrap();
    let again = h
        .engine
        .decide_approval(
            &h.tenant,
            &for_run(&approved),
            &ApprovalDecision::approve("tom"),
        )
        .await;
    assert!(again.is_err(), "an approval is decided once");
    h.settle().await;
    assert_eq!(h.state_of(&approved).await, RunState::Done);
    assert_eq!(h.effects.calls("ads.launch"), vec![json!({"budget": 400})]);
    assert_eq!(h.state_of(&rejected).await, RunState::Done);
    assert_eq!(
        h.effects.count("mail.send"),
        1,
        "the rejection took the on_reject route"
    );
    assert_eq!(h.run(&rejected).await.context["review"]["approved"], false);
}

#[tokio::test]
async fn events_wake_the_correlated_run_and_early_events_are_not_lost() {
    let h = Harness::new(|_, _| vec![]);
    h.publish(json!({
        "id": "lead", "version": 1, "start": "wait", "inputs": ["campaign"],
        "nodes": [
            {"id": "wait", "kind": "wait_event", "event": "lead.created",
             "correlation": "${campaign}", "timeout_ms": 3600000, "on_timeout": "give_up"},
            {"id": "save", "kind": "tool", "tool": "crm.update", "args": {"lead": "${wait.email}"}},
            {"id": "give_up", "kind": "tool", "tool": "ads.stop", "args": {"campaign": "${campaign}"}}
        ],
        "edges": [{"from": "wait", "to": "save"}]
    }))
    .await;
    let a = h.start("lead", json!({"campaign": "C-1"})).await;
    let b = h.start("lead", json!({"campaign": "C-2"})).await;
    h.settle().await;
    assert!(
        matches!(h.run(&a).await.wait, Some(Wait::Event { ref correlation, .. }) if correlation == "C-1")
    );
    let event = |id: &str, c: &str, email: &str| {
        WorkflowEvent::new(
            id,
            "lead.created",
            c,
            json!({"email": email}),
            h.clock_now(),
        )
    };
    let d = h
        .engine
        .send_event(&h.tenant, &event("e1", "C-1", "ada@x"))
        .await
        .unwrap();
    assert_eq!(d, Delivery::Woke(vec![a.clone()]));
    assert_eq!(
        h.engine
            .send_event(&h.tenant, &event("e1", "C-1", "ada@x"))
            .await
            .unwrap(),
        Delivery::Duplicate,
        "a retried webhook is delivered once"
    );
    h.settle().await;
    assert_eq!(h.state_of(&a).await, RunState::Done);
    assert_eq!(
        h.effects.calls("crm.update"),
        vec![json!({"lead": "ada@x"})]
    );
    // No event for C-2: after the timeout it takes the timeout route.
    h.advance(TimeDelta::minutes(59));
    h.settle().await;
    assert_eq!(h.state_of(&b).await, RunState::Waiting);
    h.advance(TimeDelta::minutes(2));
    h.settle().await;
    assert_eq!(
        h.state_of(&b).await,
        RunState::Done,
        "{:#?}",
        h.run(&b).await
    );
    assert_eq!(
        h.effects.calls("ads.stop"),
        vec![json!({"campaign": "C-2"})]
    );
    // An event that arrives before its run waits is kept for it.
    assert_eq!(
        h.engine
            .send_event(&h.tenant, &event("e3", "C-3", "early@x"))
            .await
            .unwrap(),
        Delivery::Kept
    );
    let c = h.start("lead", json!({"campaign": "C-3"})).await;
    h.settle().await;
    assert_eq!(h.state_of(&c).await, RunState::Done);
    assert!(
        h.effects
            .calls("crm.update")
            .contains(&json!({"lead": "early@x"}))
    );
}

#[tokio::test]
async fn timers_hold_no_process_and_fire_when_due() {
    let h = Harness::new(|_, _| vec![]);
    h.publish(json!({
        "id": "later", "version": 1, "start": "sleep",
        "nodes": [
            {"id": "sleep", "kind": "timer", "delay_ms": 86400000},
            {"id": "mail", "kind": "tool", "tool": "mail.send", "args": {"text": "a day later"}}
        ],
        "edges": [{"from": "sleep", "to": "mail"}]
    }))
    .await;
    let run = h.start("later", json!({})).await;
    h.settle().await;
    let waiting = h.run(&run).await;
    assert_eq!(waiting.state, RunState::Waiting);
    assert_eq!(waiting.wake_at, Some(h.clock_now() + TimeDelta::days(1)));
    assert_eq!(h.store.next_workflow_wake().await.unwrap(), waiting.wake_at);
    h.advance(TimeDelta::hours(23));
    assert_eq!(h.settle().await, 0, "nothing is due before the timer");
    h.advance(TimeDelta::hours(1));
    h.settle().await;
    assert_eq!(h.state_of(&run).await, RunState::Done);
    assert_eq!(h.effects.count("mail.send"), 1);
}

#[tokio::test]
async fn parallel_branches_meet_at_their_join() {
    let h = Harness::new(|_, _| vec![]);
    h.publish(json!({
        "id": "fan", "version": 1, "start": "split",
        "nodes": [
            {"id": "split", "kind": "parallel", "branches": ["ads", "mail", "wait"], "join": "meet"},
            {"id": "ads", "kind": "tool", "tool": "ads.launch", "args": {}},
            {"id": "mail", "kind": "tool", "tool": "mail.send", "args": {}},
            {"id": "wait", "kind": "wait_event", "event": "ok", "correlation": "x"},
            {"id": "meet", "kind": "join"},
            {"id": "crm", "kind": "tool", "tool": "crm.update",
             "args": {"ads": "${ads.ok}", "mail": "${mail.ok}", "signal": "${wait.v}"}}
        ],
        "edges": [
            {"from": "ads", "to": "meet"}, {"from": "mail", "to": "meet"},
            {"from": "wait", "to": "meet"}, {"from": "meet", "to": "crm"}
        ]
    }))
    .await;
    let run = h.start("fan", json!({})).await;
    h.settle().await;
    // The branches without waits ran before the run parked on the event.
    assert_eq!(
        (h.effects.count("ads.launch"), h.effects.count("mail.send")),
        (1, 1)
    );
    assert_eq!(
        h.effects.count("crm.update"),
        0,
        "the join waits for every branch"
    );
    assert_eq!(h.state_of(&run).await, RunState::Waiting);
    h.engine
        .send_event(
            &h.tenant,
            &WorkflowEvent::new("e", "ok", "x", json!({"v": 7}), h.clock_now()),
        )
        .await
        .unwrap();
    h.settle().await;
    assert_eq!(h.state_of(&run).await, RunState::Done);
    assert_eq!(
        h.effects.calls("crm.update"),
        vec![json!({"ads": true, "mail": true, "signal": 7})]
    );
    let joins = h
        .step_nodes(&run)
        .await
        .into_iter()
        .filter(|s| s.starts_with("meet"))
        .count();
    assert_eq!(joins, 3, "three arrivals at the join");
}

#[tokio::test]
async fn sub_workflows_run_as_child_runs_and_hand_back_their_context() {
    let h = Harness::new(|_, _| vec![]);
    h.publish(json!({
        "id": "child", "version": 1, "start": "work", "inputs": ["who"],
        "nodes": [{"id": "work", "kind": "tool", "tool": "crm.update", "args": {"who": "${who}"}}]
    }))
    .await;
    h.publish(json!({
        "id": "parent", "version": 1, "start": "sub",
        "nodes": [
            {"id": "sub", "kind": "sub_workflow", "workflow": "child", "input": {"who": "ada"}},
            {"id": "after", "kind": "tool", "tool": "mail.send", "args": {"saw": "${sub.work.ok}"}}
        ],
        "edges": [{"from": "sub", "to": "after"}]
    }))
    .await;
    let parent = h.start("parent", json!({})).await;
    h.settle().await;
    assert_eq!(h.state_of(&parent).await, RunState::Done);
    assert_eq!(h.effects.calls("mail.send"), vec![json!({"saw": true})]);
    let runs = h
        .engine
        .list_runs(
            &h.tenant,
            &agentkit_workflow::RunQuery::all().workflow("child".parse().unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].parent.as_ref(), Some(&parent));
}

#[tokio::test]
async fn a_trigger_key_starts_one_run_and_bad_starts_are_refused() {
    let h = Harness::new(|_, _| vec![]);
    h.publish(json!({
        "id": "hook", "version": 1, "start": "save", "inputs": ["lead"],
        "params": {"stage": "new"},
        "nodes": [{"id": "save", "kind": "tool", "tool": "crm.update",
                   "args": {"lead": "${lead}", "stage": "${params.stage}"}}]
    }))
    .await;
    let start = || {
        StartRequest::new("hook", json!({"lead": "L9"}))
            .unwrap()
            .trigger_key("delivery-123")
            .param("stage", json!("warm"))
    };
    let first = h.engine.start(&h.tenant, start()).await.unwrap();
    let second = h.engine.start(&h.tenant, start()).await.unwrap();
    assert!(first.is_new() && !second.is_new());
    assert_eq!(first.run().id, second.run().id);
    h.settle().await;
    assert_eq!(
        h.effects.calls("crm.update"),
        vec![json!({"lead": "L9", "stage": "warm"})]
    );
    for bad in [
        StartRequest::new("hook", json!({})).unwrap(),
        StartRequest::new("hook", json!(["not", "an", "object"])).unwrap(),
        StartRequest::new("hook", json!({"lead": 1}))
            .unwrap()
            .param("nope", json!(1)),
        StartRequest::new("ghost", json!({})).unwrap(),
    ] {
        assert!(h.engine.start(&h.tenant, bad).await.is_err());
    }
    assert!(StartRequest::new("bad id!", json!({})).is_err());
}

#[tokio::test]
async fn publishing_validates_against_the_engines_tools_and_keeps_versions_immutable() {
    let h = Harness::new(|_, _| vec![]);
    let bad = h.def(json!({
        "id": "w", "version": 1, "start": "a",
        "nodes": [{"id": "a", "kind": "tool", "tool": "bank.transfer", "args": {}}]
    }));
    let err = h.engine.publish(&h.tenant, &bad).await.unwrap_err();
    assert!(
        err.to_string().contains("unknown tool `bank.transfer`"),
        "{err}"
    );
    let good = h
        .publish(json!({
            "id": "w", "version": 1, "start": "a",
            "nodes": [{"id": "a", "kind": "tool", "tool": "mail.send", "args": {}}]
        }))
        .await;
    h.engine
        .publish(&h.tenant, &good)
        .await
        .expect("the same content again");
    let mut changed = good.clone();
    changed.name = "renamed".into();
    assert!(h.engine.publish(&h.tenant, &changed).await.is_err());
}

#[tokio::test]
async fn a_long_loop_keeps_the_run_record_flat() {
    let h = Harness::new(|_, _| vec![]);
    h.publish(json!({
        "id": "loop", "version": 1, "start": "count", "inputs": ["i", "n"],
        "nodes": [
            {"id": "count", "kind": "transform", "set": {"i": "${i + 1}"}, "max_visits": 1000},
            {"id": "check", "kind": "branch", "max_visits": 1000},
            {"id": "done", "kind": "branch"}
        ],
        "edges": [
            {"from": "count", "to": "check"},
            {"from": "check", "to": "count", "when": "i < n"},
            {"from": "check", "to": "done"}
        ]
    }))
    .await;
    let size = |run: &agentkit_workflow::WorkflowRun| serde_json::to_vec(run).unwrap().len();
    let short = h.start("loop", json!({"i": 0, "n": 10})).await;
    let long = h.start("loop", json!({"i": 0, "n": 500})).await;
    h.settle().await;
    let (short, long) = (h.run(&short).await, h.run(&long).await);
    assert_eq!(
        (short.state, long.state),
        (RunState::Done, RunState::Done),
        "{:?}",
        short.error
    );
    assert_eq!(long.context["i"], 500);
    assert_eq!(
        h.engine.steps(&h.tenant, &long.id).await.unwrap().len(),
        1001
    );
    // What each step rewrites (the run) does not grow with the steps taken: only the step log
    // (append-only rows) does.
    assert!(
        size(&long) <= size(&short) + 16,
        "run record: {} bytes after 21 steps, {} after 1,001",
        size(&short),
        size(&long)
    );
    // A loop past its bound fails the run instead of spinning.
    let runaway = h.start("loop", json!({"i": 0, "n": 5000})).await;
    h.settle().await;
    let failed = h.run(&runaway).await;
    assert_eq!(failed.state, RunState::Failed);
    assert!(failed.error.unwrap().contains("more than 1000 times"));
}
