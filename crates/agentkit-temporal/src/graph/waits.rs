//! Waiting on people and events: approval requests decided by signal, correlated events,
//! a failed node's reviewer (WAIT_FOR_HUMAN), and the compensations of a rollback.

use std::time::Duration;

use agentkit_core::policy::Priority;
use agentkit_core::store::ApprovalStatus;
use agentkit_workflow::{Node, StepStatus};
use futures::future::Either;
use serde_json::{Value, json};
use temporalio_sdk::WorkflowResult;

use super::activities::GraphActivities;
use super::run::{Human, Interpreter, Outcome, bookkeeping};
use super::types::{ApprovalView, NodeCall, OpenApproval, ReadApproval};

impl Interpreter {
    /// Opens an approval request in the agentkit store and waits for its decision.
    pub(super) async fn approval(&self, open: OpenApproval) -> WorkflowResult<ApprovalView> {
        let id = open.id.clone();
        self.ctx
            .execute_activity(GraphActivities::open_approval, open, bookkeeping())
            .await?;
        self.wait_decided(&id).await?;
        self.read_approval(&id).await
    }

    /// Waits (holding no worker) until the `approval_decided` signal names `id`.
    pub(super) async fn wait_decided(&self, id: &str) -> WorkflowResult<()> {
        self.ctx.state_mut(|s| s.waiting.insert(id.to_owned()));
        self.ctx.wait_condition(|s| s.decided.contains(id)).await?;
        self.ctx.state_mut(|s| s.waiting.remove(id));
        Ok(())
    }

    pub(super) async fn read_approval(&self, id: &str) -> WorkflowResult<ApprovalView> {
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
    pub(super) async fn wait_event(
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
    pub(super) async fn ask_human(
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
    pub(super) async fn compensate(&self, reason: String) -> WorkflowResult<String> {
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
