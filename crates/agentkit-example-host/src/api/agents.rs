//! Agents: blueprints, versioned configs per tenant (validated against the host's model and
//! the tools the tenant's agents can name).

use std::collections::HashMap;

use agentkit::config::{AgentConfig, ConfigStatus};
use agentkit::id::AgentId;
use agentkit::prelude::Agent;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::App;
use crate::auth::Caller;
use crate::problem::{ApiJson, ApiResult, Problem};

pub(super) async fn blueprints(State(app): State<App>, _caller: Caller) -> Json<Value> {
    Json(json!(
        app.inner
            .blueprints
            .iter()
            .map(|b| json!({
                "name": b.name, "description": b.description, "category": b.category,
                "config": b.config,
            }))
            .collect::<Vec<_>>()
    ))
}

pub(super) async fn list(State(app): State<App>, caller: Caller) -> ApiResult<Json<Value>> {
    let ids = app
        .tables()
        .agents(&caller.tenant)
        .await
        .map_err(Problem::from)?;
    let mut agents = Vec::new();
    for id in ids {
        let agent = AgentId::new(&id).map_err(Problem::from)?;
        if let Some(c) = app
            .inner
            .store
            .get_agent_config(&caller.tenant, &agent, None)
            .await
            .map_err(Problem::from)?
        {
            agents.push(
                json!({"agent": c.agent, "name": c.name, "version": c.version, "status": c.status}),
            );
        }
    }
    Ok(Json(json!(agents)))
}

pub(super) async fn versions(
    State(app): State<App>,
    caller: Caller,
    Path(agent): Path<String>,
) -> ApiResult<Json<Value>> {
    let agent = AgentId::new(&agent).map_err(|e| Problem::bad_request(e.to_string()))?;
    let versions = app
        .inner
        .store
        .list_agent_config_versions(&caller.tenant, &agent)
        .await
        .map_err(Problem::from)?;
    if versions.is_empty() {
        return Err(Problem::not_found(format!("no agent `{agent}`")));
    }
    Ok(Json(json!(versions)))
}

/// One stored version of an agent's config: its prompt, model, tools, approval rules and
/// limits.
pub(super) async fn version(
    State(app): State<App>,
    caller: Caller,
    Path((agent, version)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let agent = AgentId::new(&agent).map_err(|e| Problem::bad_request(e.to_string()))?;
    let version: u32 = version
        .parse()
        .map_err(|_| Problem::bad_request("the version is a positive number"))?;
    let config = app
        .inner
        .store
        .get_agent_config(&caller.tenant, &agent, Some(version))
        .await
        .map_err(Problem::from)?
        .ok_or_else(|| Problem::not_found(format!("no version {version} of agent `{agent}`")))?;
    Ok(Json(json!(config)))
}

/// A new agent, or a new version of one: from a blueprint (`{"agent", "blueprint", "vars"}`)
/// or a whole config (`{"config": {...}}`). Validated against the host's models and tools.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateAgent {
    agent: Option<String>,
    blueprint: Option<String>,
    #[serde(default)]
    vars: HashMap<String, String>,
    config: Option<AgentConfig>,
}

pub(super) async fn create(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateAgent>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut config = match (body.config, body.blueprint) {
        (Some(config), None) => config,
        (None, Some(name)) => {
            let agent = body
                .agent
                .ok_or_else(|| Problem::bad_request("`agent` names the new agent"))?;
            let agent = AgentId::new(&agent).map_err(|e| Problem::bad_request(e.to_string()))?;
            let blueprint = app
                .inner
                .blueprints
                .iter()
                .find(|b| b.name == name)
                .ok_or_else(|| Problem::not_found(format!("no blueprint `{name}`")))?;
            blueprint
                .instantiate(agent, &body.vars)
                .map_err(Problem::from)?
        }
        _ => {
            return Err(Problem::bad_request(
                "give either `config`, or `agent` and `blueprint`",
            ));
        }
    };
    let latest = app
        .inner
        .store
        .get_agent_config(&caller.tenant, &config.agent, None)
        .await
        .map_err(Problem::from)?;
    config.version = latest.map_or(1, |c| c.version + 1);
    config.status = ConfigStatus::Final;
    let registry = app
        .registry_for(&caller.tenant)
        .await
        .map_err(Problem::from)?;
    Agent::from_config(&config, &registry).map_err(Problem::from)?;
    app.inner
        .store
        .put_agent_config(&caller.tenant, &config)
        .await
        .map_err(Problem::from)?;
    app.tables()
        .add_agent(&caller.tenant, config.agent.as_str())
        .await
        .map_err(Problem::from)?;
    app.forget_agent(&caller.tenant, &config.agent);
    Ok((
        StatusCode::CREATED,
        Json(json!({"agent": config.agent, "version": config.version})),
    ))
}
