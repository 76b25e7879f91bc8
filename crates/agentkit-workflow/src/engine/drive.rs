//! Driving a claimed run: one step at a time, each committed before the next is chosen.

use std::sync::Arc;

use agentkit_core::id::{ApprovalId, RunId};
use agentkit_core::message::ToolCall;
use agentkit_core::policy::Priority;
use agentkit_core::scope::Scope;
use agentkit_core::store::ApprovalRequest;
use agentkit_core::{Error, Result};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::nodes::{NodeResult, Resumed};
use super::{Workflows, lease_delta};
use crate::definition::{FailureStrategy, Node, NodeKind};
use crate::record::{
    ApprovalPurpose, Completed, Lease, RunState, StepCommit, StepRecord, StepStatus, Token, Wait,
    WorkflowRun,
};
use crate::validate::CompiledWorkflow;

/// How often a run may enter one node when the node sets no `max_visits`.
pub const DEFAULT_MAX_VISITS: u32 = 10_000;

/// A step's result before it is committed.
pub(crate) struct Planned {
    pub run: WorkflowRun,
    pub step: Option<StepRecord>,
}

pub(super) struct StepMeta<'a> {
    pub(super) seq: u64,
    pub(super) token: &'a Token,
    pub(super) node: &'a Node,
    pub(super) worker: &'a str,
    pub(super) started: DateTime<Utc>,
}

impl StepMeta<'_> {
    pub(super) fn record(
        &self,
        run: &WorkflowRun,
        status: StepStatus,
        input: Value,
        output: Value,
        error: Option<String>,
        finished: DateTime<Utc>,
    ) -> StepRecord {
        StepRecord {
            tenant: run.tenant.clone(),
            run: run.id.clone(),
            seq: self.seq,
            node: self.node.id.clone(),
            kind: self.node.kind.name().to_owned(),
            attempt: self.token.attempt,
            visit: self.token.visit,
            status,
            input,
            output,
            error,
            worker: self.worker.to_owned(),
            started_at: self.started,
            finished_at: finished,
        }
    }
}

