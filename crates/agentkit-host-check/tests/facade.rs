//! Everything through the facade: no `crate = "..."` on the macros, no `async-trait` dependency.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use agentkit::async_trait;
use agentkit::model::{CompletionRequest, CompletionResponse, LlmProvider, ProviderCapabilities};
use agentkit::prelude::*;
use agentkit::tools::{Allowlist, Tool, ToolRegistry, tool};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// Looks up the weather in a city.
#[derive(Deserialize, JsonSchema, Tool)]
#[tool(name = "get_weather", handler = get_weather)]
struct GetWeather {
    /// The city.
    city: String,
}

async fn get_weather(_ctx: ToolContext, args: GetWeather) -> agentkit::Result<Value> {
    Ok(json!({"city": args.city, "sky": "clear"}))
}

/// Converts Celsius to Fahrenheit.
#[tool(name = "units.c_to_f")]
async fn c_to_f(celsius: f64) -> agentkit::Result<f64> {
    Ok(celsius * 9.0 / 5.0 + 32.0)
}

/// A host's own model: calls the weather tool once, then answers.
struct OneToolModel;

#[async_trait]
impl LlmProvider for OneToolModel {
    fn name(&self) -> &str {
        "one-tool"
    }

    fn capabilities(&self) -> ProviderCapabilities {
        ProviderCapabilities::default()
    }

    async fn complete(&self, request: &CompletionRequest) -> agentkit::Result<CompletionResponse> {
        let answered = request
            .messages
            .iter()
            .any(|m| matches!(m, Message::Tool { .. }));
        Ok(if answered {
            CompletionResponse::new("Clear skies in Lisbon.", Vec::new(), Usage::default())
        } else {
            CompletionResponse::new(
                "",
                vec![ToolCall::new(
                    "call-1",
                    "get_weather",
                    json!({"city": "Lisbon"}),
                )],
                Usage::default(),
            )
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_on_the_facade_alone_runs_a_governed_agent() {
    let registry = ToolRegistry::builder()
        .register(GetWeatherTool::new())
        .register(CToFTool::new())
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("agentkit-host-check-{}", RunId::generate()));
    let store: Arc<dyn StateStore> =
        Arc::new(agentkit::sqlite::SqliteStore::open(&dir).await.unwrap());
    let policy = agentkit::policy_engine::PolicyEngine::from_toml(
        r#"
        [agents.weather]
        permissions = [{ action = "get_weather" }]
        "#,
        store.clone(),
    )
    .unwrap();
    let agent = Agent::builder()
        .id("weather")
        .model(Arc::new(OneToolModel), "own-model")
        .tools(registry.for_agent(&Allowlist::new(["get_weather"])))
        .policy(Arc::new(policy))
        .store(store)
        .build()
        .unwrap();
    let outcome = agent
        .run(RunRequest::new("acme", "s1", "Weather in Lisbon?"))
        .await
        .unwrap();
    let report = outcome.report().unwrap();
    assert_eq!(report.reply, "Clear skies in Lisbon.");
    assert!(report.tool_calls[0].result.contains("clear"), "{report:?}");
    assert_eq!(CToFTool::new().spec().name, "units.c_to_f");
    let _ = std::fs::remove_file(&dir);
}
