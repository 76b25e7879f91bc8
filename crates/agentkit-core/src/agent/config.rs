//! Serializable agent configuration, versions and blueprints.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::AgentId;
use crate::model::{LlmProvider, OutputSchema};
use crate::tool::Tool;

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
        }
    }
}

/// Which model to call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Key of the provider in the [`AgentRegistry`].
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

/// A template that produces agent configs ("Customer Support", "Ad Optimizer").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blueprint {
    /// Template name.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Category (Sales, Marketing...).
    #[serde(default)]
    pub category: String,
    /// The suggested configuration; its `agent` and `version` are replaced on instantiation.
    pub config: AgentConfig,
}

impl Blueprint {
    /// A draft version 1 config for `agent`, with `{placeholders}` in the system prompt
    /// replaced from `vars`. A placeholder left without a value is an error.
    pub fn instantiate(
        &self,
        agent: AgentId,
        vars: &HashMap<String, String>,
    ) -> Result<AgentConfig> {
        let mut prompt = self.config.system_prompt.clone();
        for (k, v) in vars {
            prompt = prompt.replace(&format!("{{{k}}}"), v);
        }
        if let Some(start) = prompt.find('{')
            && let Some(len) = prompt[start..].find('}')
        {
            let name = &prompt[start + 1..start + len];
            if !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                return Err(Error::InvalidConfig(format!(
                    "blueprint `{}`: no value for placeholder `{{{name}}}`",
                    self.name
                )));
            }
        }
        Ok(AgentConfig {
            agent,
            version: 1,
            status: ConfigStatus::Draft,
            system_prompt: prompt,
            ..self.config.clone()
        })
    }
}

/// The models and tools a config can name.
#[derive(Clone, Default)]
pub struct AgentRegistry {
    pub(crate) models: HashMap<String, Arc<dyn LlmProvider>>,
    pub(crate) tools: Vec<Arc<dyn Tool>>,
    pub(crate) configs: HashMap<AgentId, AgentConfig>,
}

impl AgentRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a provider under `key` (what [`ModelRef::provider`] names).
    pub fn with_model(mut self, key: impl Into<String>, provider: Arc<dyn LlmProvider>) -> Self {
        self.models.insert(key.into(), provider);
        self
    }

    /// Registers a tool under its spec name.
    pub fn with_tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.push(tool);
        self
    }

    /// Registers an agent config, so other configs can name it as their `backup_agent`.
    pub fn with_agent_config(mut self, config: AgentConfig) -> Self {
        self.configs.insert(config.agent.clone(), config);
        self
    }

    /// The provider registered under `key`.
    pub fn model(&self, key: &str) -> Option<&Arc<dyn LlmProvider>> {
        self.models.get(key)
    }

    /// Tools whose names match any of `patterns`.
    pub fn tools_matching(&self, patterns: &[String]) -> Vec<Arc<dyn Tool>> {
        self.tools
            .iter()
            .filter(|t| {
                patterns
                    .iter()
                    .any(|p| crate::policy::pattern_matches(p, &t.spec().name))
            })
            .cloned()
            .collect()
    }
}

impl std::fmt::Debug for AgentRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut models: Vec<_> = self.models.keys().collect();
        models.sort();
        f.debug_struct("AgentRegistry")
            .field("models", &models)
            .field(
                "tools",
                &self
                    .tools
                    .iter()
                    .map(|t| t.spec().name.clone())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
