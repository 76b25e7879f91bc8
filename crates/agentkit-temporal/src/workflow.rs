//! The agent run as a Temporal workflow: the turn loop over activities, approvals as signals.
// Temporal's macros generate undocumented associated items for each method.
#![allow(missing_docs)]

use std::collections::BTreeSet;
use std::time::Duration;

use agentkit_core::message::{Message, Usage};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, SyncWorkflowContext, WorkflowContext, WorkflowContextView, WorkflowResult,
};

use crate::activities::AgentActivities;
use crate::types::{
    AgentRunInput, AgentRunOutput, CallSummary, FinishInput, ModelCallInput, PrepareInput,
    RunScope, ToolCallInput, ToolStep,
};

/// An agent run (see the crate docs). Its workflow id is the run id in the agentkit store.
#[workflow]
#[derive(Default)]
pub struct AgentWorkflow {
    /// Approval requests decided in the agentkit store, as signalled.
    decided: BTreeSet<String>,
    /// Approval requests the run waits for.
    waiting: BTreeSet<String>,
}

fn options(secs: u64) -> ActivityOptions {
    ActivityOptions::start_to_close_timeout(Duration::from_secs(secs.max(1)))
}

#[workflow_methods]
impl AgentWorkflow {
    /// Runs `input` to a final answer: model calls and tool calls as activities, waiting (as
    /// long as it takes) for each approval the policy asks for.
    #[run]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: AgentRunInput,
    ) -> WorkflowResult<AgentRunOutput> {
        let scope = RunScope {
            tenant: input.tenant.clone(),
            agent: input.agent.clone(),
            session: input.session.clone(),
            run: ctx.workflow_id().to_owned(),
        };
        let (model_secs, tool_secs) = (input.model_timeout_secs, input.tool_timeout_secs);
        ctx.execute_activity(
            AgentActivities::begin_run,
            scope.clone(),
            options(tool_secs),
        )
        .await?;
        // The host's context and retrieved knowledge, asked once and kept in the history.
        let mut messages = ctx
            .execute_activity(
                AgentActivities::prepare_run,
                PrepareInput {
                    scope: scope.clone(),
                    input: input.input.clone(),
                    metadata: input.metadata.clone(),
                },
                options(tool_secs),
            )
            .await?;
        messages.push(Message::user(input.input.clone()));
        let mut summaries: Vec<CallSummary> = Vec::new();
        let mut usage = Usage::default();
        let max_turns = input.max_turns.max(1);
        for step in 0..max_turns {
            let turn = ctx
                .execute_activity(
                    AgentActivities::model_call,
                    ModelCallInput {
                        scope: scope.clone(),
                        messages: messages.clone(),
                        step,
                    },
                    options(model_secs),
                )
                .await?;
            usage.add(&turn.usage);
            messages.push(Message::Assistant {
                content: turn.content.clone(),
                tool_calls: turn.tool_calls.clone(),
            });
            if turn.tool_calls.is_empty() {
                let finish = FinishInput {
                    scope: scope.clone(),
                    reply: turn.content.clone(),
                    turns: step + 1,
                    tool_calls: u32::try_from(summaries.len()).unwrap_or(u32::MAX),
                    tool_errors: u32::try_from(summaries.iter().filter(|c| c.is_error).count())
                        .unwrap_or(u32::MAX),
                    usage,
                };
                ctx.execute_activity(AgentActivities::finish_run, finish, options(tool_secs))
                    .await?;
                return Ok(AgentRunOutput {
                    run: scope.run,
                    reply: turn.content,
                    turns: step + 1,
                    tool_calls: summaries,
                });
            }
            for call in turn.tool_calls {
                let mut call_input = ToolCallInput {
                    scope: scope.clone(),
                    call: call.clone(),
                    step,
                    approval: None,
                };
                let mut outcome = ctx
                    .execute_activity(
                        AgentActivities::tool_call,
                        call_input.clone(),
                        options(tool_secs),
                    )
                    .await?;
                if let ToolStep::NeedsApproval { approval } = &outcome {
                    let approval = approval.clone();
                    ctx.state_mut(|s| s.waiting.insert(approval.clone()));
                    ctx.wait_condition(|s| s.decided.contains(&approval))
                        .await?;
                    ctx.state_mut(|s| s.waiting.remove(&approval));
                    call_input.approval = Some(approval);
                    outcome = ctx
                        .execute_activity(
                            AgentActivities::approved_call,
                            call_input,
                            options(tool_secs),
                        )
                        .await?;
                }
                let (content, is_error) = match outcome {
                    ToolStep::Done { content, is_error } => (content, is_error),
                    ToolStep::NeedsApproval { approval } => (
                        format!("Not executed: approval {approval} is still pending."),
                        true,
                    ),
                };
                messages.push(if is_error {
                    Message::tool_error(&call.id, &call.name, content.clone())
                } else {
                    Message::tool_result(&call.id, &call.name, content.clone())
                });
                summaries.push(CallSummary {
                    call,
                    result: content,
                    is_error,
                });
            }
        }
        Err(failed(format!(
            "the run made {max_turns} model calls without a final answer"
        )))
    }

    /// An approval request of this run was decided in the agentkit store (send it after the
    /// decision: [`crate::decide`] does both).
    #[signal]
    pub fn approval_decided(&mut self, _ctx: &mut SyncWorkflowContext<Self>, approval: String) {
        self.decided.insert(approval);
    }

    /// The approval requests the run is waiting for.
    #[query]
    pub fn waiting_for(&self, _ctx: &WorkflowContextView) -> Vec<String> {
        self.waiting.iter().cloned().collect()
    }
}

fn failed(message: String) -> temporalio_sdk::WorkflowTermination {
    temporalio_sdk::ApplicationFailure::non_retryable(message).into()
}
