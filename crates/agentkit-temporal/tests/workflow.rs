//! Workflow definitions on Temporal against a real dev server, node kind by node kind:
//! parallel branches that run at once and meet at a join, a durable timer, a transform, a
//! sub-workflow as a child workflow, conditional edges; a failed node under WAIT_FOR_HUMAN
//! skipped by a reviewer, a `wait_event` that times out onto its `on_timeout` route, an event
//! for another correlation or delivered twice ignored; ABORT, and a reviewer's abort. And the
//! worker refuses definitions it cannot run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agentkit_core::error::Error;
use agentkit_core::exec::{ToolExecutor, ToolSet};
use agentkit_core::id::{RunId, TenantId};
use agentkit_core::policy::AllowListPolicy;
use agentkit_core::store::{ApprovalDecision, InMemoryStore, StateStore};
use agentkit_core::tool::{FnTool, SideEffect, Tool, ToolSpec};
use agentkit_temporal::{GraphRunInput, TemporalAgents};
use agentkit_workflow::{StepStatus, WorkflowDefinition, WorkflowEvent};
use chrono::Utc;
use serde_json::{Value, json};

fn def(v: Value) -> WorkflowDefinition {
    serde_json::from_value(v).unwrap()
}

/// `ops.note` answers `{"noted": <who>}`; `ops.fail` always fails (counted).
fn executor(store: Arc<dyn StateStore>, failures: Arc<AtomicUsize>) -> ToolExecutor {
    let note: Arc<dyn Tool> = Arc::new(FnTool::new(
        ToolSpec::new("ops.note", "notes something", json!({"type": "object"}))
            .with_side_effect(SideEffect::Write),
        |_ctx, args| async move { Ok(json!({"noted": args["who"]})) },
    ));
    let fail: Arc<dyn Tool> = Arc::new(FnTool::new(
        ToolSpec::new("ops.fail", "always fails", json!({"type": "object"}))
            .with_side_effect(SideEffect::Write),
        move |_ctx, _args| {
            let failures = failures.clone();
            async move {
                failures.fetch_add(1, Ordering::SeqCst);
                Err(Error::Timeout("the system did not answer".into()))
            }
        },
    ));
    ToolExecutor::builder(ToolSet::new([note, fail]).unwrap(), store)
        .policy(AllowListPolicy::new(["ops.*"]).into_arc())
        .build()
}

fn fanout() -> WorkflowDefinition {
    def(json!({
        "id": "fanout", "version": 1, "start": "split", "inputs": ["size"],
        "nodes": [
            {"id": "split", "kind": "parallel", "branches": ["wait", "note"], "join": "meet"},
            {"id": "wait", "kind": "timer", "delay_ms": 5000},
            {"id": "after_wait", "kind": "transform", "set": {"waited": true}},
            {"id": "note", "kind": "tool", "tool": "ops.note", "args": {"who": "b"}},
            {"id": "meet", "kind": "join"},
            {"id": "child", "kind": "sub_workflow", "workflow": "double",
             "input": {"value": "${size}", "who": "${note.noted}"}},
            {"id": "decide", "kind": "branch"},
            {"id": "big", "kind": "transform", "set": {"verdict": "big"}},
            {"id": "small", "kind": "transform", "set": {"verdict": "small"}}
        ],
        "edges": [
            {"from": "wait", "to": "after_wait"},
            {"from": "after_wait", "to": "meet"},
            {"from": "note", "to": "meet"},
            {"from": "meet", "to": "child"},
            {"from": "child", "to": "decide"},
            {"from": "decide", "to": "big", "when": "child.total >= 10"},
            {"from": "decide", "to": "small"}
        ]
    }))
}

fn double() -> WorkflowDefinition {
    def(json!({
        "id": "double", "version": 1, "start": "sum", "inputs": ["value", "who"],
        "nodes": [{"id": "sum", "kind": "transform", "set": {"total": "${value}", "by": "${who}"}}],
        "edges": []
    }))
}

fn fragile() -> WorkflowDefinition {
    def(json!({
        "id": "fragile", "version": 1, "start": "flaky", "inputs": ["key"],
        "on_failure": "WAIT_FOR_HUMAN",
        "nodes": [
            {"id": "flaky", "kind": "tool", "tool": "ops.fail", "args": {},
             "retry": {"max_attempts": 2, "backoff_ms": 100}},
            {"id": "ping", "kind": "wait_event", "event": "ping", "correlation": "${key}",
             "timeout_ms": 1500, "on_timeout": "late"},
            {"id": "late", "kind": "transform", "set": {"timed_out": true}},
            {"id": "strict", "kind": "tool", "tool": "ops.fail", "args": {},
             "on_failure": "ABORT"}
        ],
        "edges": [
            {"from": "flaky", "to": "ping"},
            {"from": "ping", "to": "strict", "when": "ping.go"},
            {"from": "ping", "to": "late"}
        ]
    }))
}

