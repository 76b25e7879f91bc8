//! The agent configuration record: what a store keeps per agent version (contracts only; the
//! agent runtime builds an `Agent` from it in `agent::AgentBuilder::from_config`).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::AgentId;
use crate::model::OutputSchema;

/// Whether a config version may still change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigStatus {
    /// Editable.
    #[default]
    Draft,
    /// Immutable; agents in production run final versions.
    Final,
}

/// How much history the model sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MemoryPolicy {
    /// The last `count` messages.
    LastMessages {
        /// How many.
        count: usize,
    },
    /// As many recent messages as fit in `tokens` (estimated), at most `max_messages`.
    TokenBudget {
        /// Token budget for history.
        tokens: usize,
        /// Upper bound on messages loaded.
        max_messages: usize,
    },
}

impl Default for MemoryPolicy {
    fn default() -> Self {
        MemoryPolicy::LastMessages { count: 50 }
    }
}

/// Run limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Model calls per run.
    pub max_turns: u32,
    /// Tool calls honoured per model response; extra calls are answered with an error.
    pub max_tool_calls_per_turn: u32,
    /// Tool calls executed at once.
    pub tool_concurrency: usize,
    /// Error tool results (invalid arguments, unknown tools, failures) before the run fails.
    pub max_tool_errors: u32,
    /// Tool result text shown to the model is cut to this many bytes.
    pub max_tool_result_bytes: usize,
    /// Retries when the final answer does not match the output schema.
    pub max_output_retries: u32,
    /// Seconds one tool call may take before it fails with a timeout.
    #[serde(default = "default_tool_timeout_secs")]
    pub tool_timeout_secs: u64,
}

fn default_tool_timeout_secs() -> u64 {
    crate::exec::DEFAULT_TOOL_TIMEOUT.as_secs()
}

impl Limits {
    /// [`Limits::tool_timeout_secs`] as a duration.
    pub fn tool_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.tool_timeout_secs)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_turns: 10,
            max_tool_calls_per_turn: 8,
            tool_concurrency: 4,
            max_tool_errors: 5,
            max_tool_result_bytes: 16 * 1024,
            max_output_retries: 2,
            tool_timeout_secs: default_tool_timeout_secs(),
        }
    }
}

/// Which model to call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Key of the provider in the [`AgentRegistry`](crate::agent::AgentRegistry).
    pub provider: String,
    /// Model name sent to the provider.
    pub name: String,
    /// Temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Output token cap.
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

/// Approval rules for the core allow-list policy built from a config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRules {
    /// Tool patterns that need a human's approval.
    #[serde(default)]
    pub require_approval: Vec<String>,
}

/// A versioned, serializable agent definition (JSON, TOML, YAML via serde).
///
/// ```
/// use agentkit_core::agent::AgentConfig;
/// let cfg: AgentConfig = serde_json::from_str(r#"{
///     "agent": "support", "version": 1,
///     "system_prompt": "You are a helpful support agent.",
///     "model": {"provider": "scripted", "name": "test-model"},
///     "tools": ["crm.*"]
/// }"#).unwrap();
/// assert_eq!(cfg.limits.max_turns, 10);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentConfig {
    /// The agent.
    pub agent: AgentId,
    /// Version number, from 1.
    pub version: u32,
    /// Draft or final.
    #[serde(default)]
    pub status: ConfigStatus,
    /// Human-readable name.
    #[serde(default)]
    pub name: String,
    /// Persona and rules.
    pub system_prompt: String,
    /// The model.
    pub model: ModelRef,
    /// Tool names or patterns (`crm.*`) from the registry the agent may call.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Approval rules for the default policy.
    #[serde(default)]
    pub policy: ApprovalRules,
    /// History window.
    #[serde(default)]
    pub memory: MemoryPolicy,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Structured output schema.
    #[serde(default)]
    pub output_schema: Option<OutputSchema>,
    /// An agent whose model takes over when this one's model fails.
    #[serde(default)]
    pub backup_agent: Option<AgentId>,
    /// An agent that scores this one's answers (an
    /// [`Evaluator`](crate::agent::Evaluator); built with
    /// [`AgentRegistry::eval_agent_of`](crate::agent::AgentRegistry::eval_agent_of)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_agent: Option<AgentId>,
}

impl AgentConfig {
    /// Parses JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::InvalidConfig(format!("agent config: {e}")))
    }

    /// A copy as the next draft version (what editing a final config produces).
    pub fn next_draft(&self) -> Self {
        Self {
            version: self.version + 1,
            status: ConfigStatus::Draft,
            ..self.clone()
        }
    }

    /// This config marked final.
    pub fn finalized(mut self) -> Self {
        self.status = ConfigStatus::Final;
        self
    }
}
