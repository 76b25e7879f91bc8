//! A run of an agentkit workflow definition as a Temporal workflow: its signals and queries.
// Temporal's macros generate undocumented associated items for each method.
#![allow(missing_docs)]

use std::collections::BTreeSet;

use agentkit_workflow::WorkflowEvent;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{SyncWorkflowContext, WorkflowContext, WorkflowContextView, WorkflowResult};

use super::run::Interpreter;
use super::types::{GraphRunInput, GraphRunOutput, GraphStep};

/// A run of an agentkit [`WorkflowDefinition`](agentkit_workflow::WorkflowDefinition) (the
/// same JSON/TOML the embedded engine runs) on Temporal. Its workflow id is the run id in the
/// agentkit store's records. See the crate docs for how each kind of node runs.
#[workflow]
#[derive(Default)]
pub struct GraphWorkflow {
    /// Approval requests decided in the agentkit store, as signalled.
    pub(crate) decided: BTreeSet<String>,
    /// Approval requests the run waits for.
    pub(crate) waiting: BTreeSet<String>,
    /// Events delivered and not yet taken by a `wait_event` node, oldest first.
    pub(crate) events: Vec<WorkflowEvent>,
    /// The ids of every event delivered (a retried delivery is ignored).
    pub(crate) seen: BTreeSet<String>,
    /// `resume` signals so far (a call left in doubt waits for the next one).
    pub(crate) resumes: u64,
    /// The step log so far.
    pub(crate) steps: Vec<GraphStep>,
}

#[workflow_methods]
impl GraphWorkflow {
    /// Runs the definition from its start node until every branch has ended (the run is
    /// done) or a node fails past its retries and failure strategy (the run fails, after its
    /// compensations under ROLLBACK).
    #[run]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: GraphRunInput,
    ) -> WorkflowResult<GraphRunOutput> {
        Interpreter::start(ctx.clone(), input)
            .await?
            .execute()
            .await
    }

    /// An approval request of this run was decided in the agentkit store (send it after the
    /// decision: [`crate::decide`] does both).
    #[signal]
    pub fn approval_decided(&mut self, _ctx: &mut SyncWorkflowContext<Self>, approval: String) {
        self.decided.insert(approval);
    }

    /// An event for the run's `wait_event` nodes: the first node waiting for its name and
    /// correlation key takes it; one that comes before any node waits is kept for the first
    /// that does. An id delivered before is ignored.
    #[signal]
    pub fn event(&mut self, _ctx: &mut SyncWorkflowContext<Self>, event: WorkflowEvent) {
        if self.seen.insert(event.id.clone()) {
            self.events.push(event);
        }
    }

    /// Looks again at calls left in doubt (after a human resolved them with
    /// `ToolExecutor::resolve_in_doubt`).
    #[signal]
    pub fn resume(&mut self, _ctx: &mut SyncWorkflowContext<Self>, _note: String) {
        self.resumes += 1;
    }

    /// The approval requests the run is waiting for.
    #[query]
    pub fn waiting_for(&self, _ctx: &WorkflowContextView) -> Vec<String> {
        self.waiting.iter().cloned().collect()
    }

    /// The steps so far.
    #[query]
    pub fn steps(&self, _ctx: &WorkflowContextView) -> Vec<GraphStep> {
        self.steps.clone()
    }
}