/// Runs `$flow` while a worker serves `$defs` on a fresh queue named `$queue`.
macro_rules! with_worker {
    ($client:expr, $executor:expr, [$($def:expr),*], |$queue:ident| $flow:block) => {{
        let $queue = common::unique("wf");
        let worker = TemporalAgents::new()
            .workflow_executor($executor)
            $(.workflow($def))*
            .worker(&$client, &$queue)
            .unwrap();
        common::serve(worker, async { $flow }).await
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branches_run_at_once_and_meet_then_a_child_workflow_and_a_condition() {
    let Some(server) = common::dev_server("fanout").await else {
        return;
    };
    let client = agentkit_temporal::connect(&server.url, "default")
        .await
        .unwrap();
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let exec = executor(store.clone(), Arc::default());
    let run = common::unique("fanout");
    let out = with_worker!(client, exec, [fanout(), double()], |queue| {
        let input = GraphRunInput::new("acme", "fanout", json!({"size": 12}));
        agentkit_temporal::start_workflow(&client, &queue, &run, input)
            .await
            .unwrap();
        agentkit_temporal::workflow_result(&client, &run)
            .await
            .unwrap()
    });
    let steps: Vec<String> = out
        .steps
        .iter()
        .map(|s| format!("{}:{}", s.node, s.status.as_str()))
        .collect();
    // The tool branch finished while the other branch's 5 s timer still ran: they ran at once.
    assert_eq!(
        steps,
        [
            "split:succeeded",
            "note:succeeded",
            "meet:succeeded", // the first arrival
            "wait:succeeded",
            "after_wait:succeeded",
            "meet:succeeded", // all arrived: the run goes on
            "child:succeeded",
            "decide:succeeded",
            "big:succeeded",
        ],
        "{:#?}",
        out.steps
    );
    assert_eq!(out.steps[2].output, json!({"arrived": 1, "of": 2}));
    assert_eq!(out.steps[5].output, json!({"arrived": 2}));
    assert!(out.context["wait"].is_string(), "the timer's wake time");
    assert_eq!(out.context["waited"], true);
    assert_eq!(
        out.context["child"]["total"], 12,
        "the child's final context"
    );
    assert_eq!(out.context["child"]["by"], "b");
    assert_eq!(out.context["verdict"], "big");
    assert_eq!(
        out.steps[6].input["run"],
        json!(format!("{run}.child.1.1")),
        "the child workflow's id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewer_skips_a_failed_node_and_a_wait_times_out_onto_its_route() {
    let Some(server) = common::dev_server("skip").await else {
        return;
    };
    let client = agentkit_temporal::connect(&server.url, "default")
        .await
        .unwrap();
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let failures = Arc::new(AtomicUsize::new(0));
    let tenant = TenantId::new("acme").unwrap();
    let run = common::unique("fragile");
    let out = with_worker!(
        client,
        executor(store.clone(), failures.clone()),
        [fragile()],
        |queue| {
            let input = GraphRunInput::new("acme", "fragile", json!({"key": "k-1"}));
            agentkit_temporal::start_workflow(&client, &queue, &run, input)
                .await
                .unwrap();
            // An event for another correlation key: never taken by this run's wait.
            let other = WorkflowEvent::new("e-1", "ping", "k-2", json!({"go": true}), Utc::now());
            agentkit_temporal::send_event(&client, &run, &other)
                .await
                .unwrap();
            let failed = common::pending(store.as_ref(), &tenant).await;
            assert_eq!(failed.call.name, "workflow.failure");
            assert!(
                failed.reason.contains("node `flaky` failed"),
                "{}",
                failed.reason
            );
            assert_eq!(
                failures.load(Ordering::SeqCst),
                2,
                "both attempts ran before a human was asked"
            );
            let mut skip = ApprovalDecision::approve("ops-lead");
            skip.edited_arguments = Some(json!({"action": "skip"}));
            agentkit_temporal::decide(&client, store.clone(), &tenant, &failed.id, &skip)
                .await
                .unwrap();
            agentkit_temporal::workflow_result(&client, &run)
                .await
                .unwrap()
        }
    );
    let steps: Vec<(String, StepStatus)> = out
        .steps
        .iter()
        .map(|s| (s.node.clone(), s.status))
        .collect();
    assert_eq!(
        steps,
        [
            ("flaky".into(), StepStatus::Failed),
            ("flaky".into(), StepStatus::Failed),
            ("flaky".into(), StepStatus::Skipped),
            ("ping".into(), StepStatus::Succeeded),
            ("late".into(), StepStatus::Succeeded),
        ],
        "{:#?}",
        out.steps
    );
    assert_eq!(out.steps[1].attempt, 2);
    assert_eq!(out.context["flaky"], Value::Null);
    assert_eq!(
        out.context["ping"],
        Value::Null,
        "timed out: no event taken"
    );
    assert_eq!(out.context["timed_out"], true);
    assert_eq!(failures.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_ends_the_run_and_a_reviewers_rejection_aborts_it() {
    let Some(server) = common::dev_server("abort").await else {
        return;
    };
    let client = agentkit_temporal::connect(&server.url, "default")
        .await
        .unwrap();
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let failures = Arc::new(AtomicUsize::new(0));
    let tenant = TenantId::new("acme").unwrap();
    let (skipped, rejected) = (common::unique("skipped"), common::unique("rejected"));
    let (aborted, by_reviewer) = with_worker!(
        client,
        executor(store.clone(), failures.clone()),
        [fragile()],
        |queue| {
            // The event for our key arrives first and is kept: the wait takes it at once and its
            // edge goes to `strict`, whose failure (ABORT) ends the run.
            let input = GraphRunInput::new("acme", "fragile", json!({"key": "k-1"}));
            agentkit_temporal::start_workflow(&client, &queue, &skipped, input.clone())
                .await
                .unwrap();
            let go = WorkflowEvent::new("e-1", "ping", "k-1", json!({"go": true}), Utc::now());
            agentkit_temporal::send_event(&client, &skipped, &go)
                .await
                .unwrap();
            agentkit_temporal::send_event(&client, &skipped, &go)
                .await
                .unwrap(); // a retried delivery
            let failed = common::pending(store.as_ref(), &tenant).await;
            let mut skip = ApprovalDecision::approve("ops-lead");
            skip.edited_arguments = Some(json!({"action": "skip"}));
            agentkit_temporal::decide(&client, store.clone(), &tenant, &failed.id, &skip)
                .await
                .unwrap();
            let aborted = agentkit_temporal::workflow_result(&client, &skipped).await;

            agentkit_temporal::start_workflow(&client, &queue, &rejected, input)
                .await
                .unwrap();
            let failed = common::pending(store.as_ref(), &tenant).await;
            agentkit_temporal::decide(
                &client,
                store.clone(),
                &tenant,
                &failed.id,
                &ApprovalDecision::reject("ops-lead", "the system is down for the day"),
            )
            .await
            .unwrap();
            (
                aborted,
                agentkit_temporal::workflow_result(&client, &rejected).await,
            )
        }
    );
    let error = aborted.unwrap_err().to_string();
    assert!(error.contains("node `strict` failed"), "{error}");
    let error = by_reviewer.unwrap_err().to_string();
    assert!(
        error.contains("node `flaky` failed and ops-lead aborted the run"),
        "{error}"
    );
    // 2 attempts of `flaky` per run, 1 of `strict`.
    assert_eq!(failures.load(Ordering::SeqCst), 5);
    let record = store
        .get_run(&tenant, &RunId::new(&rejected).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, agentkit_core::store::RunStatus::Failed);
}

#[test]
fn the_worker_refuses_definitions_it_cannot_run() {
    let store: Arc<dyn StateStore> = Arc::new(InMemoryStore::new());
    let unknown = def(json!({
        "id": "w", "version": 1, "start": "a",
        "nodes": [
            {"id": "a", "kind": "tool", "tool": "ops.missing", "args": {}},
            {"id": "b", "kind": "agent", "agent": "nobody", "input": "hi"}
        ],
        "edges": [{"from": "a", "to": "b"}]
    }));
    let err = TemporalAgents::new()
        .workflow_executor(executor(store.clone(), Arc::default()))
        .workflow(unknown)
        .check()
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidConfig(_)), "{err:?}");
    assert!(text.contains("unknown tool `ops.missing`"), "{text}");
    assert!(text.contains("unknown agent `nobody`"), "{text}");

    let mut changed = double();
    changed.name = "changed".into();
    let err = TemporalAgents::new()
        .workflow_executor(executor(store, Arc::default()))
        .workflow(double())
        .workflow(changed)
        .check()
        .unwrap_err();
    assert!(err.to_string().contains("registered twice"), "{err}");

    let err = TemporalAgents::new()
        .workflow(double())
        .check()
        .unwrap_err();
    assert!(err.to_string().contains("workflow_executor"), "{err}");
}
