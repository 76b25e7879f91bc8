//! What each kind of node does on Temporal: tool nodes as governed activities, agent and
//! sub-workflow nodes as child workflows, approvals and events as signals, timers as durable
//! timers, transforms and branches in the workflow itself.

use std::time::Duration;

use agentkit_core::store::ApprovalStatus;
use agentkit_workflow::{Node, NodeKind, StepStatus};
use futures::future::Either;
use serde_json::{Value, json};
use temporalio_common::RetryPolicy;
use temporalio_sdk::{ActivityOptions, ChildWorkflowOptions, WorkflowResult};

use super::activities::GraphActivities;
use super::run::{Interpreter, Outcome, bookkeeping};
use super::types::{GraphRunInput, NodeCall, NodeStep, OpenApproval, SnapshotInput};
use super::workflow::GraphWorkflow;
use crate::workflow::AgentWorkflow;

/// How long a tool node's activity may take when the node sets no timeout.
const TOOL_DEFAULT: Duration = Duration::from_secs(60);

/// Room for the store around a tool node's own timeout.
const TOOL_MARGIN: Duration = Duration::from_secs(5);

/// How often a call left in doubt is looked at again without a `resume` signal.
const IN_DOUBT_POLL: Duration = Duration::from_secs(30);

impl Interpreter {
    /// Runs one node (not parallel or join) to its outcome, waiting as long as it takes.
    pub(super) async fn node(
        &self,
        node: &Node,
        visit: u32,
        attempt: u32,
    ) -> WorkflowResult<Outcome> {
        Ok(match &node.kind {
            NodeKind::Tool { tool, .. } => {
                let args = match self.render(node, "arguments") {
                    Ok(a) => a,
                    Err(o) => return Ok(o),
                };
                let call = NodeCall {
                    scope: self.scope.clone(),
                    call_id: format!("{}.{visit}.{attempt}", node.id),
                    tool: tool.clone(),
                    args,
                    key: format!("temporal:{}:{}:{visit}:{attempt}", self.scope.run, node.id),
                    approval: None,
                    timeout_ms: node.timeout_ms,
                    compensation: false,
                };
                self.tool(node, call).await?
            }
            NodeKind::Approval {
                reason,
                priority,
                on_reject,
                ..
            } => {
                let payload = match self.render(node, "payload") {
                    Ok(p) => p,
                    Err(o) => return Ok(o),
                };
                let id = format!("wfa-{}-{}-{visit}", self.scope.run, node.id);
                let view = self
                    .approval(OpenApproval {
                        scope: self.scope.clone(),
                        id,
                        call_id: node.id.clone(),
                        tool: "workflow.approval".into(),
                        payload: payload.clone(),
                        reason: reason.clone(),
                        priority: *priority,
                    })
                    .await?;
                let decision = json!({
                    "approved": view.status == ApprovalStatus::Approved,
                    "status": view.status,
                    "reviewer": view.reviewer,
                    "comment": view.comment,
                    "payload": view.payload,
                });
                match (view.status, on_reject) {
                    (ApprovalStatus::Approved, _) => Outcome::done(payload, decision),
                    (_, Some(to)) => Outcome::routed(payload, decision, to.clone()),
                    _ => Outcome::fail(
                        decision,
                        format!(
                            "rejected by {}{}",
                            view.reviewer.as_deref().unwrap_or("a reviewer"),
                            view.comment
                                .as_deref()
                                .map(|c| format!(": {c}"))
                                .unwrap_or_default()
                        ),
                        false,
                    ),
                }
            }
            NodeKind::WaitEvent {
                event, on_timeout, ..
            } => {
                let correlation = match self.wf.correlation_key(&node.id, &self.context.borrow()) {
                    Ok(c) => c,
                    Err(e) => return Ok(Outcome::fail(Value::Null, e, false)),
                };
                let input = json!({"event": event, "correlation": correlation});
                match self
                    .wait_event(event, &correlation, node.timeout_ms)
                    .await?
                {
                    Some(payload) => Outcome::done(input, payload),
                    None => match on_timeout {
                        Some(to) => Outcome::routed(input, Value::Null, to.clone()),
                        None => {
                            Outcome::fail(input, format!("no `{event}` event came in time"), false)
                        }
                    },
                }
            }
            NodeKind::Timer { delay_ms } => {
                self.ctx.timer(Duration::from_millis(*delay_ms)).await;
                let now = self
                    .ctx
                    .workflow_time()
                    .map(chrono::DateTime::<chrono::Utc>::from);
                Outcome::done(json!({"delay_ms": delay_ms}), json!(now))
            }
            NodeKind::Branch {} => Outcome::done(Value::Null, Value::Null),
            NodeKind::Transform { .. } => {
                match self.wf.transform(&node.id, &self.context.borrow()) {
                    Ok(out) => Outcome::Done {
                        input: Value::Null,
                        output: Value::Object(out),
                        route: None,
                        merge: true,
                        status: StepStatus::Succeeded,
                    },
                    Err(e) => Outcome::fail(Value::Null, e, false),
                }
            }
            NodeKind::SubWorkflow {
                workflow, version, ..
            } => {
                let input = match self.render(node, "input") {
                    Ok(i) => i,
                    Err(o) => return Ok(o),
                };
                let child = format!("{}.{}.{visit}.{attempt}", self.scope.run, node.id);
                let mut run = GraphRunInput::new(&self.scope.tenant, workflow.as_str(), input);
                run.version = *version;
                let shown = json!({"run": child});
                let options = ChildWorkflowOptions::builder()
                    .workflow_id(child.clone())
                    .build();
                let started = match self
                    .ctx
                    .start_child_workflow(GraphWorkflow::run, run, options)
                    .await
                {
                    Ok(s) => s,
                    Err(e) => return Ok(Outcome::fail(shown, e.to_string(), false)),
                };
                match started.result().await {
                    Ok(out) => Outcome::done(shown, out.context),
                    Err(e) => Outcome::fail(
                        shown,
                        format!("the child run `{child}` ended failed: {e}"),
                        false,
                    ),
                }
            }
            NodeKind::Agent { agent, .. } => {
                let Some(template) = self.agents.get(agent.as_str()) else {
                    return Ok(Outcome::fail(
                        Value::Null,
                        format!("agent `{agent}` is not registered with this worker"),
                        false,
                    ));
                };
                let input = match self.render(node, "input") {
                    Ok(Value::String(s)) => s,
                    Ok(other) => other.to_string(),
                    Err(o) => return Ok(o),
                };
                let child = format!("{}.{}.{visit}.{attempt}", self.scope.run, node.id);
                let shown = json!({"input": input, "run": child});
                let mut run = template.clone();
                run.tenant.clone_from(&self.scope.tenant);
                run.session = format!("wf-{}-{}", self.scope.run, node.id);
                run.input = input;
                let options = ChildWorkflowOptions::builder()
                    .workflow_id(child.clone())
                    .build();
                let started = match self
                    .ctx
                    .start_child_workflow(AgentWorkflow::run, run, options)
                    .await
                {
                    Ok(s) => s,
                    Err(e) => return Ok(Outcome::fail(shown, e.to_string(), false)),
                };
                match started.result().await {
                    Ok(out) => Outcome::done(
                        shown,
                        json!({"reply": out.reply, "structured": Value::Null}),
                    ),
                    Err(e) => Outcome::fail(shown, e.to_string(), false),
                }
            }
            NodeKind::Snapshot { label } => {
                let seq = self.seq.get() + 1;
                let def = self.wf.definition();
                let steps = self.ctx.state(|s| s.steps.clone());
                let content = json!({
                    "workflow": def.id,
                    "version": def.version,
                    "run": self.scope.run,
                    "context": *self.context.borrow(),
                    "steps": steps.iter().map(|s| json!({
                        "seq": s.seq, "node": s.node, "kind": s.kind, "attempt": s.attempt,
                        "status": s.status, "output": s.output, "error": s.error,
                    })).collect::<Vec<_>>(),
                });
                let out = self
                    .ctx
                    .execute_activity(
                        GraphActivities::snapshot,
                        SnapshotInput {
                            scope: self.scope.clone(),
                            seq,
                            label: label.clone(),
                            content,
                        },
                        bookkeeping(),
                    )
                    .await?;
                Outcome::done(json!({"seq": seq, "label": label}), out)
            }
            NodeKind::Parallel { .. } | NodeKind::Join {} => {
                Outcome::fail(Value::Null, "structural node run as a step", false)
            }
            other => Outcome::fail(
                Value::Null,
                format!("this worker cannot run `{}` nodes", other.name()),
                false,
            ),
        })
    }

