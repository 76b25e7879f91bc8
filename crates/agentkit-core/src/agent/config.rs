//! Blueprints and the agent registry (models and tools by name for configs).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{AgentConfig, ConfigStatus};
use crate::error::{Error, Result};
use crate::id::AgentId;
use crate::model::LlmProvider;
use crate::tool::Tool;

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

    /// Registers a provider under `key` (what [`ModelRef::provider`](crate::config::ModelRef::provider) names).
    pub fn with_model(mut self, key: impl Into<String>, provider: Arc<dyn LlmProvider>) -> Self {
        self.models.insert(key.into(), provider);
        self
    }

    /// Registers a tool under its spec name.
    pub fn with_tool(mut self, tool: Arc<dyn Tool>) -> Self {
        self.tools.push(tool);
        self
    }

    /// The evaluator `config` names as its `eval_agent`, built from that agent's registered
    /// config (its model, tools and the evaluation output schema); `None` when `config` names
    /// none. Set the evaluator's store (and policy) on the returned builder's agent before use:
    /// `Evaluator::new(builder.store(store))`.
    pub fn eval_agent_of(&self, config: &AgentConfig) -> Result<Option<super::AgentBuilder>> {
        let Some(id) = &config.eval_agent else {
            return Ok(None);
        };
        let eval = self.configs.get(id).ok_or_else(|| {
            Error::InvalidConfig(format!(
                "agent `{}`: eval agent `{id}` has no config in the registry",
                config.agent
            ))
        })?;
        super::Agent::from_config(eval, self).map(Some)
    }

    /// Registers an agent config, so other configs can name it as their `backup_agent` or
    /// `eval_agent`.
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
