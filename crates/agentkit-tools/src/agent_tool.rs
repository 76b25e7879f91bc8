//! An agent as a tool of another agent.

use std::sync::Arc;

use agentkit_core::agent::{Agent, RunOutcome, RunRequest};
use agentkit_core::id::{RunId, SessionId};
use agentkit_core::store::{PendingCall, RunRecord, RunStatus};
use agentkit_core::tool::{SideEffect, Tool, ToolContext, ToolSpec};
use agentkit_core::{Error, Result};
use async_trait::async_trait;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::governed::GovernedTool;
use crate::metadata::ToolMetadata;
use crate::registry::RegisteredTool;

/// The arguments of an [`AgentTool`].
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentToolArgs {
    /// The task or question for the agent, in plain language, with everything it needs to know.
    pub input: String,
}

/// Another [`Agent`] as a tool: arguments `{"input": "..."}`, output its reply.
///
/// Each call runs the inner agent in a child session derived from the parent's
/// (`{parent session}/{inner agent}`, so the inner agent remembers earlier delegations in the
/// same conversation), as a run whose id derives from the call's idempotency key
/// (`{key}/{inner agent}`). A repeated call therefore does not run the inner agent again: it
/// reports the inner run as recorded in the inner agent's store.
///
/// The output is `{"status": "completed", "reply": .., "run": ..}`, or, when the inner agent
/// needs a human approval, `{"status": "suspended", "run": .., "approvals": [..], "message":
/// ..}` telling the model the answer is not available yet (resume the inner run with
/// `Agent::resume` once decided). The tool's side-effect class is at least the strongest of the
/// inner agent's tools, whatever the metadata says.
#[derive(Debug, Clone)]
pub struct AgentTool {
    governed: GovernedTool,
}

impl AgentTool {
    /// Wraps `agent` under `metadata` (name, description, timeout, rate limit...).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use agentkit_core::agent::Agent;
    /// use agentkit_core::testkit::{ScriptedModel, ScriptedResponse};
    /// use agentkit_tools::{AgentTool, ToolMetadata};
    ///
    /// let model = Arc::new(ScriptedModel::new([ScriptedResponse::text("42")]));
    /// let researcher = Agent::builder().id("researcher").model(model, "scripted").build()?;
    /// let tool = AgentTool::new(
    ///     ToolMetadata::new("agents.researcher", "Researches a question and answers it"),
    ///     researcher,
    /// )?;
    /// # let _ = tool;
    /// # Ok::<(), agentkit_core::Error>(())
    /// ```
    pub fn new(mut metadata: ToolMetadata, agent: Agent) -> Result<Self> {
        let strongest = agent
            .tool_specs()
            .iter()
            .map(|s| s.side_effect)
            .fold(metadata.side_effect, stronger);
        metadata.side_effect = strongest;
        let tool_name: Arc<str> = metadata.name.as_str().into();
        let agent = Arc::new(agent);
        let handler = move |ctx: ToolContext, args: AgentToolArgs| {
            let agent = agent.clone();
            let tool_name = tool_name.clone();
            async move { run_inner(&agent, &tool_name, ctx, args).await }
        };
        let governed = GovernedTool::from_handler(metadata, handler)?;
        Ok(Self { governed })
    }

    /// The metadata.
    pub fn metadata(&self) -> &ToolMetadata {
        self.governed.metadata()
    }
}

fn rank(s: SideEffect) -> u8 {
    match s {
        SideEffect::Read => 0,
        SideEffect::Write => 1,
        SideEffect::External => 2,
    }
}

fn stronger(a: SideEffect, b: SideEffect) -> SideEffect {
    if rank(b) > rank(a) { b } else { a }
}

async fn run_inner(
    agent: &Agent,
    tool: &str,
    ctx: ToolContext,
    args: AgentToolArgs,
) -> Result<Value> {
    let inner = agent.id();
    let run = RunId::new(format!("{}/{inner}", ctx.idempotency_key))?;
    if let Some(existing) = agent.store().get_run(&ctx.scope.tenant, &run).await? {
        return describe_record(tool, &existing);
    }
    if args.input.trim().is_empty() {
        return Err(Error::Tool(format!(
            "`{tool}` needs a non-empty `input` for the agent"
        )));
    }
    let session = SessionId::new(format!("{}/{inner}", ctx.scope.session))?;
    let request = RunRequest::new(&ctx.scope.tenant, session, args.input)
        .with_run_id(run.clone())
        .with_cancellation(ctx.cancellation.child_token());
    match agent.run(request).await? {
        RunOutcome::Completed(report) => Ok(json!({
            "status": "completed",
            "reply": report.reply,
            "run": report.run,
        })),
        RunOutcome::Suspended(s) => Ok(suspended(
            tool,
            &s.run,
            s.approvals
                .iter()
                .map(|a| json!({"approval": a.id, "tool": a.call.name, "reason": a.reason}))
                .collect(),
        )),
        RunOutcome::AlreadyResumed { run, status } => {
            match agent.store().get_run(&ctx.scope.tenant, &run).await? {
                Some(record) => describe_record(tool, &record),
                None => Err(Error::Internal(format!(
                    "inner run {run} is {} but was not found",
                    status.as_str()
                ))),
            }
        }
        other => Err(Error::Internal(format!(
            "unexpected outcome of the inner run: {other:?}"
        ))),
    }
}

fn suspended(tool: &str, run: &RunId, approvals: Vec<Value>) -> Value {
    json!({
        "status": "suspended",
        "run": run,
        "approvals": approvals,
        "message": format!(
            "`{tool}` is waiting for a human to approve {} of its actions; its answer is not \
             available yet. Tell the user the request is pending approval; do not call `{tool}` \
             again for the same request.",
            approvals.len()
        ),
    })
}

/// The output for an inner run that already exists (a repeated call).
fn describe_record(tool: &str, record: &RunRecord) -> Result<Value> {
    match record.status {
        RunStatus::Completed => Ok(json!({
            "status": "completed",
            "reply": record.reply.clone().unwrap_or_default(),
            "run": record.id,
        })),
        RunStatus::Suspended => Ok(suspended(
            tool,
            &record.id,
            record
                .pending
                .iter()
                .filter_map(|p| match p {
                    PendingCall::AwaitingApproval { call, approval, .. } => {
                        Some(json!({"approval": approval, "tool": call.name}))
                    }
                    PendingCall::Resolved { .. } => None,
                })
                .collect(),
        )),
        RunStatus::Running => Err(Error::Conflict(format!(
            "`{tool}`: the inner run {} is still running",
            record.id
        ))),
        RunStatus::Failed => Err(Error::Tool(format!(
            "`{tool}` failed: {}",
            record.error.as_deref().unwrap_or("unknown error")
        ))),
    }
}

#[async_trait]
impl Tool for AgentTool {
    fn spec(&self) -> &ToolSpec {
        self.governed.spec()
    }

    async fn call(&self, ctx: ToolContext, arguments: Value) -> Result<Value> {
        self.governed.call(ctx, arguments).await
    }
}

impl From<AgentTool> for RegisteredTool {
    fn from(tool: AgentTool) -> Self {
        tool.governed.into()
    }
}
