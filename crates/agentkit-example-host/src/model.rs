//! The model the host's agents call: a real provider when `OPENAI_API_KEY` or `OLLAMA_URL` is
//! set, else the offline rule-based model; or one the embedding program chooses
//! ([`crate::App::open_with_model`]).

use std::sync::Arc;

use agentkit::prelude::*;
use agentkit::providers::{KeyRef, ProviderConfig, ProviderKind, build_provider};
use agentkit::rules::{Rule, RuleBasedModel};
use serde_json::json;

/// A model for the host: the provider (registered as `default`, the provider agent configs
/// name), the model name configs carry and the price book prices, and a line saying which.
#[derive(Clone)]
pub struct HostModel {
    /// The provider.
    pub provider: Arc<dyn LlmProvider>,
    /// The model name (`rules-v1`, `gpt-4o-mini`): in agent configs and usage events.
    pub name: String,
    /// Which model answers, in words ("the rule-based model (offline)").
    pub label: String,
}

impl std::fmt::Debug for HostModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostModel")
            .field("name", &self.name)
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl HostModel {
    /// A provider under a model name and label.
    pub fn new(
        provider: Arc<dyn LlmProvider>,
        name: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        Self {
            provider,
            name: name.into(),
            label: label.into(),
        }
    }

    /// The configured provider (`OPENAI_API_KEY`, with `OPENAI_MODEL`; or `OLLAMA_URL`, with
    /// `OLLAMA_MODEL`), else [`HostModel::rules`].
    pub fn from_env() -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        if env("OPENAI_API_KEY").is_some() {
            let model = env("OPENAI_MODEL").unwrap_or_else(|| "gpt-4o-mini".into());
            let config = ProviderConfig::new(ProviderKind::OpenAi, model.clone())
                .with_api_key(KeyRef::Env("OPENAI_API_KEY".into()));
            let label = format!("OpenAI {model}");
            return Ok(Self::new(build_provider(&config)?, model, label));
        }
        if let Some(url) = env("OLLAMA_URL") {
            let model = env("OLLAMA_MODEL").unwrap_or_else(|| "llama3.1".into());
            let config =
                ProviderConfig::new(ProviderKind::Ollama, model.clone()).with_base_url(url);
            let label = format!("Ollama {model}");
            return Ok(Self::new(build_provider(&config)?, model, label));
        }
        Ok(Self::rules())
    }

    /// The offline demo model (`rules-v1`): asked to sell something, it checks the balance,
    /// then drafts a campaign.
    pub fn rules() -> Self {
        let model = RuleBasedModel::new("I can run ad campaigns for you: tell me what to sell.")
            .rule(
                Rule::keywords(["sell", "campaign", "ads"])
                    .tool_call("budget.get_balance", json!({})),
            )
            .rule(Rule::after_tool("budget.get_balance").tool_call(
                "marketing.create_campaign_draft",
                json!({"name": "Spicy Chips", "budget": 50, "contact_email": "ads@acme.example"}),
            ))
            .rule(Rule::after_tool("marketing.create_campaign_draft").reply(
                "Draft \"Spicy Chips\" created with a $50/day budget. Please review it before launch.",
            ));
        Self::new(
            Arc::new(model),
            "rules-v1",
            "the rule-based model (offline)",
        )
    }
}