    /// A governed tool call: an activity, re-run under the same key after an approval or an
    /// in-doubt claim was settled.
    pub(super) async fn tool(&self, node: &Node, mut call: NodeCall) -> WorkflowResult<Outcome> {
        let options = tool_options(node);
        loop {
            let step = self
                .ctx
                .execute_activity(GraphActivities::tool_node, call.clone(), options.clone())
                .await?;
            match step {
                NodeStep::Done { shown, output } => return Ok(Outcome::done(shown, output)),
                NodeStep::Failed {
                    shown,
                    error,
                    retryable,
                } => return Ok(Outcome::fail(shown, error, retryable)),
                NodeStep::NeedsApproval { shown, approval } => {
                    if call.approval.is_some() {
                        return Ok(Outcome::fail(
                            shown,
                            "the approved call asked for another approval",
                            false,
                        ));
                    }
                    self.wait_decided(&approval).await?;
                    let view = self.read_approval(&approval).await?;
                    if view.status != ApprovalStatus::Approved {
                        return Ok(Outcome::fail(
                            shown,
                            format!(
                                "the call was not approved ({})",
                                view.comment.as_deref().unwrap_or("no reason given")
                            ),
                            false,
                        ));
                    }
                    call.approval = Some(approval);
                }
                NodeStep::InDoubt {
                    retry_after_ms: Some(ms),
                    ..
                } => {
                    self.ctx.timer(Duration::from_millis(ms.max(1))).await;
                }
                NodeStep::InDoubt {
                    retry_after_ms: None,
                    ..
                } => {
                    // Until a human resolves it: woken by `resume`, and looking again every
                    // so often by itself (a signal sent before this wait began is not lost).
                    let seen = self.ctx.state(|s| s.resumes);
                    let resumed = self.ctx.wait_condition(|s| s.resumes > seen);
                    let poll = self.ctx.timer(IN_DOUBT_POLL);
                    if let Either::Left((r, _)) =
                        futures::future::select(Box::pin(resumed), Box::pin(poll)).await
                    {
                        r?;
                    }
                }
            }
        }
    }
}

/// A tool node's activity options: the node's timeout (plus room for the store) as the
/// start-to-close timeout, and its backoff shape for Temporal's own retries of the activity
/// (a worker lost or a store error: the retry finds the call's record under the same key).
fn tool_options(node: &Node) -> ActivityOptions {
    let timeout = node
        .timeout_ms
        .map_or(TOOL_DEFAULT, |ms| Duration::from_millis(ms) + TOOL_MARGIN);
    let retry = RetryPolicy::builder()
        .initial_interval(Duration::from_millis(node.retry.backoff_ms.max(1)))
        .backoff_coefficient(f64::from(node.retry.factor.max(1.0)))
        .maximum_interval(Duration::from_millis(
            node.retry.max_backoff_ms.max(node.retry.backoff_ms).max(1),
        ))
        .build();
    ActivityOptions::with_start_to_close_timeout(timeout)
        .retry_policy(retry)
        .build()
}
