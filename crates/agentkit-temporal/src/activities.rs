//! The activities: one model call, one governed tool call, one approved tool call — each run
//! through the agent registered under the run's agent id.
// Temporal's macros generate undocumented associated items for each method.
#![allow(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;

use agentkit_core::agent::{Agent, ContextRequest};
use agentkit_core::error::Error;
use agentkit_core::exec::{CallOutcome, CallRequest};
use agentkit_core::id::{ApprovalId, IdempotencyKey, UsageEventId};
use agentkit_core::message::Message;
use agentkit_core::scope::Scope;
use agentkit_core::store::{
    RunRecord, RunStatus, SessionRecord, StateStore, UsageEvent, UsageKind, UsageQuery,
};
use temporalio_common::ActivityError;
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::ActivityContext;

use crate::types::{
    FinishInput, ModelCallInput, ModelTurn, PrepareInput, RunScope, ToolCallInput, ToolStep,
};

/// What a model call may spend at most when the agent sets no `max_tokens` (for the budget
/// gate's estimate), as in the agent's own loop.
const OUTPUT_ESTIMATE_TOKENS: u64 = 4096;

/// The activities of [`crate::AgentWorkflow`], over the agents a worker serves.
pub struct AgentActivities {
    agents: HashMap<String, Agent>,
}

impl AgentActivities {
    /// Activities over `agents` (by id).
    pub fn new(agents: impl IntoIterator<Item = Agent>) -> Self {
        Self {
            agents: agents
                .into_iter()
                .map(|a| (a.id().as_str().to_owned(), a))
                .collect(),
        }
    }

    fn agent(&self, id: &str) -> Result<&Agent, ActivityError> {
        self.agents.get(id).ok_or_else(|| {
            fail(Error::NotFound(format!(
                "agent `{id}` is not registered with this worker"
            )))
        })
    }
}

/// An agentkit error as an activity failure: retryable errors are retried by Temporal (after
/// the server's `retry_after` when it gave one), the rest fail the activity at once.
pub(crate) fn fail(e: Error) -> ActivityError {
    let retry_after = e.retry_after();
    let failure = if e.is_retryable() {
        ApplicationFailure::builder(e.to_string())
            .maybe_next_retry_delay(retry_after)
            .build()
    } else {
        ApplicationFailure::non_retryable(e.to_string())
    };
    ActivityError::application(failure)
}

#[activities]
impl AgentActivities {
    /// Records the run (and its session, on first use) in the agentkit store, so its approval
    /// requests, tool executions, usage and audit entries belong to a run the host can list.
    /// Idempotent: a retried start finds its own records.
    #[activity]
    pub async fn begin_run(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: RunScope,
    ) -> Result<(), ActivityError> {
        let scope = input.scope().map_err(fail)?;
        let store = self.agent(&input.agent)?.store();
        ensure_run(store.as_ref(), &scope).await.map_err(fail)
    }

    /// The context the run starts with, after the system prompt: the agent's context sources'
    /// blocks and its retrieved knowledge (`Agent::context_prefix`), asked once per run and
    /// kept in the run's history. A retrieval is metered once (a `knowledge_query` usage event
    /// under an id derived from the run).
    #[activity]
    pub async fn prepare_run(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: PrepareInput,
    ) -> Result<Vec<Message>, ActivityError> {
        let scope = input.scope.scope().map_err(fail)?;
        let agent = self.agent(&input.scope.agent)?;
        let request = ContextRequest::new(scope.clone(), input.input, input.metadata);
        let prefix = agent.context_prefix(&request).await.map_err(fail)?;
        if prefix.retrieved {
            let mut event = UsageEvent::scoped(&scope, UsageKind::KnowledgeQuery, 1);
            event.resource = Some("retriever".into());
            event.id = UsageEventId::new(format!("{}:knowledge_query", scope.run)).map_err(fail)?;
            let mut events = vec![event];
            agent.executor().price_usage(&mut events).await;
            match agent.store().append_usage(&scope.tenant, &events).await {
                // Recorded by an earlier attempt of this activity.
                Ok(()) | Err(Error::Conflict(_)) => {}
                Err(e) => return Err(fail(e)),
            }
        }
        Ok(prefix.messages)
    }

    /// Marks the run completed in the agentkit store with its answer and counts (once).
    #[activity]
    pub async fn finish_run(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: FinishInput,
    ) -> Result<(), ActivityError> {
        let scope = input.scope.scope().map_err(fail)?;
        let store = self.agent(&input.scope.agent)?.store();
        let Some(mut run) = store
            .get_run(&scope.tenant, &scope.run)
            .await
            .map_err(fail)?
        else {
            return Err(fail(Error::NotFound(format!("run {}", scope.run))));
        };
        if run.status == RunStatus::Completed {
            return Ok(());
        }
        let expected = run.version;
        run.version += 1;
        run.status = RunStatus::Completed;
        run.reply = Some(input.reply);
        run.turns = input.turns;
        run.tool_calls = input.tool_calls;
        run.tool_errors = input.tool_errors;
        run.usage = input.usage;
        run.updated_at = chrono::Utc::now();
        store
            .update_run(&scope.tenant, &run, expected)
            .await
            .map_err(fail)
    }

