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

use agentkit_workflow::{
    Catalog, CompiledWorkflow, DEFAULT_MAX_VISITS, FailureStrategy, Node, NodeKind, StepStatus,
    validate,
};
use serde_json::{Map, Value, json};
use temporalio_sdk::{
    ActivityOptions, ApplicationFailure, WorkflowContext, WorkflowResult, WorkflowTermination,
};

use super::activities::GraphActivities;
use super::types::{FinishGraph, GraphRunInput, GraphRunOutput, GraphStep, LoadInput};
use super::workflow::GraphWorkflow;
use crate::types::{AgentRunInput, RunScope};

/// How long one bookkeeping activity (load, approvals, snapshot, finish) may take; a worker
/// lost during one is noticed (and the activity retried elsewhere) after this long.
const BOOKKEEPING: Duration = Duration::from_secs(10);

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
pub(super) enum Outcome {
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
    pub(super) fn done(input: Value, output: Value) -> Self {
        Outcome::Done {
            input,
            output,
            route: None,
            merge: false,
            status: StepStatus::Succeeded,
        }
    }

    pub(super) fn routed(input: Value, output: Value, route: String) -> Self {
        Outcome::Done {
            input,
            output,
            route: Some(route),
            merge: false,
            status: StepStatus::Succeeded,
        }
    }

    pub(super) fn fail(input: Value, error: impl Into<String>, retryable: bool) -> Self {
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
pub(super) fn bookkeeping() -> ActivityOptions {
    ActivityOptions::start_to_close_timeout(BOOKKEEPING)
}

/// One run's interpreter state. Lives inside the workflow: every field is rebuilt the same on
/// replay, from the input and the activities' recorded results.
pub(crate) struct Interpreter {
    pub(super) ctx: WorkflowContext<GraphWorkflow>,
    pub(super) wf: CompiledWorkflow,
    pub(super) scope: RunScope,
    pub(super) agents: BTreeMap<String, AgentRunInput>,
    pub(super) context: RefCell<Value>,
    pub(super) visits: RefCell<HashMap<String, u32>>,
    pub(super) joins: RefCell<HashMap<String, u32>>,
    /// Completed nodes with a compensation, in order: (node, visit).
    pub(super) compensable: RefCell<Vec<(String, u32)>>,
    pub(super) seq: Cell<u64>,
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
    pub(super) async fn fail(
        &self,
        reason: String,
        rollback: bool,
    ) -> WorkflowResult<GraphRunOutput> {
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
    pub(super) fn enter(&self, node: &str) -> Result<u32, String> {
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

    pub(super) fn next_seq(&self) -> u64 {
        let seq = self.seq.get() + 1;
        self.seq.set(seq);
        seq
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn log(
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

    pub(super) fn record_output(&self, node: &Node, output: &Value, merge: bool) {
        if let Value::Object(ctx) = &mut *self.context.borrow_mut() {
            if merge && let Value::Object(fields) = output {
                for (k, v) in fields {
                    ctx.insert(k.clone(), v.clone());
                }
            }
            ctx.insert(node.output_key().to_owned(), output.clone());
        }
    }

    pub(super) fn render(&self, node: &Node, what: &str) -> Result<Value, Outcome> {
        match self.wf.template(&node.id) {
            None => Ok(Value::Null),
            Some(t) => t
                .render(&self.context.borrow())
                .map_err(|e| Outcome::fail(Value::Null, format!("its {what}: {e}"), false)),
        }
    }
}

/// A reviewer's decision on a failed node.
pub(super) enum Human {
    Retry,
    Skip(Value),
    Abort(String),
}
