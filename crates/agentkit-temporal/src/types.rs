//! What the workflow and its activities exchange (serialised into Temporal's history).

use std::collections::BTreeMap;

use agentkit_core::Result;
use agentkit_core::id::{AgentId, RunId, SessionId, TenantId};
use agentkit_core::message::{Message, ToolCall, Usage};
use agentkit_core::scope::Scope;
use serde::{Deserialize, Serialize};

/// The input a run starts with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRunInput {
    /// The tenant.
    pub tenant: String,
    /// The agent (registered with the worker's [`crate::TemporalAgents`]).
    pub agent: String,
    /// The session.
    pub session: String,
    /// The user's message.
    pub input: String,
    /// How long one model call may take (the activity's start-to-close timeout; after it a
    /// lost worker's call is retried elsewhere). Default 60 s.
    #[serde(default = "model_timeout")]
    pub model_timeout_secs: u64,
    /// How long one tool call may take (default 30 s; [`AgentRunInput::for_agent`] takes the
    /// agent's `tool_timeout_secs` plus 5 s for the executor's records).
    #[serde(default = "tool_timeout")]
    pub tool_timeout_secs: u64,
    /// Model calls at most before the run fails without an answer (the agent's `max_turns`
    /// with [`AgentRunInput::for_agent`]; default 10, as the agent's default limit).
    #[serde(default = "max_turns")]
    pub max_turns: u32,
    /// The run's metadata (e.g. the end user's id), given to the agent's context sources.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

fn max_turns() -> u32 {
    agentkit_core::config::Limits::default().max_turns
}

fn model_timeout() -> u64 {
    60
}

fn tool_timeout() -> u64 {
    30
}

impl AgentRunInput {
    /// A run of `input` by `agent` for `tenant` in `session`.
    pub fn new(
        tenant: impl Into<String>,
        agent: impl Into<String>,
        session: impl Into<String>,
        input: impl Into<String>,
    ) -> Self {
        Self {
            tenant: tenant.into(),
            agent: agent.into(),
            session: session.into(),
            input: input.into(),
            model_timeout_secs: model_timeout(),
            tool_timeout_secs: tool_timeout(),
            max_turns: max_turns(),
            metadata: BTreeMap::new(),
        }
    }

    /// Adds metadata the agent's context sources see (`ContextRequest::metadata`).
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// A run of `agent` under the agent's limits: its `max_turns`, and its tool timeout (plus
    /// 5 s for the executor's records) as the tool-call timeout.
    pub fn for_agent(
        agent: &agentkit_core::agent::Agent,
        tenant: impl Into<String>,
        session: impl Into<String>,
        input: impl Into<String>,
    ) -> Self {
        let mut run = Self::new(tenant, agent.id().as_str(), session, input);
        run.tool_timeout_secs = agent.limits().tool_timeout_secs.saturating_add(5);
        run.max_turns = agent.limits().max_turns;
        run
    }

    /// Sets the model-call and tool-call timeouts, in seconds (at least 1).
    pub fn timeouts(mut self, model_secs: u64, tool_secs: u64) -> Self {
        self.model_timeout_secs = model_secs.max(1);
        self.tool_timeout_secs = tool_secs.max(1);
        self
    }
}

/// One tool call of a run and what the model was shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallSummary {
    /// The call.
    pub call: ToolCall,
    /// The result or the error, as the model saw it.
    pub result: String,
    /// Whether it was an error (refused, denied, rejected, failed).
    pub is_error: bool,
}

/// A finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRunOutput {
    /// The run (the workflow id).
    pub run: String,
    /// The final answer.
    pub reply: String,
    /// Model calls made.
    pub turns: u32,
    /// Tool calls, in order.
    pub tool_calls: Vec<CallSummary>,
}

/// The ids of a run, as strings (validated into a [`Scope`] by the activities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunScope {
    /// Tenant.
    pub tenant: String,
    /// Agent.
    pub agent: String,
    /// Session.
    pub session: String,
    /// Run (the workflow id).
    pub run: String,
}

impl RunScope {
    /// The validated scope.
    pub fn scope(&self) -> Result<Scope> {
        Ok(Scope::new(
            TenantId::new(&self.tenant)?,
            AgentId::new(&self.agent)?,
            SessionId::new(&self.session)?,
            RunId::new(&self.run)?,
        ))
    }
}

/// The model-call activity's input: the conversation so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCallInput {
    /// Whose run.
    pub scope: RunScope,
    /// The conversation (system prompt first).
    pub messages: Vec<Message>,
    /// The model call's number in the run, from 0.
    pub step: u32,
}

/// The model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelTurn {
    /// Text.
    pub content: String,
    /// Proposed tool calls.
    pub tool_calls: Vec<ToolCall>,
    /// Tokens.
    pub usage: Usage,
}

/// The tool-call activity's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallInput {
    /// Whose run.
    pub scope: RunScope,
    /// The call.
    pub call: ToolCall,
    /// The model call that proposed it.
    pub step: u32,
    /// For a decided approval: its id.
    pub approval: Option<String>,
}

impl ToolCallInput {
    /// The idempotency key: the run (the workflow id), the step and the call — stable across
    /// activity retries and worker restarts, so an effect happens at most once.
    pub fn key(&self) -> String {
        format!("temporal:{}:{}:{}", self.scope.run, self.step, self.call.id)
    }
}

/// What a tool call came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToolStep {
    /// A result (or an error) for the model.
    Done {
        /// The text the model is shown.
        content: String,
        /// Whether it is an error.
        is_error: bool,
    },
    /// The policy wants a human: the approval request is in the agentkit store.
    NeedsApproval {
        /// Its id.
        approval: String,
    },
}

/// The finish activity's input: what the run came to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishInput {
    /// Whose run.
    pub scope: RunScope,
    /// The final answer.
    pub reply: String,
    /// Model calls.
    pub turns: u32,
    /// Tool calls.
    pub tool_calls: u32,
    /// Tool calls that ended in an error.
    pub tool_errors: u32,
    /// Tokens over the run.
    pub usage: Usage,
}

/// The `prepare_run` activity's input: what the agent's context sources and retriever are
/// asked with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareInput {
    /// The run's scope.
    pub scope: RunScope,
    /// The run's input.
    pub input: String,
    /// The run's metadata.
    pub metadata: BTreeMap<String, String>,
}
