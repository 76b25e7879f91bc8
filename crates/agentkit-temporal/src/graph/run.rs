//! The interpreter: a definition's graph walked inside the Temporal workflow, deterministic
//! (templates, conditions and routing are pure), every effect an activity or a child
//! workflow, every wait a signal or a durable timer.
//!
//! Each branch of the run is one future: it runs nodes one after another until it ends,
//! reaches a `parallel` node (its branches start as futures of their own) or a `join` (the
//! last branch to arrive continues). A node that fails past its retries applies its failure
//! strategy: ABORT ends the run, WAIT_FOR_HUMAN asks a reviewer (retry, skip or abort), ROLLBACK
//! runs the completed nodes' compensations in reverse order, then ends the run.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use agentkit_core::policy::Priority;
use agentkit_core::store::ApprovalStatus;
use agentkit_workflow::{
    Catalog, CompiledWorkflow, DEFAULT_MAX_VISITS, FailureStrategy, Node, NodeKind, StepStatus,
    validate,
};
use futures::future::Either;
use serde_json::{Map, Value, json};
use temporalio_common::RetryPolicy;
use temporalio_sdk::{
    ActivityOptions, ApplicationFailure, ChildWorkflowOptions, WorkflowContext, WorkflowResult,
    WorkflowTermination,
};

use super::activities::GraphActivities;
use super::types::{
    ApprovalView, FinishGraph, GraphRunInput, GraphRunOutput, GraphStep, LoadInput, NodeCall,
    NodeStep, OpenApproval, ReadApproval, SnapshotInput,
};
use super::workflow::GraphWorkflow;
use crate::types::{AgentRunInput, RunScope};
use crate::workflow::AgentWorkflow;

/// How long one bookkeeping activity (load, approvals, snapshot, finish) may take; a worker
/// lost during one is noticed (and the activity retried elsewhere) after this long.
const BOOKKEEPING: Duration = Duration::from_secs(10);

/// How long a tool node's activity may take when the node sets no timeout.
const TOOL_DEFAULT: Duration = Duration::from_secs(60);

/// Room for the store around a tool node's own timeout.
const TOOL_MARGIN: Duration = Duration::from_secs(5);

/// How often a call left in doubt is looked at again without a `resume` signal.
const IN_DOUBT_POLL: Duration = Duration::from_secs(30);

type Branch<'a> = Pin<Box<dyn Future<Output = WorkflowResult<BranchEnd>> + 'a>>;

/// How a branch ended.
enum BranchEnd {
    /// Its last node had no edges.
    Ended,
    /// It reached a parallel node: these branches start, meeting at the join.
    Spawn(Vec<String>),
    /// It arrived at this join.
    Arrived(String),
    /// A node failed for good; the run ends (after compensations when `rollback`).
    Failed { reason: String, rollback: bool },
}

/// A node's result.
enum Outcome {
    Done {
        input: Value,
        output: Value,
        /// Go here instead of following the edges.
        route: Option<String>,
        /// Merge the output object's keys into the context (transforms).
        merge: bool,
        status: StepStatus,
    },
    Fail {
        input: Value,
        error: String,
        retryable: bool,
    },
}

impl Outcome {
    fn done(input: Value, output: Value) -> Self {
        Outcome::Done {
            input,
            output,
            route: None,
            merge: false,
            status: StepStatus::Succeeded,
        }
    }

    fn routed(input: Value, output: Value, route: String) -> Self {
        Outcome::Done {
            input,
            output,
            route: Some(route),
            merge: false,
            status: StepStatus::Succeeded,
        }
    }

    fn fail(input: Value, error: impl Into<String>, retryable: bool) -> Self {
        Outcome::Fail {
            input,
            error: error.into(),
            retryable,
        }
    }
}

fn terminate(message: String) -> WorkflowTermination {
    ApplicationFailure::non_retryable(message).into()
}

/// Activity options for a bookkeeping activity: retried (store hiccups) with Temporal's
/// default backoff.
fn bookkeeping() -> ActivityOptions {
    ActivityOptions::start_to_close_timeout(BOOKKEEPING)
}

/// One run's interpreter state. Lives inside the workflow: every field is rebuilt the same on
/// replay, from the input and the activities' recorded results.
pub(crate) struct Interpreter {
    ctx: WorkflowContext<GraphWorkflow>,
    wf: CompiledWorkflow,
    scope: RunScope,
    agents: BTreeMap<String, AgentRunInput>,
    context: RefCell<Value>,
    visits: RefCell<HashMap<String, u32>>,
    joins: RefCell<HashMap<String, u32>>,
    /// Completed nodes with a compensation, in order: (node, visit).
    compensable: RefCell<Vec<(String, u32)>>,
    seq: Cell<u64>,
}