    /// One model call: the agent's model, prompt-side budget admission, usage metered into the
    /// agentkit store under ids derived from the workflow and activity (a retried activity does
    /// not count twice).
    #[activity]
    pub async fn model_call(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: ModelCallInput,
    ) -> Result<ModelTurn, ActivityError> {
        let scope = input.scope.scope().map_err(fail)?;
        let agent = self.agent(&input.scope.agent)?;
        let request = agent.completion_request(input.messages);
        let executor = agent.executor();
        let admission = if executor.is_metered() {
            let prompt: usize = request.messages.iter().map(Message::estimated_tokens).sum();
            let output = request.max_tokens.map_or(OUTPUT_ESTIMATE_TOKENS, u64::from);
            let estimate = [
                UsageEvent::scoped(&scope, UsageKind::InputTokens, prompt as u64),
                UsageEvent::scoped(&scope, UsageKind::OutputTokens, output),
            ];
            executor.admit_model_call(&estimate).await.map_err(fail)?
        } else {
            Default::default()
        };
        let response = match agent.provider().complete(&request).await {
            Ok(r) => r,
            Err(e) => {
                executor.settle_usage(admission, &mut []).await;
                return Err(fail(e));
            }
        };
        let activity = format!("{}:{}", input.scope.run, ctx.info().activity_id);
        record_usage(
            agent,
            &scope,
            &activity,
            &response.model,
            &response.usage,
            admission,
        )
        .await
        .map_err(fail)?;
        Ok(ModelTurn {
            content: response.content,
            tool_calls: response.tool_calls,
            usage: response.usage,
        })
    }

    /// One tool call through the agent's governed executor (allow-list, schema, policy,
    /// idempotency claim under [`ToolCallInput::key`], audit, metering). A call the policy
    /// sends to a human comes back as [`ToolStep::NeedsApproval`], its request stored.
    #[activity]
    pub async fn tool_call(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ToolCallInput,
    ) -> Result<ToolStep, ActivityError> {
        let agent = self.agent(&input.scope.agent)?;
        let request = call_request(&input).map_err(fail)?;
        let outcome = agent.executor().execute(request).await.map_err(fail)?;
        Ok(step(agent, &input, outcome, ""))
    }

    /// A decided approval's call: the reviewer's decision (and edited arguments) read from the
    /// agentkit store, the call run once with the decided arguments — or reported rejected.
    #[activity]
    pub async fn approved_call(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: ToolCallInput,
    ) -> Result<ToolStep, ActivityError> {
        let agent = self.agent(&input.scope.agent)?;
        let scope = input.scope.scope().map_err(fail)?;
        let id = input
            .approval
            .as_deref()
            .ok_or_else(|| {
                fail(Error::InvalidInput(
                    "approved_call without an approval".into(),
                ))
            })
            .and_then(|a| ApprovalId::new(a).map_err(fail))?;
        let approval = agent
            .store()
            .get_approval(&scope.tenant, &id)
            .await
            .map_err(fail)?
            .ok_or_else(|| fail(Error::NotFound(format!("approval {id}"))))?;
        let rejected = approval.not_approved_text();
        if let Some(content) = rejected {
            return Ok(ToolStep::Done {
                content,
                is_error: true,
            });
        }
        let request = call_request(&input).map_err(fail)?;
        let outcome = agent
            .executor()
            .execute_approved(request, &approval)
            .await
            .map_err(fail)?;
        Ok(step(agent, &input, outcome, "Approved, but "))
    }
}

/// Creates the run's session (on first use) and its run record in the agentkit store, so its
/// approval requests, tool executions, usage and audit entries belong to a run the host can
/// list. Idempotent: a retried start finds its own records.
pub(crate) async fn ensure_run(store: &dyn StateStore, scope: &Scope) -> agentkit_core::Result<()> {
    let session = SessionRecord::new(
        scope.tenant.clone(),
        scope.session.clone(),
        scope.agent.clone(),
    );
    store.create_session(&scope.tenant, &session).await?;
    match store
        .create_run(&scope.tenant, &RunRecord::new(scope))
        .await
    {
        Ok(()) | Err(Error::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

fn call_request(input: &ToolCallInput) -> agentkit_core::Result<CallRequest> {
    Ok(CallRequest::new(
        input.scope.scope()?,
        input.call.clone(),
        IdempotencyKey::new(input.key())?,
    ))
}

fn step(agent: &Agent, input: &ToolCallInput, outcome: CallOutcome, prefix: &str) -> ToolStep {
    if let CallOutcome::NeedsApproval(approval) = &outcome {
        return ToolStep::NeedsApproval {
            approval: approval.id.to_string(),
        };
    }
    let limit = agent.limits().max_tool_result_bytes;
    match outcome.into_message(&input.call, prefix, limit) {
        Message::Tool {
            content, is_error, ..
        } => ToolStep::Done { content, is_error },
        other => ToolStep::Done {
            content: other.text().to_owned(),
            is_error: true,
        },
    }
}

/// Prices and appends a model call's token usage once per activity: ids derived from the
/// workflow and the activity, skipped when an earlier attempt recorded them.
async fn record_usage(
    agent: &Agent,
    scope: &Scope,
    activity: &str,
    model: &str,
    usage: &agentkit_core::message::Usage,
    admission: agentkit_core::store::Admission,
) -> agentkit_core::Result<()> {
    let mut events = UsageEvent::for_model_call(scope, usage, model);
    for e in &mut events {
        e.id = UsageEventId::new(format!("{activity}:{}", e.kind.as_str()))?;
    }
    let store = agent.store();
    let recorded = store
        .list_usage(&scope.tenant, &UsageQuery::all().run(scope.run.clone()))
        .await?;
    if events.iter().any(|e| recorded.iter().any(|r| r.id == e.id)) {
        // An earlier attempt of this activity recorded (and settled) them.
        agent.executor().settle_usage(admission, &mut []).await;
        return Ok(());
    }
    agent.executor().settle_usage(admission, &mut events).await;
    match store.append_usage(&scope.tenant, &events).await {
        Ok(()) | Err(Error::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}
