//! Recovery from a failed node: a human's retry / skip / abort decision (WAIT_FOR_HUMAN), and
//! the compensations of completed nodes in reverse order (ROLLBACK).

use agentkit_core::exec::{CallOutcome, CallRequest};
use agentkit_core::id::{ApprovalId, IdempotencyKey};
use agentkit_core::message::ToolCall;
use agentkit_core::scope::Scope;
use agentkit_core::store::ApprovalStatus;
use agentkit_core::{Error, Result};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Workflows;
use super::drive::{Planned, StepMeta, clear_wait};
use crate::record::{RunState, StepStatus, Token, WorkflowRun};
use crate::validate::CompiledWorkflow;

impl Workflows {
    /// A human decided on a failed node: retry, skip or abort.
    pub(super) async fn failure_decided(
        &self,
        wf: &CompiledWorkflow,
        run: &WorkflowRun,
        mut next: WorkflowRun,
        index: usize,
        meta: &StepMeta<'_>,
        approval: &ApprovalId,
    ) -> Result<Planned> {
        let now = self.inner.clock.now();
        let request = self
            .state()
            .get_approval(&run.tenant, approval)
            .await?
            .ok_or_else(|| Error::NotFound(format!("approval {approval}")))?;
        let decision = json!({
            "status": request.status,
            "reviewer": request.reviewer,
            "comment": request.comment,
        });
        match request.status {
            ApprovalStatus::Pending => {
                // Nudged before a decision: keep waiting.
                next.state = RunState::Waiting;
                next.next_seq = run.next_seq;
                Ok(Planned {
                    run: next,
                    step: None,
                })
            }
            ApprovalStatus::Approved => {
                let skip = request
                    .edited_arguments
                    .as_ref()
                    .and_then(|a| a.get("action"))
                    .and_then(Value::as_str)
                    == Some("skip");
                clear_wait(&mut next, meta.token.id);
                if skip {
                    let step =
                        meta.record(run, StepStatus::Skipped, decision, Value::Null, None, now);
                    if let Value::Object(ctx) = &mut next.context {
                        ctx.insert(meta.node.output_key().to_owned(), Value::Null);
                    }
                    if let Err(e) = self.route(wf, &mut next, index, None) {
                        return Ok(self.fail_run_with_step(next, step, e));
                    }
                    if next.cursor.tokens.is_empty() {
                        next.state = RunState::Done;
                    }
                    return Ok(Planned {
                        run: next,
                        step: Some(step),
                    });
                }
                next.cursor.tokens[index].attempt += 1;
                next.next_seq = run.next_seq;
                Ok(Planned {
                    run: next,
                    step: None,
                })
            }
            _ => {
                let reviewer = request.reviewer.clone().unwrap_or_default();
                let step = meta.record(
                    run,
                    StepStatus::Failed,
                    decision,
                    Value::Null,
                    Some(format!("aborted by {reviewer}")),
                    now,
                );
                Ok(self.fail_run_with_step(
                    next,
                    step,
                    format!(
                        "node `{}` failed and {reviewer} aborted the run",
                        meta.node.id
                    ),
                ))
            }
        }
    }

    /// Runs the latest completed node's compensation (rollback).
    pub(super) async fn compensate_next(
        &self,
        wf: &CompiledWorkflow,
        scope: &Scope,
        run: &WorkflowRun,
        mut next: WorkflowRun,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<Planned> {
        let reason = run.cursor.rolling_back.clone().unwrap_or_default();
        let Some(done) = next.cursor.compensable.pop() else {
            next.cursor.rolling_back = None;
            next.state = RunState::Failed;
            next.error = Some(format!("{reason}; rolled back"));
            return Ok(Planned {
                run: next,
                step: None,
            });
        };
        let node = wf
            .def
            .node(&done.node)
            .ok_or_else(|| Error::InvalidConfig(format!("node `{}` is gone", done.node)))?;
        let token = Token {
            id: 0,
            node: node.id.clone(),
            attempt: 1,
            visit: done.visit,
        };
        let meta = StepMeta {
            seq: run.next_seq,
            token: &token,
            node,
            worker,
            started: now,
        };
        let (Some(c), Some(template)) = (
            &node.compensate,
            wf.nodes.get(&node.id).and_then(|n| n.compensate.as_ref()),
        ) else {
            return Ok(Planned {
                run: next,
                step: None,
            });
        };
        let args = match template.render(&run.context) {
            Ok(a) => a,
            Err(e) => {
                let error = format!("{reason}; the compensation of `{}` failed: {e}", node.id);
                return Ok(self.fail_run(stop_rollback(next), &meta, error, now));
            }
        };
        let key = IdempotencyKey::new(format!("wfc:{}:{}:{}", run.id, node.id, done.visit))?;
        let call = ToolCall::new(
            format!("{}.{}.undo", node.id, done.visit),
            &c.tool,
            args.clone(),
        );
        let request = CallRequest::new(scope.clone(), call, key).with_audit_kind("tool.compensate");
        let outcome = self.inner.executor.execute(request).await?;
        let end = self.inner.clock.now();
        match outcome {
            CallOutcome::Succeeded { output, .. } => {
                let step = meta.record(run, StepStatus::Compensated, args, output, None, end);
                if next.cursor.compensable.is_empty() {
                    next.cursor.rolling_back = None;
                    next.state = RunState::Failed;
                    next.error = Some(format!("{reason}; rolled back"));
                }
                Ok(Planned {
                    run: next,
                    step: Some(step),
                })
            }
            other => {
                let error = format!(
                    "{reason}; the compensation of `{}` did not succeed ({}); the rollback \
                     stopped with {} compensation(s) not run",
                    node.id,
                    other.label(),
                    next.cursor.compensable.len()
                );
                Ok(self.fail_run(stop_rollback(next), &meta, error, end))
            }
        }
    }
}

fn stop_rollback(mut next: WorkflowRun) -> WorkflowRun {
    next.cursor.rolling_back = None;
    next
}