impl Workflows {
    /// Drives a claimed run until it waits, finishes, backs off, loses its lease or `stop` is
    /// cancelled (then the lease is released after the current step). Returns the steps
    /// committed.
    pub(crate) async fn drive(
        &self,
        mut run: WorkflowRun,
        worker: &str,
        stop: &CancellationToken,
    ) -> Result<usize> {
        let tenant = run.tenant.clone();
        let wf = match self
            .compiled(&tenant, &run.workflow, Some(run.workflow_version))
            .await
        {
            Ok(wf) => wf,
            Err(e) => {
                // A definition this engine cannot run (a tool it lacks): leave the run for a
                // worker that can, and look again later.
                tracing::warn!(run = %run.id, error = %e, "cannot run this workflow here");
                let later = self.inner.clock.now() + lease_delta(self.inner.lease);
                self.release(run, Some(later)).await;
                return Err(e);
            }
        };
        let scope = self.scope(&run, &wf)?;
        let mut steps = 0;
        // One heartbeat for the whole drive: it renews the lease every third of its length,
        // during a step or at the start of the next one, however short each step is.
        let every = self.inner.lease / 3;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if stop.is_cancelled() {
                self.release(run, None).await;
                return Ok(steps);
            }
            let expected = run.version;
            let span = tracing::info_span!(
                "workflow.step",
                tenant = %run.tenant,
                run = %run.id,
                workflow = %run.workflow,
                seq = run.next_seq,
                node = tracing::field::Empty,
                attempt = tracing::field::Empty,
            );
            let (planned, renewed) = self
                .with_heartbeat(
                    &run,
                    worker,
                    &mut ticker,
                    self.advance(&wf, &scope, &run, worker),
                )
                .instrument(span)
                .await;
            if let Some(lease) = renewed {
                run.lease = Some(lease);
            }
            let planned = match planned {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(run = %run.id, error = %e, "workflow step failed to run; retrying later");
                    let later = self.inner.clock.now() + chrono::TimeDelta::seconds(5);
                    self.release(run, Some(later)).await;
                    return Err(e);
                }
            };
            let now = self.inner.clock.now();
            let mut next = planned.run;
            // Keep a lease renewed during the step (the step started from the older one).
            if next.lease.is_some() {
                next.lease.clone_from(&run.lease);
            }
            next.version = expected + 1;
            next.updated_at = now;
            let keep = next.state == RunState::Running && next.wake_at.is_none_or(|t| t <= now);
            if !keep {
                next.lease = None;
            }
            let commit = StepCommit::new(next, expected, planned.step);
            match self
                .inner
                .store
                .commit_workflow_step(&tenant, &commit)
                .await
            {
                Ok(outcome) => {
                    steps += 1;
                    run = outcome.woken.unwrap_or(commit.run);
                }
                Err(Error::Conflict(e)) => {
                    tracing::warn!(run = %run.id, error = %e, "lost the run to another worker; its step is not committed");
                    return Ok(steps);
                }
                Err(e) => return Err(e),
            }
            if run.state.is_final() {
                tracing::debug!(run = %run.id, state = run.state.as_str(), "workflow run finished");
                if let Some(parent) = run.parent.clone() {
                    let child = run.id.clone();
                    if let Err(e) = self
                        .wake(
                            &tenant,
                            &parent,
                            move |w| matches!(w, Wait::Child { run } if *run == child),
                            Value::Null,
                        )
                        .await
                    {
                        tracing::warn!(run = %run.id, error = %e, "could not wake the parent run; it will look again");
                    }
                }
                return Ok(steps);
            }
            if run.lease.is_none() {
                if run.state == RunState::Running {
                    // Woken by a kept event during the commit, or backing off: another claim
                    // picks it up.
                    self.inner.wake.notify_waiters();
                }
                return Ok(steps);
            }
        }
    }

    /// Gives a run back: clears the lease (optionally not runnable before `until`).
    async fn release(&self, run: WorkflowRun, until: Option<DateTime<Utc>>) {
        let mut next = run.clone();
        next.lease = None;
        if until.is_some() {
            next.wake_at = until;
        }
        next.version += 1;
        let commit = StepCommit::new(next, run.version, None);
        if let Err(e) = self
            .inner
            .store
            .commit_workflow_step(&run.tenant, &commit)
            .await
        {
            tracing::debug!(run = %run.id, error = %e, "could not release the run; its lease will expire");
        }
    }

    /// Runs `fut` while renewing the run's lease when `ticker` ticks; also returns the lease
    /// as last renewed, if it was.
    async fn with_heartbeat<T>(
        &self,
        run: &WorkflowRun,
        worker: &str,
        ticker: &mut tokio::time::Interval,
        fut: impl std::future::Future<Output = T>,
    ) -> (T, Option<Lease>) {
        tokio::pin!(fut);
        let mut renewed = None;
        loop {
            tokio::select! {
                biased;
                _ = ticker.tick() => {
                    let lease = Lease {
                        owner: worker.to_owned(),
                        until: self.inner.clock.now() + lease_delta(self.inner.lease),
                    };
                    match self.inner.store.renew_workflow_lease(&run.tenant, &run.id, run.version, &lease).await {
                        Ok(true) => renewed = Some(lease),
                        Ok(false) => tracing::warn!(run = %run.id, "lease lost while a step runs; its commit will be refused"),
                        Err(e) => tracing::warn!(run = %run.id, error = %e, "could not renew the lease"),
                    }
                }
                out = &mut fut => return (out, renewed),
            }
        }
    }

    /// Computes one step of `run` (running the node's effect) without committing it.
    async fn advance(
        &self,
        wf: &Arc<CompiledWorkflow>,
        scope: &Scope,
        run: &WorkflowRun,
        worker: &str,
    ) -> Result<Planned> {
        let now = self.inner.clock.now();
        let mut next = run.clone();
        next.resume_input = None;
        next.next_seq += 1;
        next.state = RunState::Running;
        next.wake_at = None;
        if run.cursor.rolling_back.is_some() {
            return self
                .compensate_next(wf, scope, run, next, worker, now)
                .await;
        }
        let Some(index) = pick(wf, run) else {
            next.state = RunState::Done;
            return Ok(Planned {
                run: next,
                step: None,
            });
        };
        let token = run.cursor.tokens[index].clone();
        let node = wf
            .def
            .node(&token.node)
            .ok_or_else(|| Error::InvalidConfig(format!("node `{}` is gone", token.node)))?;
        let meta = StepMeta {
            seq: run.next_seq,
            token: &token,
            node,
            worker,
            started: now,
        };
        let span = tracing::Span::current();
        span.record("node", node.id.as_str());
        span.record("attempt", token.attempt);
        let resumed = (run.cursor.waiting == Some(token.id)).then(|| Resumed {
            wait: run.wait.clone(),
            input: run.resume_input.clone(),
            by_time: run.state == RunState::Waiting,
        });

        // A failed node waiting for a human's retry / skip / abort.
        if let Some(Resumed {
            wait:
                Some(Wait::Approval {
                    approval,
                    purpose: ApprovalPurpose::Failure,
                }),
            ..
        }) = &resumed
        {
            return self
                .failure_decided(wf, run, next, index, &meta, approval)
                .await;
        }

        match &node.kind {
            NodeKind::Parallel { branches, .. } => {
                next.cursor.tokens.remove(index);
                for b in branches {
                    let id = next.cursor.next_token;
                    next.cursor.next_token += 1;
                    match enter(&mut next, b, wf) {
                        Ok(visit) => next.cursor.tokens.push(Token {
                            id,
                            node: b.clone(),
                            attempt: 1,
                            visit,
                        }),
                        Err(e) => return Ok(self.fail_run(next, &meta, e, now)),
                    }
                }
                next.cursor.tokens.sort_by_key(|t| t.id);
                let step = meta.record(
                    run,
                    StepStatus::Succeeded,
                    Value::Null,
                    json!({"branches": branches}),
                    None,
                    now,
                );
                Ok(Planned {
                    run: next,
                    step: Some(step),
                })
            }
            NodeKind::Join {} => {
                let expected = wf.joins.get(&node.id).copied().unwrap_or(1);
                let arrived = next.cursor.joins.entry(node.id.clone()).or_default();
                *arrived += 1;
                let arrived = *arrived;
                if arrived < expected {
                    next.cursor.tokens.remove(index);
                    let step = meta.record(
                        run,
                        StepStatus::Succeeded,
                        Value::Null,
                        json!({"arrived": arrived, "of": expected}),
                        None,
                        now,
                    );
                    return Ok(Planned {
                        run: next,
                        step: Some(step),
                    });
                }
                next.cursor.joins.remove(&node.id);
                let result = NodeResult::done(Value::Null, json!({"arrived": arrived}));
                self.apply(wf, scope, run, next, index, &meta, result).await
            }
            _ => {
                let result = self
                    .exec_node(wf, scope, run, &token, node, resumed, meta.seq)
                    .await?;
                self.apply(wf, scope, run, next, index, &meta, result).await
            }
        }
    }

    /// Applies a node's result to the run's next state.
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        wf: &CompiledWorkflow,
        scope: &Scope,
        run: &WorkflowRun,
        mut next: WorkflowRun,
        index: usize,
        meta: &StepMeta<'_>,
        result: NodeResult,
    ) -> Result<Planned> {
        let now = self.inner.clock.now();
        let node = meta.node;
        match result {
            NodeResult::Done {
                input,
                output,
                route,
                merge,
                status,
            } => {
                if let Value::Object(ctx) = &mut next.context {
                    if merge && let Value::Object(fields) = &output {
                        for (k, v) in fields {
                            ctx.insert(k.clone(), v.clone());
                        }
                    }
                    ctx.insert(node.output_key().to_owned(), output.clone());
                }
                if node.compensate.is_some() && status == StepStatus::Succeeded {
                    next.cursor.compensable.push(Completed {
                        node: node.id.clone(),
                        visit: meta.token.visit,
                    });
                }
                clear_wait(&mut next, meta.token.id);
                let step = meta.record(run, status, input, output, None, now);
                match self.route(wf, &mut next, index, route) {
                    Ok(()) => {}
                    Err(e) => return Ok(self.fail_run_with_step(next, step, e)),
                }
                if next.cursor.tokens.is_empty() {
                    next.state = RunState::Done;
                }
                Ok(Planned {
                    run: next,
                    step: Some(step),
                })
            }
            NodeResult::Wait {
                input,
                wait,
                wake_at,
            } => {
                next.state = RunState::Waiting;
                next.wait = Some(wait.clone());
                next.wake_at = wake_at;
                next.cursor.waiting = Some(meta.token.id);
                let output = serde_json::to_value(&wait).unwrap_or(Value::Null);
                let step = meta.record(run, StepStatus::Waiting, input, output, None, now);
                Ok(Planned {
                    run: next,
                    step: Some(step),
                })
            }
            NodeResult::Fail {
                input,
                error,
                retryable,
            } => {
                clear_wait(&mut next, meta.token.id);
                let step = meta.record(
                    run,
                    StepStatus::Failed,
                    input,
                    Value::Null,
                    Some(error.clone()),
                    now,
                );
                let attempt = meta.token.attempt;
                if retryable && attempt < node.retry.max_attempts {
                    let delay = node.retry.delay_before(attempt + 1);
                    next.cursor.tokens[index].attempt = attempt + 1;
                    next.wake_at = Some(now + lease_delta(delay));
                    tracing::debug!(run = %run.id, node = %node.id, attempt, error = %error, "node failed; retrying");
                    return Ok(Planned {
                        run: next,
                        step: Some(step),
                    });
                }
                let strategy = node.on_failure.unwrap_or(wf.def.on_failure);
                let reason = format!("node `{}` failed: {error}", node.id);
                match strategy {
                    FailureStrategy::WaitForHuman => {
                        let id = ApprovalId::new(format!("wff-{}-{}", run.id, meta.seq))?;
                        let call = ToolCall::new(
                            format!("{}.{}.{}", node.id, meta.token.visit, attempt),
                            "workflow.failure",
                            json!({"node": node.id, "error": error, "attempt": attempt}),
                        );
                        let mut request = ApprovalRequest::new(
                            scope,
                            call,
                            format!(
                                "{reason}. Approve to retry, approve with {{\"action\": \"skip\"}} \
                                 as edited arguments to skip it, reject to abort the run."
                            ),
                            Priority::High,
                        );
                        request.id = id.clone();
                        self.create_approval(scope, request).await?;
                        next.state = RunState::Waiting;
                        next.wait = Some(Wait::Approval {
                            approval: id,
                            purpose: ApprovalPurpose::Failure,
                        });
                        next.cursor.waiting = Some(meta.token.id);
                        Ok(Planned {
                            run: next,
                            step: Some(step),
                        })
                    }
                    FailureStrategy::Rollback if !next.cursor.compensable.is_empty() => {
                        next.cursor.tokens.clear();
                        next.cursor.rolling_back = Some(reason);
                        Ok(Planned {
                            run: next,
                            step: Some(step),
                        })
                    }
                    _ => Ok(self.fail_run_with_step(next, step, reason)),
                }
            }
        }
    }

    /// Moves the token at `index` along the first edge that holds (or `route`), or ends it.
    pub(super) fn route(
        &self,
        wf: &CompiledWorkflow,
        next: &mut WorkflowRun,
        index: usize,
        route: Option<String>,
    ) -> std::result::Result<(), String> {
        let from = next.cursor.tokens[index].node.clone();
        let target = match route {
            Some(r) => Some(r),
            None => wf.next_node(&from, &next.context)?.map(str::to_owned),
        };
        match target {
            None => {
                next.cursor.tokens.remove(index);
            }
            Some(to) => {
                let visit = enter(next, &to, wf)?;
                let token = &mut next.cursor.tokens[index];
                token.node = to;
                token.attempt = 1;
                token.visit = visit;
            }
        }
        Ok(())
    }

    pub(super) fn fail_run(
        &self,
        next: WorkflowRun,
        meta: &StepMeta<'_>,
        error: String,
        now: DateTime<Utc>,
    ) -> Planned {
        let step = meta.record(
            &next,
            StepStatus::Failed,
            Value::Null,
            Value::Null,
            Some(error.clone()),
            now,
        );
        self.fail_run_with_step(next, step, error)
    }

    pub(super) fn fail_run_with_step(
        &self,
        mut next: WorkflowRun,
        step: StepRecord,
        error: String,
    ) -> Planned {
        tracing::info!(run = %next.id, error = %error, "workflow run failed");
        next.state = RunState::Failed;
        next.error = Some(error);
        next.cursor.tokens.clear();
        next.wait = None;
        next.wake_at = None;
        next.cursor.waiting = None;
        Planned {
            run: next,
            step: Some(step),
        }
    }

    pub(crate) async fn create_approval(
        &self,
        scope: &Scope,
        request: ApprovalRequest,
    ) -> Result<()> {
        let mut created = self.state().create_approval(&scope.tenant, &request).await;
        if matches!(created, Err(Error::NotFound(_))) {
            // The run's agentkit record is missing (a crash right after the run started).
            self.ensure_core_run(scope).await?;
            created = self.state().create_approval(&scope.tenant, &request).await;
        }
        match created {
            // Made before a crash, by this same step: it is the one.
            Ok(()) | Err(Error::Conflict(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Counts an entry into `node`; an error when its bound is passed.
fn enter(
    next: &mut WorkflowRun,
    node: &str,
    wf: &CompiledWorkflow,
) -> std::result::Result<u32, String> {
    let visits = next.cursor.visits.entry(node.to_owned()).or_default();
    *visits += 1;
    let bound = wf
        .def
        .node(node)
        .and_then(|n| n.max_visits)
        .unwrap_or(DEFAULT_MAX_VISITS);
    if *visits > bound {
        return Err(format!("node `{node}` was entered more than {bound} times"));
    }
    Ok(*visits)
}

pub(super) fn clear_wait(next: &mut WorkflowRun, token: u32) {
    if next.cursor.waiting == Some(token) {
        next.cursor.waiting = None;
        next.wait = None;
    }
}

/// The token to run: the one a wake was for, else the first whose node does not wait (so a
/// run's other branches progress before it parks), else the first.
fn pick(wf: &CompiledWorkflow, run: &WorkflowRun) -> Option<usize> {
    let tokens = &run.cursor.tokens;
    if let Some(w) = run.cursor.waiting
        && let Some(i) = tokens.iter().position(|t| t.id == w)
    {
        return Some(i);
    }
    let waits = |t: &Token| {
        wf.def.node(&t.node).is_some_and(|n| {
            matches!(
                n.kind,
                NodeKind::Approval { .. }
                    | NodeKind::WaitEvent { .. }
                    | NodeKind::Timer { .. }
                    | NodeKind::SubWorkflow { .. }
                    | NodeKind::Agent { .. }
            )
        })
    };
    tokens
        .iter()
        .position(|t| !waits(t))
        .or((!tokens.is_empty()).then_some(0))
}

/// The id of the agent run an agent node starts at step `seq`.
pub(crate) fn agent_run_id(run: &RunId, seq: u64) -> Result<RunId> {
    RunId::new(format!("{run}.{seq}"))
}