impl Interpreter {
    /// Loads the definition (an activity: the graph is kept in the run's history), compiles
    /// it, builds the initial context and records the run in the agentkit store.
    pub(crate) async fn start(
        ctx: WorkflowContext<GraphWorkflow>,
        input: GraphRunInput,
    ) -> WorkflowResult<Self> {
        let loaded = ctx
            .execute_activity(
                GraphActivities::load,
                LoadInput {
                    workflow: input.workflow.clone(),
                    version: input.version,
                },
                bookkeeping(),
            )
            .await?;
        // The worker checked tools and agents when the definition was registered.
        let wf = validate(&loaded.definition, &Catalog::default())
            .map_err(|e| terminate(e.to_string()))?;
        let def = wf.definition();
        let mut context = match input.input {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(terminate(format!(
                    "a run's input is a JSON object, not {other}"
                )));
            }
        };
        for key in &def.inputs {
            if !context.contains_key(key) {
                return Err(terminate(format!("the input lacks `{key}`")));
            }
        }
        let mut params: Map<String, Value> = def
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in input.params {
            if !def.params.contains_key(&k) {
                return Err(terminate(format!("unknown parameter `{k}`")));
            }
            params.insert(k, v);
        }
        context.insert("params".into(), Value::Object(params));
        let run = ctx.workflow_id().to_owned();
        let scope = RunScope {
            tenant: input.tenant,
            agent: def.agent.to_string(),
            session: format!("wf-{run}"),
            run,
        };
        ctx.execute_activity(GraphActivities::begin_graph, scope.clone(), bookkeeping())
            .await?;
        Ok(Self {
            ctx,
            wf,
            scope,
            agents: loaded.agents,
            context: RefCell::new(Value::Object(context)),
            visits: RefCell::new(HashMap::new()),
            joins: RefCell::new(HashMap::new()),
            compensable: RefCell::new(Vec::new()),
            seq: Cell::new(0),
        })
    }

    /// Runs every branch to its end; the run's output, or its failure.
    pub(crate) async fn execute(self) -> WorkflowResult<GraphRunOutput> {
        let start = self.wf.definition().start.clone();
        // The branches, polled together with the workflow's own waker (`select_all`, not a
        // combinator with wakers of its own, which the SDK would take for non-determinism).
        let mut running: Vec<Branch<'_>> = Vec::new();
        match self.enter(&start) {
            Ok(visit) => running.push(Box::pin(self.branch(start, visit, None))),
            Err(reason) => return self.fail(reason, false).await,
        }
        while !running.is_empty() {
            let (end, _, rest) = futures::future::select_all(running).await;
            running = rest;
            match end? {
                BranchEnd::Ended => {}
                BranchEnd::Spawn(branches) => {
                    for b in branches {
                        match self.enter(&b) {
                            Ok(visit) => running.push(Box::pin(self.branch(b, visit, None))),
                            Err(reason) => {
                                drop(running);
                                return self.fail(reason, false).await;
                            }
                        }
                    }
                }
                BranchEnd::Arrived(join) => {
                    let expected = self.wf.branches_at(&join);
                    let arrived = {
                        let mut joins = self.joins.borrow_mut();
                        let n = joins.entry(join.clone()).or_default();
                        *n += 1;
                        *n
                    };
                    if arrived >= expected {
                        self.joins.borrow_mut().remove(&join);
                        let visit = self.visits.borrow().get(&join).copied().unwrap_or(1);
                        running.push(Box::pin(self.branch(join, visit, Some(arrived))));
                    } else {
                        self.log(
                            &join,
                            "join",
                            1,
                            0,
                            StepStatus::Succeeded,
                            Value::Null,
                            json!({"arrived": arrived, "of": expected}),
                            None,
                        );
                    }
                }
                BranchEnd::Failed { reason, rollback } => {
                    drop(running);
                    return self.fail(reason, rollback).await;
                }
            }
        }
        self.ctx
            .execute_activity(
                GraphActivities::finish_graph,
                FinishGraph {
                    scope: self.scope.clone(),
                    error: None,
                },
                bookkeeping(),
            )
            .await?;
        Ok(GraphRunOutput {
            run: self.scope.run.clone(),
            context: self.context.take(),
            steps: self.ctx.state(|s| s.steps.clone()),
        })
    }

    /// Ends the run failed (after the compensations, when rolling back): the agentkit record
    /// says why, and so does the workflow's failure.
    async fn fail(&self, reason: String, rollback: bool) -> WorkflowResult<GraphRunOutput> {
        let reason = if rollback {
            self.compensate(reason).await?
        } else {
            reason
        };
        self.ctx
            .execute_activity(
                GraphActivities::finish_graph,
                FinishGraph {
                    scope: self.scope.clone(),
                    error: Some(reason.clone()),
                },
                bookkeeping(),
            )
            .await?;
        Err(terminate(reason))
    }

    /// Counts an entry into `node`; an error past its bound.
    fn enter(&self, node: &str) -> Result<u32, String> {
        let mut visits = self.visits.borrow_mut();
        let n = visits.entry(node.to_owned()).or_default();
        *n += 1;
        let bound = self
            .wf
            .definition()
            .node(node)
            .and_then(|n| n.max_visits)
            .unwrap_or(DEFAULT_MAX_VISITS);
        if *n > bound {
            return Err(format!("node `{node}` was entered more than {bound} times"));
        }
        Ok(*n)
    }

    fn next_seq(&self) -> u64 {
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        seq
    }

    #[allow(clippy::too_many_arguments)]
    fn log(
        &self,
        node: &str,
        kind: &str,
        attempt: u32,
        visit: u32,
        status: StepStatus,
        input: Value,
        output: Value,
        error: Option<String>,
    ) -> u64 {
        let seq = self.next_seq();
        let step = GraphStep {
            seq,
            node: node.to_owned(),
            kind: kind.to_owned(),
            attempt,
            visit,
            status,
            input,
            output,
            error,
        };
        self.ctx.state_mut(|s| s.steps.push(step));
        seq
    }

    /// One branch: nodes one after another from `node`. `joined` is set when the branch
    /// continues from a join all its branches reached.
    async fn branch(
        &self,
        mut node_id: String,
        mut visit: u32,
        mut joined: Option<u32>,
    ) -> WorkflowResult<BranchEnd> {
        let mut attempt = 1;
        loop {
            let def = self.wf.definition();
            let node = def
                .node(&node_id)
                .ok_or_else(|| terminate(format!("node `{node_id}` is gone")))?;
            let outcome = match &node.kind {
                NodeKind::Parallel { branches, .. } => {
                    self.log(
                        &node.id,
                        "parallel",
                        1,
                        visit,
                        StepStatus::Succeeded,
                        Value::Null,
                        json!({"branches": branches}),
                        None,
                    );
                    return Ok(BranchEnd::Spawn(branches.clone()));
                }
                NodeKind::Join {} => match joined.take() {
                    Some(arrived) => Outcome::done(Value::Null, json!({"arrived": arrived})),
                    None => return Ok(BranchEnd::Arrived(node_id)),
                },
                _ => self.node(node, visit, attempt).await?,
            };
            let route = match outcome {
                Outcome::Done {
                    input,
                    output,
                    route,
                    merge,
                    status,
                } => {
                    self.record_output(node, &output, merge);
                    if node.compensate.is_some() && status == StepStatus::Succeeded {
                        self.compensable.borrow_mut().push((node.id.clone(), visit));
                    }
                    self.log(
                        &node.id,
                        node.kind.name(),
                        attempt,
                        visit,
                        status,
                        input,
                        output,
                        None,
                    );
                    route
                }
                Outcome::Fail {
                    input,
                    error,
                    retryable,
                } => {
                    let seq = self.log(
                        &node.id,
                        node.kind.name(),
                        attempt,
                        visit,
                        StepStatus::Failed,
                        input,
                        Value::Null,
                        Some(error.clone()),
                    );
                    if retryable && attempt < node.retry.max_attempts {
                        attempt += 1;
                        // A durable timer: the run holds no worker while it backs off.
                        self.ctx.timer(node.retry.delay_before(attempt)).await;
                        continue;
                    }
                    let reason = format!("node `{}` failed: {error}", node.id);
                    match node.on_failure.unwrap_or(def.on_failure) {
                        FailureStrategy::WaitForHuman => {
                            match self
                                .ask_human(node, visit, attempt, seq, &error, &reason)
                                .await?
                            {
                                Human::Retry => {
                                    attempt += 1;
                                    continue;
                                }
                                Human::Skip(decision) => {
                                    self.record_output(node, &Value::Null, false);
                                    self.log(
                                        &node.id,
                                        node.kind.name(),
                                        attempt,
                                        visit,
                                        StepStatus::Skipped,
                                        decision,
                                        Value::Null,
                                        None,
                                    );
                                    None
                                }
                                Human::Abort(reason) => {
                                    return Ok(BranchEnd::Failed {
                                        reason,
                                        rollback: false,
                                    });
                                }
                            }
                        }
                        FailureStrategy::Rollback => {
                            return Ok(BranchEnd::Failed {
                                reason,
                                rollback: true,
                            });
                        }
                        _ => {
                            return Ok(BranchEnd::Failed {
                                reason,
                                rollback: false,
                            });
                        }
                    }
                }
            };
            let next = match route {
                Some(r) => Some(r),
                None => {
                    let context = self.context.borrow();
                    match self.wf.next_node(&node.id, &context) {
                        Ok(next) => next.map(str::to_owned),
                        Err(reason) => {
                            return Ok(BranchEnd::Failed {
                                reason,
                                rollback: false,
                            });
                        }
                    }
                }
            };
            let Some(next) = next else {
                return Ok(BranchEnd::Ended);
            };
            visit = match self.enter(&next) {
                Ok(v) => v,
                Err(reason) => {
                    return Ok(BranchEnd::Failed {
                        reason,
                        rollback: false,
                    });
                }
            };
            node_id = next;
            attempt = 1;
        }
    }

    fn record_output(&self, node: &Node, output: &Value, merge: bool) {
        if let Value::Object(ctx) = &mut *self.context.borrow_mut() {
            if merge && let Value::Object(fields) = output {
                for (k, v) in fields {
                    ctx.insert(k.clone(), v.clone());
                }
            }
            ctx.insert(node.output_key().to_owned(), output.clone());
        }
    }

    fn render(&self, node: &Node, what: &str) -> Result<Value, Outcome> {
        match self.wf.template(&node.id) {
            None => Ok(Value::Null),
            Some(t) => t
                .render(&self.context.borrow())
                .map_err(|e| Outcome::fail(Value::Null, format!("its {what}: {e}"), false)),
        }
    }

    /// Runs one node (not parallel or join) to its outcome, waiting as long as it takes.
    async fn node(&self, node: &Node, visit: u32, attempt: u32) -> WorkflowResult<Outcome> {
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
                let correlation = match self
                    .wf
                    .correlation(&node.id)
                    .map(|t| t.render(&self.context.borrow()))
                {
                    Some(Ok(Value::String(s))) => s,
                    Some(Ok(Value::Null)) | None => {
                        return Ok(Outcome::fail(
                            Value::Null,
                            "the correlation key is empty",
                            false,
                        ));
                    }
                    Some(Ok(other)) => other.to_string(),
                    Some(Err(e)) => {
                        return Ok(Outcome::fail(
                            Value::Null,
                            format!("its correlation: {e}"),
                            false,
                        ));
                    }
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
                let mut out = Map::new();
                for (k, t) in self.wf.assignments(&node.id) {
                    match t.render(&self.context.borrow()) {
                        Ok(v) => {
                            out.insert(k.clone(), v);
                        }
                        Err(e) => {
                            return Ok(Outcome::fail(Value::Null, format!("`{k}`: {e}"), false));
                        }
                    }
                }
                Outcome::Done {
                    input: Value::Null,
                    output: Value::Object(out),
                    route: None,
                    merge: true,
                    status: StepStatus::Succeeded,
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
    async fn tool(&self, node: &Node, mut call: NodeCall) -> WorkflowResult<Outcome> {
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

    /// Opens an approval request in the agentkit store and waits for its decision.
    async fn approval(&self, open: OpenApproval) -> WorkflowResult<ApprovalView> {
        let id = open.id.clone();
        self.ctx
            .execute_activity(GraphActivities::open_approval, open, bookkeeping())
            .await?;
        self.wait_decided(&id).await?;
        self.read_approval(&id).await
    }

    /// Waits (holding no worker) until the `approval_decided` signal names `id`.
    async fn wait_decided(&self, id: &str) -> WorkflowResult<()> {
        self.ctx.state_mut(|s| s.waiting.insert(id.to_owned()));
        self.ctx.wait_condition(|s| s.decided.contains(id)).await?;
        self.ctx.state_mut(|s| s.waiting.remove(id));
        Ok(())
    }

    async fn read_approval(&self, id: &str) -> WorkflowResult<ApprovalView> {
        Ok(self
            .ctx
            .execute_activity(
                GraphActivities::read_approval,
                ReadApproval {
                    scope: self.scope.clone(),
                    id: id.to_owned(),
                },
                bookkeeping(),
            )
            .await?)
    }

    /// Waits for an event named `name` with `correlation` (taking it out of the run's
    /// mailbox), or `None` when `timeout_ms` passes first.
    async fn wait_event(
        &self,
        name: &str,
        correlation: &str,
        timeout_ms: Option<u64>,
    ) -> WorkflowResult<Option<Value>> {
        let matches =
            |e: &agentkit_workflow::WorkflowEvent| e.name == name && e.correlation == correlation;
        let arrived = self.ctx.wait_condition(|s| s.events.iter().any(matches));
        match timeout_ms {
            None => arrived.await?,
            Some(ms) => {
                let timer = self.ctx.timer(Duration::from_millis(ms));
                match futures::future::select(Box::pin(arrived), Box::pin(timer)).await {
                    Either::Left((arrived, _)) => arrived?,
                    Either::Right(_) => return Ok(None),
                }
            }
        }
        Ok(self.ctx.state_mut(|s| {
            s.events
                .iter()
                .position(matches)
                .map(|i| s.events.remove(i).payload)
        }))
    }

    /// A node that failed for good under WAIT_FOR_HUMAN: a high-priority approval request
    /// whose decision is retry (approve), skip (approve with `{"action": "skip"}` as edited
    /// arguments) or abort (reject) — as with the embedded engine.
    async fn ask_human(
        &self,
        node: &Node,
        visit: u32,
        attempt: u32,
        seq: u64,
        error: &str,
        reason: &str,
    ) -> WorkflowResult<Human> {
        let view = self
            .approval(OpenApproval {
                scope: self.scope.clone(),
                id: format!("wff-{}-{seq}", self.scope.run),
                call_id: format!("{}.{visit}.{attempt}", node.id),
                tool: "workflow.failure".into(),
                payload: json!({"node": node.id, "error": error, "attempt": attempt}),
                reason: format!(
                    "{reason}. Approve to retry, approve with {{\"action\": \"skip\"}} as edited \
                     arguments to skip it, reject to abort the run."
                ),
                priority: Priority::High,
            })
            .await?;
        let decision = json!({
            "status": view.status,
            "reviewer": view.reviewer,
            "comment": view.comment,
        });
        Ok(match view.status {
            ApprovalStatus::Approved => {
                let skip = view
                    .edited
                    .as_ref()
                    .and_then(|a| a.get("action"))
                    .and_then(Value::as_str)
                    == Some("skip");
                if skip {
                    Human::Skip(decision)
                } else {
                    Human::Retry
                }
            }
            _ => Human::Abort(format!(
                "node `{}` failed and {} aborted the run",
                node.id,
                view.reviewer.unwrap_or_default()
            )),
        })
    }

    /// ROLLBACK: the completed nodes' compensations in reverse order, each a governed call
    /// under its own key; the run's failure reason, with how far the rollback got.
    async fn compensate(&self, reason: String) -> WorkflowResult<String> {
        let done: Vec<(String, u32)> = self.compensable.borrow().clone();
        for (i, (node_id, visit)) in done.iter().enumerate().rev() {
            let def = self.wf.definition();
            let (Some(node), Some(template)) = (def.node(node_id), self.wf.compensation(node_id))
            else {
                continue;
            };
            let Some(c) = &node.compensate else {
                continue;
            };
            let args = match template.render(&self.context.borrow()) {
                Ok(a) => a,
                Err(e) => {
                    return Ok(format!(
                        "{reason}; the compensation of `{node_id}` failed: {e}"
                    ));
                }
            };
            let call = NodeCall {
                scope: self.scope.clone(),
                call_id: format!("{node_id}.{visit}.undo"),
                tool: c.tool.clone(),
                args: args.clone(),
                key: format!("temporal:undo:{}:{node_id}:{visit}", self.scope.run),
                approval: None,
                timeout_ms: node.timeout_ms,
                compensation: true,
            };
            match self.tool(node, call).await? {
                Outcome::Done { output, .. } => {
                    self.log(
                        node_id,
                        node.kind.name(),
                        1,
                        *visit,
                        StepStatus::Compensated,
                        args,
                        output,
                        None,
                    );
                }
                Outcome::Fail { error, .. } => {
                    return Ok(format!(
                        "{reason}; the compensation of `{node_id}` did not succeed ({error}); \
                         the rollback stopped with {i} compensation(s) not run"
                    ));
                }
            }
        }
        Ok(format!("{reason}; rolled back"))
    }
}

/// A reviewer's decision on a failed node.
enum Human {
    Retry,
    Skip(Value),
    Abort(String),
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
